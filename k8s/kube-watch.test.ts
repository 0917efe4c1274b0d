/**
 * The watch keeps client-node's `Watch.watch` contract, which k8s/pod-watch.ts relies on:
 * events per line, `done` exactly once (null at the server's end, the error otherwise),
 * abort through the returned controller; and its failures classify as api-errors.ts expects.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startApiFixture, waitFor, type ApiFixture } from '../test/k8s/harness.js';
import { classifyApiError } from './api-errors.js';

let fixture: ApiFixture | undefined;
afterEach(async () => {
  await fixture?.close();
  fixture = undefined;
});

const path = '/api/v1/namespaces/shop/pods';
const operation = { verb: 'watch' as const, resource: 'pods', group: '', namespace: 'shop' };

interface Recorded {
  events: Array<{ type: string; name: string | undefined; rv: string | undefined }>;
  done: unknown[];
}

function recorder(): Recorded & { onEvent: (type: string, object: { metadata?: { name?: string; resourceVersion?: string } }) => void; onDone: (err: unknown) => void } {
  const r: Recorded = { events: [], done: [] };
  return {
    ...r,
    onEvent: (type, object) => r.events.push({ type, name: object.metadata?.name, rv: object.metadata?.resourceVersion }),
    onDone: (err) => r.done.push(err),
  };
}

describe('KubeWatch', () => {
  it('delivers events and bookmarks as they come, with timestamps as the server sent them; the server ending the stream is done(null)', async () => {
    fixture = await startApiFixture({ namespace: 'shop' });
    const f = fixture;
    const pod = f.server.createPod({ namespace: 'shop', name: 'shop-0' });
    const r = recorder();
    let creation: unknown;
    await f.client.watch.watch(
      path,
      { allowWatchBookmarks: true, timeoutSeconds: 1, resourceVersion: undefined },
      (type: string, object: { metadata?: { name?: string; resourceVersion?: string; creationTimestamp?: unknown } }) => {
        if (type === 'ADDED') creation = object.metadata?.creationTimestamp;
        r.onEvent(type, object);
      },
      r.onDone,
    );
    const request = f.server.requestsFor({ verb: 'watch' })[0]!;
    expect(request.query).toEqual({ watch: 'true', allowWatchBookmarks: 'true', timeoutSeconds: '1' });
    f.server.sendBookmarks();
    await waitFor('the ADDED event and the bookmark', () => r.events.length >= 2);
    expect(r.events.map((e) => e.type)).toEqual(['ADDED', 'BOOKMARK']);
    expect(creation).toBe(pod.metadata.creationTimestamp);
    await waitFor('the server to end the stream after timeoutSeconds', () => r.done.length > 0, 5_000);
    expect(r.done).toEqual([null]);
  });

  it('410 Expired on an open stream is an ERROR event with the Status, then done(null)', async () => {
    fixture = await startApiFixture({ namespace: 'shop' });
    const f = fixture;
    const old = String(f.server.currentResourceVersion);
    f.server.createPod({ namespace: 'shop', name: 'shop-0' });
    f.server.expireHistory();
    const errors: unknown[] = [];
    const r = recorder();
    await f.client.watch.watch(path, { resourceVersion: old }, (type: string, object: unknown) => type === 'ERROR' && errors.push(object), r.onDone);
    await waitFor('the stream to end', () => r.done.length > 0);
    expect(errors).toEqual([expect.objectContaining({ kind: 'Status', code: 410, reason: 'Expired' })]);
    expect(r.done).toEqual([null]);
  });

  it('a refused watch: done once with the HTTP status and the server message, before watch() resolves', async () => {
    fixture = await startApiFixture({ namespace: 'shop' });
    fixture.server.forbid({ verb: 'watch', resource: 'pods' });
    const r = recorder();
    const controller = await fixture.client.watch.watch(path, {}, r.onEvent, r.onDone);
    expect(controller).toBeInstanceOf(AbortController);
    expect(r.done).toHaveLength(1);
    expect(r.done[0]).toMatchObject({ statusCode: 403, code: 403 });
    const classified = classifyApiError(r.done[0], operation);
    expect(classified).toMatchObject({ code: 'KUBE_FORBIDDEN', status: 403 });
    expect(classified.serverMessage).toContain('cannot watch resource "pods"');
    controller.abort();
    expect(r.done).toHaveLength(1);
  });

  it('abort closes the stream and is done once with an AbortError', async () => {
    fixture = await startApiFixture({ namespace: 'shop' });
    const f = fixture;
    const r = recorder();
    const controller = await f.client.watch.watch(path, { resourceVersion: String(f.server.currentResourceVersion) }, r.onEvent, r.onDone);
    await waitFor('the watch to be open', () => f.server.openWatchCount() === 1);
    controller.abort();
    expect(r.done).toHaveLength(1);
    expect((r.done[0] as Error).name).toBe('AbortError');
    f.server.createPod({ namespace: 'shop', name: 'after-abort' });
    await waitFor('the server to see the stream closed', () => f.server.openWatchCount() === 0);
    expect(r.events).toEqual([]);
    controller.abort();
    expect(r.done).toHaveLength(1);
  });

  it('a cut connection is done(error), unreachable; a watch with no answer times out', async () => {
    fixture = await startApiFixture({ namespace: 'shop', requestTimeoutMs: 300 });
    const f = fixture;
    const cut = recorder();
    await f.client.watch.watch(path, { resourceVersion: String(f.server.currentResourceVersion) }, cut.onEvent, cut.onDone);
    await waitFor('the watch to be open', () => f.server.openWatchCount() === 1);
    f.server.dropWatchConnections();
    await waitFor('done after the cut', () => cut.done.length > 0);
    expect(cut.done).toHaveLength(1);
    expect(classifyApiError(cut.done[0], operation).code).toBe('KUBE_UNREACHABLE');

    f.server.hangNext({ verb: 'watch' });
    const hung = recorder();
    const started = Date.now();
    await f.client.watch.watch(path, {}, hung.onEvent, hung.onDone);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(hung.done).toHaveLength(1);
    expect(classifyApiError(hung.done[0], operation).code).toBe('KUBE_TIMEOUT');
  });
});
