import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startApiFixture, waitFor, type ApiFixture } from '../test/k8s/harness.js';
import { classifyApiError } from './api-errors.js';
import { createKubeClient, DEFAULT_USER_AGENT, KubeConfigError, loadInClusterConfig } from './kube-client.js';
import { mergePatchOptions } from './pod-label.js';

const dir = mkdtempSync(join(tmpdir(), 'kube-client-test-'));
const token = join(dir, 'token');
const ca = join(dir, 'ca.crt');
writeFileSync(token, 'abc');
writeFileSync(ca, '-----BEGIN CERTIFICATE-----\n');
const env = { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' };

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(KubeConfigError);
    return (error as KubeConfigError).code;
  }
  return undefined;
}

let fixture: ApiFixture | undefined;
afterEach(async () => {
  await fixture?.close();
  fixture = undefined;
});

describe('loadInClusterConfig', () => {
  it('fails with a typed error naming what is missing, never falling back to localhost:8080', () => {
    expect(codeOf(() => loadInClusterConfig({ env: {}, tokenFile: token, caFile: ca }))).toBe('KUBE_SERVICE_HOST_MISSING');
    expect(codeOf(() => loadInClusterConfig({ env: { KUBERNETES_SERVICE_HOST: 'h' }, tokenFile: token, caFile: ca }))).toBe('KUBE_SERVICE_PORT_INVALID');
    expect(codeOf(() => loadInClusterConfig({ env: { ...env, KUBERNETES_SERVICE_PORT: 'https' }, tokenFile: token, caFile: ca }))).toBe('KUBE_SERVICE_PORT_INVALID');
    expect(codeOf(() => loadInClusterConfig({ env, tokenFile: join(dir, 'missing'), caFile: ca }))).toBe('KUBE_TOKEN_FILE_UNREADABLE');
    expect(codeOf(() => loadInClusterConfig({ env, tokenFile: token, caFile: join(dir, 'missing') }))).toBe('KUBE_CA_FILE_UNREADABLE');
    expect(() => loadInClusterConfig({ env, tokenFile: join(dir, 'missing'), caFile: ca })).toThrow(/automountServiceAccountToken/);
  });

  it('builds https://host:port (IPv6 bracketed) with the token file and CA', () => {
    expect(loadInClusterConfig({ env, tokenFile: token, caFile: ca })).toMatchObject({ server: 'https://10.0.0.1:443', tokenFile: token, caFile: ca });
    expect(loadInClusterConfig({ env: { ...env, KUBERNETES_SERVICE_HOST: 'fd00::1' }, tokenFile: token, caFile: ca }).server).toBe('https://[fd00::1]:443');
  });

  it('talks to the API server over HTTPS with the bearer token and verifies its certificate', async () => {
    fixture = await startApiFixture({ namespace: 'shop' });
    fixture.server.createPod({ namespace: 'shop', name: 'shop-0' });
    const list = await fixture.client.core.listNamespacedPod({ namespace: 'shop' });
    expect(list.items.map((pod) => pod.metadata?.name)).toEqual(['shop-0']);
    expect(fixture.server.requests.at(-1)?.status).toBe(200);

    // The same server with a CA that did not sign it: refused, classified as unreachable (TLS).
    const layout = fixture.server.writeInClusterLayout('shop');
    const wrongCa = join(dir, 'wrong-ca.crt');
    writeFileSync(wrongCa, (await import('node:fs')).readFileSync(new URL('../test/k8s/fixtures/ca.crt', import.meta.url), 'utf8'));
    const untrusting = createKubeClient(loadInClusterConfig({ env: layout.env, tokenFile: layout.tokenFile, caFile: wrongCa }), { requestTimeoutMs: 2000 });
    const error = await untrusting.core.listNamespacedPod({ namespace: 'shop' }).catch((err: unknown) => err);
    if (fixture.server.certificates?.source === 'openssl') {
      expect(classifyApiError(error, { verb: 'list', resource: 'pods', group: '', namespace: 'shop' }).code).toBe('KUBE_UNREACHABLE');
    }
  });

  it('says User-Agent raft-elector/<version> on list, patch, create and the watch', async () => {
    fixture = await startApiFixture({ namespace: 'shop' });
    const f = fixture;
    f.server.createPod({ namespace: 'shop', name: 'shop-0' });
    await f.client.core.listNamespacedPod({ namespace: 'shop' });
    await f.client.core.patchNamespacedPod({ name: 'shop-0', namespace: 'shop', body: { metadata: { labels: { 'raft-role': 'leader' } } } }, mergePatchOptions());
    await f.client.core.createNamespacedEvent({ namespace: 'shop', body: { metadata: { generateName: 'shop-0.' }, involvedObject: { kind: 'Pod', name: 'shop-0', namespace: 'shop' }, reason: 'LeaderElected', message: 'm', type: 'Normal' } });
    const controller = await f.client.watch.watch('/api/v1/namespaces/shop/pods', {}, () => undefined, () => undefined);
    await waitFor('the watch request to arrive', () => f.server.requestsFor({ verb: 'watch', resource: 'pods' }).length > 0);
    controller.abort();
    expect(DEFAULT_USER_AGENT).toMatch(/^raft-elector\/\d+\.\d+\.\d+/);
    const seen = f.server.requests.map((r) => `${r.verb} ${r.resource}: ${r.userAgent}`);
    for (const verb of ['list', 'patch', 'create', 'watch']) expect(seen).toContain(`${verb} ${verb === 'create' ? 'events' : 'pods'}: ${DEFAULT_USER_AGENT}`);
  });

  it('plain HTTP for a test server, and a request timeout on a hung API server', async () => {
    fixture = await startApiFixture({ namespace: 'shop', tls: false, requestTimeoutMs: 300 });
    fixture.server.hangNext({ verb: 'list' });
    const started = Date.now();
    const error = await fixture.client.core.listNamespacedPod({ namespace: 'shop' }).catch((err: unknown) => err);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(classifyApiError(error, { verb: 'list', resource: 'pods', group: '', namespace: 'shop' }).code).toBe('KUBE_TIMEOUT');
    const list = await fixture.client.core.listNamespacedPod({ namespace: 'shop' });
    expect(list.items).toEqual([]);
  });

  it('classifies 401, 404, 409, 5xx and connection refused', async () => {
    fixture = await startApiFixture({ namespace: 'shop' });
    const op = { verb: 'patch' as const, resource: 'pods', group: '', namespace: 'shop', name: 'nope' };
    const patchNope = (client = fixture!.client) => client.core.patchNamespacedPod({ name: 'nope', namespace: 'shop', body: { metadata: { labels: { a: 'b' } } } }, mergePatchOptions()).catch((err: unknown) => err);
    expect(classifyApiError(await patchNope(), op)).toMatchObject({ code: 'KUBE_NOT_FOUND', status: 404, serverMessage: 'pods "nope" not found' });
    fixture.server.failNext({ verb: 'patch', status: 401 });
    expect(classifyApiError(await patchNope(), op).code).toBe('KUBE_UNAUTHORIZED');
    fixture.server.createPod({ namespace: 'shop', name: 'shop-0' });
    const conflict = await fixture.client.core
      .patchNamespacedPod({ name: 'shop-0', namespace: 'shop', body: { metadata: { resourceVersion: '1', labels: { a: 'b' } } } }, mergePatchOptions())
      .catch((err: unknown) => err);
    expect(classifyApiError(conflict, op)).toMatchObject({ code: 'KUBE_CONFLICT', status: 409 });
    fixture.server.failNext({ verb: 'patch', status: 500 });
    expect(classifyApiError(await patchNope(), op).code).toBe('KUBE_SERVER_ERROR');
    fixture.server.forbid({ verb: 'patch', resource: 'pods' });
    const forbidden = classifyApiError(await patchNope(), op);
    expect(forbidden).toMatchObject({ code: 'KUBE_FORBIDDEN', status: 403 });
    expect(forbidden.message).toContain('the ServiceAccount default/raft-elector');
    const port = fixture.server.portNumber;
    await fixture.close();
    fixture = undefined;
    const layoutDir = mkdtempSync(join(tmpdir(), 'kube-client-refused-'));
    writeFileSync(join(layoutDir, 'token'), 't');
    const closed = createKubeClient(loadInClusterConfig({ env: { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(port) }, tokenFile: join(layoutDir, 'token'), scheme: 'http' }));
    const refused = await patchNope(closed);
    expect(classifyApiError(refused, op)).toMatchObject({ code: 'KUBE_UNREACHABLE', status: null });
    expect(classifyApiError(refused, op).message).toContain('ECONNREFUSED');
  });
});
