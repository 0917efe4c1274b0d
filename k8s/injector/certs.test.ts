import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { fromSecretData, nextCertSet, renewalDue, toSecretData, type CertPolicy } from './certs.js';

const policy: CertPolicy = { validityMs: 3_600_000, dnsNames: ['inj.ns.svc'], ipAddresses: ['127.0.0.1'] };

describe('the injector certificates', () => {
  it('makes a CA and a serving certificate for the names, signed by it, that a TLS client would accept', async () => {
    const now = new Date('2026-12-01T00:00:00Z');
    const set = await nextCertSet(undefined, policy, now);
    const ca = new X509Certificate(set.caCert);
    const leaf = new X509Certificate(set.cert);
    expect(ca.ca).toBe(true);
    expect(leaf.ca).toBe(false);
    expect(leaf.verify(ca.publicKey)).toBe(true);
    expect(leaf.checkHost('inj.ns.svc')).toBe('inj.ns.svc');
    expect(leaf.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(new Date(leaf.validTo).getTime() - now.getTime()).toBe(3_600_000);
    expect(set.caBundle).toBe(set.caCert);
    expect(fromSecretData(toSecretData(set))).toEqual(set);
  });

  it('renews the serving certificate from the same CA after two thirds of its life, and the CA with two lives left, keeping the old CA in the bundle', async () => {
    const t0 = new Date('2026-12-01T00:00:00Z');
    const first = await nextCertSet(undefined, policy, t0);
    expect(renewalDue(first, policy, new Date(t0.getTime() + 30 * 60_000))).toEqual({ leaf: false, ca: false });
    const t1 = new Date(t0.getTime() + 41 * 60_000);
    expect(renewalDue(first, policy, t1)).toEqual({ leaf: true, ca: false });
    const second = await nextCertSet(first, policy, t1);
    expect(second.caCert).toBe(first.caCert);
    expect(second.cert).not.toBe(first.cert);
    const t2 = new Date(t0.getTime() + 8.5 * 3_600_000);
    expect(renewalDue(second, policy, t2).ca).toBe(true);
    const third = await nextCertSet(second, policy, t2);
    expect(third.caCert).not.toBe(first.caCert);
    expect(third.caBundle).toBe(`${third.caCert}${first.caCert}`);
    expect(new X509Certificate(third.cert).verify(new X509Certificate(third.caCert).publicKey)).toBe(true);
  });

  it('reads a Secret with a missing or broken key as no certificate', () => {
    expect(fromSecretData(undefined)).toBeUndefined();
    expect(fromSecretData({ 'tls.crt': 'eA==' })).toBeUndefined();
  });
});
