/**
 * The webhook server over real HTTPS: an AdmissionReview in, the review's response out;
 * bounded bodies and malformed input refused with a clear status; a new certificate
 * served to new connections without a restart.
 */
import { request } from 'node:https';
import { connect } from 'node:tls';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nextCertSet, servingCert } from './certs.js';
import type { SidecarTemplate } from './mutate.js';
import { InjectorMetrics, InjectorServer } from './server.js';

const template: SidecarTemplate = {
  container: { name: 'raft-elector', args: ['--kubernetes'] },
  native: true,
  volumes: [],
  dataVolumeName: 'raft-elector-data',
  secretVolumeName: 'raft-elector-secret',
  hash: 'feedfacecafe',
};
const policy = { validityMs: 3_600_000, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] };

describe('the injector webhook server', () => {
  let server: InjectorServer;
  let port: number;
  let ca: string;
  const lines: Record<string, unknown>[] = [];
  const metrics = new InjectorMetrics();

  beforeAll(async () => {
    const set = await nextCertSet(undefined, policy, new Date());
    ca = set.caBundle;
    const logger = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l) as Record<string, unknown>) });
    server = new InjectorServer({ template: () => template, cert: servingCert(set), logger, metrics, maxBodyBytes: 64 * 1024, requestTimeoutMs: 2_000 });
    port = (await server.listen('127.0.0.1', 0)).port;
  });
  afterAll(() => server.close());

  function post(body: string | Buffer, path = '/mutate'): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, method: 'POST', ca, headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  const reviewOf = (object: unknown) => JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u-1', kind: { kind: 'Pod' }, operation: 'CREATE', namespace: 'shop', object } });

  it('answers an annotated pod with a JSONPatch for the same uid, and logs the pod by name', async () => {
    const res = await post(reviewOf({ metadata: { name: 'web-0', annotations: { 'raft-elector.io/inject': 'true' } }, spec: { containers: [{ name: 'app' }] } }));
    expect(res.status).toBe(200);
    const answer = JSON.parse(res.body) as { response: { uid: string; allowed: boolean; patchType: string; patch: string } };
    expect(answer.response).toMatchObject({ uid: 'u-1', allowed: true, patchType: 'JSONPatch' });
    const patch = JSON.parse(Buffer.from(answer.response.patch, 'base64').toString('utf8')) as { path: string }[];
    expect(patch.map((op) => op.path)).toContain('/spec/initContainers');
    expect(lines.find((l) => l.msg === 'sidecar injected')).toMatchObject({ pod: 'web-0', namespace: 'shop', group: 'web-0' });
  });

  it('allows an unannotated pod unchanged and refuses a bad annotation with the reason', async () => {
    const plain = JSON.parse((await post(reviewOf({ metadata: { name: 'p' }, spec: { containers: [{ name: 'app' }] } }))).body) as { response: Record<string, unknown> };
    expect(plain.response).toEqual({ uid: 'u-1', allowed: true });
    const bad = JSON.parse((await post(reviewOf({ metadata: { name: 'p', annotations: { 'raft-elector.io/inject': 'true', 'raft-elector.io/max-voters': '4' } }, spec: { containers: [] } }))).body) as { response: { allowed: boolean; status: { message: string } } };
    expect(bad.response.allowed).toBe(false);
    expect(bad.response.status.message).toContain('raft-elector.io/max-voters');
  });

  it('passes the mutation\'s warnings to the API server (kubectl prints them) and logs them with the pod', async () => {
    const res = JSON.parse((await post(reviewOf({ metadata: { name: 'old-0', annotations: { 'raft-elector.io/inject': 'true', 'raft-elector.io/replicas': '3' } }, spec: { serviceAccountName: 'old', containers: [{ name: 'app' }] } }))).body) as { response: { allowed: boolean; warnings?: string[] } };
    expect(res.response.allowed).toBe(true);
    expect(res.response.warnings).toEqual([expect.stringContaining('raft-elector.io/replicas is ignored') as string]);
    expect(lines.find((l) => l.pod === 'old-0')).toMatchObject({ msg: 'sidecar injected', warnings: res.response.warnings });
  });

  it('refuses a body over the limit, non-JSON, a non-review and another path, with a status that says so', async () => {
    expect((await post(Buffer.alloc(70 * 1024, 'a'))).status).toBe(413);
    expect((await post('not json')).status).toBe(400);
    const notReview = await post('{"kind":"Pod"}');
    expect(notReview.status).toBe(400);
    expect(notReview.body).toContain('AdmissionReview');
    expect((await post('{}', '/other')).status).toBe(404);
    expect(await metrics.registry.getSingleMetricAsString('raft_elector_injector_reviews_total')).toMatch(/result="error"\} 4/);
  });

  it('serves a new certificate to new connections without a restart', async () => {
    const serial = () => new Promise<string>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
        resolve(s.getPeerCertificate().serialNumber);
        s.end();
      });
      s.on('error', reject);
    });
    const before = await serial();
    const next = await nextCertSet(undefined, policy, new Date());
    server.setCert(servingCert(next));
    expect(await serial()).not.toBe(before);
  });
});
