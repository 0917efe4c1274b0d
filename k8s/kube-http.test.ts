/**
 * The client's HTTP layer: the token re-read, the response bound, the shapes of the Lease and
 * Event requests (timestamps sent as given), and the one retry on a stale kept-alive socket.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startApiFixture, type ApiFixture } from '../test/k8s/harness.js';
import { classifyApiError } from './api-errors.js';
import { createKubeClient, DEFAULT_USER_AGENT, loadInClusterConfig, type KubeClient } from './kube-client.js';
import { KubeHttp, TokenRereadMs } from './kube-http.js';
import { microTime } from './lease-mirror.js';
import { mergePatchOptions } from './pod-label.js';

let fixture: ApiFixture | undefined;
const servers: http.Server[] = [];
const clients: Array<{ close(): void }> = [];
afterEach(async () => {
  await fixture?.close();
  fixture = undefined;
  for (const c of clients.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

interface Seen {
  method: string;
  url: string;
  contentType: string | undefined;
  authorization: string | undefined;
  userAgent: string | undefined;
  body: string;
  socket: Socket;
}

/** A plain-HTTP server whose answers the test writes; it records every request and its socket. */
async function scriptedServer(answer: (seen: Seen, response: http.ServerResponse) => void): Promise<{ seen: Seen[]; client: KubeClient }> {
  const seen: Seen[] = [];
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (c: Buffer) => chunks.push(c));
    request.on('end', () => {
      const entry = {
        method: request.method ?? '',
        url: request.url ?? '',
        contentType: request.headers['content-type'],
        authorization: request.headers.authorization,
        userAgent: request.headers['user-agent'],
        body: Buffer.concat(chunks).toString('utf8'),
        socket: request.socket,
      };
      seen.push(entry);
      answer(entry, response);
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const dir = mkdtempSync(join(tmpdir(), 'kube-http-test-'));
  writeFileSync(join(dir, 'token'), 'scripted-token\n');
  const port = (server.address() as AddressInfo).port;
  const client = createKubeClient(loadInClusterConfig({ env: { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(port) }, tokenFile: join(dir, 'token'), scheme: 'http' }), { requestTimeoutMs: 2_000 });
  clients.push(client);
  return { seen, client };
}

const json = (response: http.ServerResponse, status: number, body: unknown) => {
  response.writeHead(status, { 'Content-Type': 'application/json' });
  response.end(JSON.stringify(body));
};

describe('KubeHttp', () => {
  it('re-reads the token file once a minute, keeping the last token while the file is unreadable or empty', async () => {
    fixture = await startApiFixture({ namespace: 'shop' });
    const f = fixture;
    const layout = f.server.writeInClusterLayout('shop');
    const config = loadInClusterConfig({ env: layout.env, tokenFile: layout.tokenFile, caFile: layout.caFile });
    let now = 1_000_000;
    const api = new KubeHttp({ ...config, userAgent: 'test', requestTimeoutMs: 2_000, maxResponseBytes: 1 << 20, nowMs: () => now });
    clients.push(api);
    const list = () => api.request('GET', '/api/v1/namespaces/shop/pods').then(() => 200, (err: { code?: number }) => err.code);
    expect(await list()).toBe(200);
    writeFileSync(layout.tokenFile, 'rotated-but-wrong');
    expect(await list()).toBe(200); // read less than a minute ago
    now += TokenRereadMs + 1;
    expect(await list()).toBe(401);
    writeFileSync(layout.tokenFile, f.server.token);
    now += TokenRereadMs + 1;
    expect(await list()).toBe(200);
    rmSync(layout.tokenFile);
    now += TokenRereadMs + 1;
    expect(await list()).toBe(200);
    writeFileSync(layout.tokenFile, '\n');
    now += TokenRereadMs + 1;
    expect(await list()).toBe(200);
  });

  it('refuses a response above maxResponseBytes, classified as a failed call, and keeps working', async () => {
    fixture = await startApiFixture({ namespace: 'shop' });
    for (let i = 0; i < 5; i++) fixture.server.createPod({ namespace: 'shop', name: `shop-${i}`, labels: { app: 'shop' } });
    const layout = fixture.server.writeInClusterLayout('shop');
    const small = createKubeClient(loadInClusterConfig({ env: layout.env, tokenFile: layout.tokenFile, caFile: layout.caFile }), { maxResponseBytes: 4_000 });
    clients.push(small);
    const error = await small.core.listNamespacedPod({ namespace: 'shop' }).catch((err: unknown) => err);
    expect(error).toMatchObject({ code: 'KUBE_RESPONSE_TOO_LARGE' });
    const classified = classifyApiError(error, { verb: 'list', resource: 'pods', group: '', namespace: 'shop' });
    expect(classified.code).toBe('KUBE_UNREACHABLE');
    expect(classified.message).toContain('KUBE_RESPONSE_TOO_LARGE');
    expect((await small.core.listNamespacedPod({ namespace: 'shop', labelSelector: 'app=none' })).items).toEqual([]);
  });

  it('reads and replaces a Lease as coordination.k8s.io/v1 JSON, MicroTimes sent as given', async () => {
    const stored = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'orders', namespace: 'shop', resourceVersion: '7', creationTimestamp: '2026-12-01T10:00:00Z' }, spec: { acquireTime: '2026-12-01T10:00:00.123456Z' } };
    const { seen, client } = await scriptedServer((s, response) => json(response, 200, s.method === 'PUT' ? JSON.parse(s.body) : stored));
    const lease = await client.coordination.readNamespacedLease({ name: 'orders', namespace: 'shop' });
    expect(lease.metadata?.creationTimestamp).toBe('2026-12-01T10:00:00Z');
    const renewTime = microTime(new Date('2026-12-02T07:00:00.250Z'));
    const body = { ...lease, spec: { ...lease.spec, holderIdentity: 'orders-0', renewTime } };
    const written = await client.coordination.replaceNamespacedLease({ name: 'orders', namespace: 'shop', body });
    expect(written.spec?.renewTime).toBe('2026-12-02T07:00:00.250000Z');
    expect(seen.map((s) => `${s.method} ${s.url} ${s.contentType ?? '-'}`)).toEqual([
      'GET /apis/coordination.k8s.io/v1/namespaces/shop/leases/orders -',
      'PUT /apis/coordination.k8s.io/v1/namespaces/shop/leases/orders application/json',
    ]);
    expect(JSON.parse(seen[1]!.body)).toEqual({ ...stored, spec: { acquireTime: '2026-12-01T10:00:00.123456Z', holderIdentity: 'orders-0', renewTime: '2026-12-02T07:00:00.250000Z' } });
    for (const s of seen) expect(s).toMatchObject({ authorization: 'Bearer scripted-token', userAgent: DEFAULT_USER_AGENT });
  });

  it('creates an Event with its timestamps as RFC 3339 strings and merge-patches with its content type', async () => {
    const { seen, client } = await scriptedServer((s, response) => json(response, s.method === 'POST' ? 201 : 200, JSON.parse(s.body)));
    const at = new Date('2026-12-02T07:00:00.250Z');
    const created = await client.core.createNamespacedEvent({ namespace: 'shop', body: { metadata: { name: 'e1' }, involvedObject: { kind: 'Pod', name: 'p' }, firstTimestamp: at.toISOString() } });
    expect(created.metadata?.name).toBe('e1');
    await client.core.patchNamespacedPod({ name: 'p/0', namespace: 'shop', body: { metadata: { labels: { a: 'b' } } } }, mergePatchOptions());
    expect(seen.map((s) => `${s.method} ${s.url} ${s.contentType}`)).toEqual([
      'POST /api/v1/namespaces/shop/events application/json',
      'PATCH /api/v1/namespaces/shop/pods/p%2F0 application/merge-patch+json',
    ]);
    expect(JSON.parse(seen[0]!.body).firstTimestamp).toBe('2026-12-02T07:00:00.250Z');
  });

  it('repeats a PATCH once on a new connection when the kept-alive one is reset, never a POST', async () => {
    let answered = 0;
    const { seen, client } = await scriptedServer((s, response) => {
      // The first request of each connection is answered; a second one on it is reset, as a server that just closed it.
      if (seen.filter((other) => other.socket === s.socket).length > 1) s.socket.destroy();
      else json(response, 200, { n: ++answered });
    });
    const patch = () => client.core.patchNamespacedPod({ name: 'p', namespace: 'shop', body: {} }, mergePatchOptions());
    await patch();
    expect(await patch()).toEqual({ n: 2 });
    expect(new Set(seen.map((s) => s.socket)).size).toBe(2);
    const event = await client.core.createNamespacedEvent({ namespace: 'shop', body: { metadata: { name: 'e2' }, involvedObject: {} } }).catch((err: unknown) => err);
    expect(event).toMatchObject({ code: 'ECONNRESET' });
    expect(seen.filter((s) => s.method === 'POST')).toHaveLength(1);
  });
});
