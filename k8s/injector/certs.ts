/**
 * The injector's own CA and serving certificate, for clusters without cert-manager.
 *
 * One Secret holds the CA, its key, the serving certificate and key, and the CA bundle
 * (current CA, plus the previous one during a CA rotation). Every replica serves what
 * the Secret holds; whichever replica finds it missing or due writes a new one, and the
 * API server settles the race: create answers 409 to all but one, an update carries the
 * resourceVersion it read, so a stale writer gets 409 and re-reads. No leader needed.
 */
import 'reflect-metadata';
import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import type { ServingCert } from './server.js';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
const Alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
/** Backdating absorbs clock skew between this node and the API server. */
const BackdateMs = 60_000;

export interface CertSet {
  caCert: string;
  caKey: string;
  cert: string;
  key: string;
  /** PEM bundle the webhook configuration's caBundle gets. */
  caBundle: string;
}

export interface CertPolicy {
  /** Validity of a serving certificate; renewed when a third of it is left. */
  validityMs: number;
  /** The CA lives ten serving validities and is renewed when two are left. */
  dnsNames: string[];
  ipAddresses: string[];
}

async function keyPair(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(Alg, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function pemKey(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

async function importKeys(certPem: string, keyPem: string): Promise<CryptoKeyPair> {
  const der = createPrivateKey(keyPem).export({ format: 'der', type: 'pkcs8' });
  const privateKey = await webcrypto.subtle.importKey('pkcs8', der, Alg, true, ['sign']);
  const publicKey = await new x509.X509Certificate(certPem).publicKey.export(Alg, ['verify']);
  return { privateKey, publicKey } as CryptoKeyPair;
}

function serial(): string {
  // Positive, 16 bytes: RFC 5280 allows up to 20.
  const b = randomBytes(16);
  b[0]! &= 0x7f;
  return b.toString('hex');
}

export function notAfter(pem: string): Date {
  return new x509.X509Certificate(pem).notAfter;
}

function dueAt(pem: string, fraction: number): Date {
  const c = new x509.X509Certificate(pem);
  const from = c.notBefore.getTime() + BackdateMs;
  return new Date(from + (c.notAfter.getTime() - from) * fraction);
}

/** True when the set's serving certificate or CA should be replaced at `now`. */
export function renewalDue(set: CertSet, policy: CertPolicy, now: Date): { leaf: boolean; ca: boolean } {
  const ca = now.getTime() >= notAfter(set.caCert).getTime() - 2 * policy.validityMs;
  const leaf = ca || now >= dueAt(set.cert, 2 / 3);
  return { leaf, ca };
}

async function issueCa(now: Date, validityMs: number): Promise<{ cert: string; key: string }> {
  const keys = await keyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=raft-elector injector CA ${now.toISOString()}`,
    notBefore: new Date(now.getTime() - BackdateMs),
    notAfter: new Date(now.getTime() + validityMs),
    keys,
    signingAlgorithm: Alg,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)],
  });
  return { cert: cert.toString('pem'), key: await pemKey(keys.privateKey) };
}

async function issueLeaf(ca: { cert: string; key: string }, policy: CertPolicy, now: Date): Promise<{ cert: string; key: string }> {
  const caKeys = await importKeys(ca.cert, ca.key);
  const caCert = new x509.X509Certificate(ca.cert);
  const keys = await keyPair();
  const end = Math.min(now.getTime() + policy.validityMs, caCert.notAfter.getTime());
  const names = [...policy.dnsNames.map((value) => ({ type: 'dns' as const, value })), ...policy.ipAddresses.map((value) => ({ type: 'ip' as const, value }))];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${policy.dnsNames[0] ?? policy.ipAddresses[0] ?? 'raft-elector-injector'}`,
    issuer: caCert.subject,
    notBefore: new Date(now.getTime() - BackdateMs),
    notAfter: new Date(end),
    signingKey: caKeys.privateKey,
    publicKey: keys.publicKey,
    signingAlgorithm: Alg,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names),
    ],
  });
  return { cert: cert.toString('pem'), key: await pemKey(keys.privateKey) };
}

/** The next certificate set: a new serving certificate, and a new CA when the old one is due or absent. */
export async function nextCertSet(previous: CertSet | undefined, policy: CertPolicy, now: Date): Promise<CertSet> {
  const due = previous ? renewalDue(previous, policy, now) : { ca: true, leaf: true };
  if (previous && !due.ca) {
    const leaf = await issueLeaf({ cert: previous.caCert, key: previous.caKey }, policy, now);
    return { ...previous, ...leaf };
  }
  const ca = await issueCa(now, 10 * policy.validityMs);
  const leaf = await issueLeaf(ca, policy, now);
  // The old CA stays in the bundle: other replicas serve its certificates until they reload.
  const stillValid = previous && notAfter(previous.caCert).getTime() > now.getTime() ? previous.caCert : '';
  return { caCert: ca.cert, caKey: ca.key, ...leaf, caBundle: `${ca.cert}${stillValid}` };
}

export function servingCert(set: Pick<CertSet, 'cert' | 'key'>): ServingCert {
  return { cert: set.cert, key: set.key, notAfter: notAfter(set.cert) };
}

const SecretKeys = { caCert: 'ca.crt', caKey: 'ca.key', cert: 'tls.crt', key: 'tls.key', caBundle: 'ca-bundle.crt' } as const;

export function toSecretData(set: CertSet): Record<string, string> {
  const data: Record<string, string> = {};
  for (const [field, key] of Object.entries(SecretKeys)) data[key] = Buffer.from(set[field as keyof CertSet]).toString('base64');
  return data;
}

/** The set a Secret's data holds, or undefined when a key is missing or unparsable. */
export function fromSecretData(data: Record<string, string> | undefined): CertSet | undefined {
  if (!data) return undefined;
  const out: Partial<CertSet> = {};
  for (const [field, key] of Object.entries(SecretKeys)) {
    const v = data[key];
    if (!v) return undefined;
    out[field as keyof CertSet] = Buffer.from(v, 'base64').toString('utf8');
  }
  try {
    notAfter(out.cert!);
    notAfter(out.caCert!);
  } catch {
    return undefined;
  }
  return out as CertSet;
}
