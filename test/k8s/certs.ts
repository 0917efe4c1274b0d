/**
 * TLS material for the test API server: a fresh self-signed CA and a server
 * certificate for 127.0.0.1/::1/localhost (and any extra IPs asked for), made with openssl at
 * test time; the committed test-only fixtures (without extra IPs) when openssl is not installed.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface TestCertificates {
  caFile: string;
  certFile: string;
  keyFile: string;
  ca: string;
  cert: string;
  key: string;
  source: 'openssl' | 'fixtures';
}

const fixturesDir = fileURLToPath(new URL('./fixtures/', import.meta.url));

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function generate(dir: string, extraIps: readonly string[]): void {
  const caKey = join(dir, 'ca.key');
  const csr = join(dir, 'server.csr');
  const extensions = join(dir, 'server.ext');
  const extra = extraIps.map((ip) => `,IP:${ip}`).join('');
  writeFileSync(extensions, `subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost${extra}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
  const curve = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...curve, '-keyout', caKey, '-out', join(dir, 'ca.crt'), '-days', '2', '-subj', '/CN=raft-elector test CA']);
  openssl(['req', ...curve, '-keyout', join(dir, 'server.key'), '-out', csr, '-subj', '/CN=kubernetes']);
  openssl(['x509', '-req', '-in', csr, '-CA', join(dir, 'ca.crt'), '-CAkey', caKey, '-CAcreateserial', '-out', join(dir, 'server.crt'), '-days', '2', '-extfile', extensions]);
}

/** Writes ca.crt, server.crt and server.key into `dir`; `extraIps` join the server certificate's names. */
export function makeTestCertificates(dir: string, extraIps: readonly string[] = []): TestCertificates {
  let source: TestCertificates['source'] = 'openssl';
  try {
    generate(dir, extraIps);
  } catch {
    source = 'fixtures';
    for (const file of ['ca.crt', 'server.crt', 'server.key']) copyFileSync(join(fixturesDir, file), join(dir, file));
  }
  const caFile = join(dir, 'ca.crt');
  const certFile = join(dir, 'server.crt');
  const keyFile = join(dir, 'server.key');
  return {
    caFile,
    certFile,
    keyFile,
    ca: readFileSync(caFile, 'utf8'),
    cert: readFileSync(certFile, 'utf8'),
    key: readFileSync(keyFile, 'utf8'),
    source,
  };
}
