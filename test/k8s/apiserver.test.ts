/**
 * The test API server answers as the real one does: checked with kubectl (the
 * real client) where installed, with the sidecar's own client (k8s/kube-client.ts) and,
 * for discovery, with @kubernetes/client-node.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { startApiFixture, waitFor, type ApiFixture } from './harness.js';

const run = promisify(execFile);
const kubectlPath = await run('kubectl', ['version', '--client', '-o', 'json'])
  .then(() => 'kubectl')
  .catch(() => null);
if (!kubectlPath) console.log('kubectl tests skipped: kubectl is not installed (Debian package kubernetes-client)');
const cacheDir = mkdtempSync(join(tmpdir(), 'kubectl-cache-'));

let fixture: ApiFixture | undefined;
afterEach(async () => {
  await fixture?.close();
  fixture = undefined;
});

async function kubectl(f: ApiFixture, args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  const kubeconfig = f.server.writeKubeconfig('shop');
  try {
    const { stdout, stderr } = await run('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', cacheDir, '--request-timeout=10s', ...args], { encoding: 'utf8' });
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string; code?: number };
    return { stdout: failed.stdout ?? '', stderr: failed.stderr ?? '', code: failed.code ?? 1 };
  }
}

async function group(): Promise<ApiFixture> {
  fixture = await startApiFixture({ namespace: 'shop' });
  fixture.server.createPod({ namespace: 'shop', name: 'shop-0', labels: { app: 'shop', 'raft-role': 'follower' } });
  fixture.server.createPod({ namespace: 'shop', name: 'shop-1', labels: { app: 'shop', 'raft-role': 'leader' } });
  fixture.server.createPod({ namespace: 'shop', name: 'shop-2', labels: { app: 'shop' } });
  fixture.server.createPod({ namespace: 'other', name: 'elsewhere', labels: { app: 'shop', 'raft-role': 'leader' } });
  return fixture;
}

describe.skipIf(!kubectlPath)('kubectl against the test API server', () => {
  it('get pods -l raft-role=leader -o name prints the leader pod of the namespace', async () => {
    const f = await group();
    const result = await kubectl(f, ['get', 'pods', '-l', 'raft-role=leader', '-o', 'name']);
    expect(result).toMatchObject({ code: 0, stdout: 'pod/shop-1\n' });
  });

  it('selectors: !=, in, notin, exists, !exists', async () => {
    const f = await group();
    const names = async (selector: string) => (await kubectl(f, ['get', 'pods', '-l', selector, '-o', 'name'])).stdout.trim().split('\n').filter(Boolean);
    expect(await names('raft-role!=leader')).toEqual(['pod/shop-0', 'pod/shop-2']);
    expect(await names('raft-role in (leader,follower)')).toEqual(['pod/shop-0', 'pod/shop-1']);
    expect(await names('raft-role notin (leader)')).toEqual(['pod/shop-0', 'pod/shop-2']);
    expect(await names('raft-role')).toEqual(['pod/shop-0', 'pod/shop-1']);
    expect(await names('!raft-role')).toEqual(['pod/shop-2']);
  });

  it('get pods prints the Table columns', async () => {
    const f = await group();
    const result = await kubectl(f, ['get', 'pods']);
    expect(result.code).toBe(0);
    expect(result.stdout.split('\n')[0]).toMatch(/^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE$/);
    expect(result.stdout).toMatch(/shop-1\s+2\/2\s+Running\s+0\s+/);
    expect(f.server.requests.some((r) => r.accept?.includes('as=Table'))).toBe(true);
  });

  it('kubectl label (merge patch) and kubectl patch (strategic merge patch) change labels', async () => {
    const f = await group();
    expect((await kubectl(f, ['label', 'pod', 'shop-2', 'raft-role=leader'])).code).toBe(0);
    expect(f.server.requestsFor({ verb: 'patch', name: 'shop-2' })[0]?.contentType).toBe('application/merge-patch+json');
    expect((await kubectl(f, ['patch', 'pod', 'shop-1', '-p', '{"metadata":{"labels":{"raft-role":"follower"}}}'])).code).toBe(0);
    expect(f.server.requestsFor({ verb: 'patch', name: 'shop-1' })[0]?.contentType).toBe('application/strategic-merge-patch+json');
    expect((await kubectl(f, ['patch', 'pod', 'shop-0', '--type=json', '-p', '[{"op":"remove","path":"/metadata/labels/raft-role"}]'])).code).toBe(0);
    expect((await kubectl(f, ['get', 'pods', '-l', 'raft-role=leader', '-o', 'name'])).stdout).toBe('pod/shop-2\n');
    expect(f.server.getPod('shop-0', 'shop')?.metadata.labels).toEqual({ app: 'shop' });
    // Without --overwrite kubectl refuses to change an existing label, as against a real cluster.
    const refused = await kubectl(f, ['label', 'pod', 'shop-2', 'raft-role=follower']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("'raft-role' already has a value (leader)");
  });

  it('kubectl delete waits for the graceful deletion to finish', async () => {
    const f = await group();
    const result = await kubectl(f, ['delete', 'pod', 'shop-0', '--grace-period=1']);
    expect(result).toMatchObject({ code: 0 });
    expect(result.stdout).toContain('pod "shop-0" deleted');
    expect(f.server.getPod('shop-0', 'shop')).toBeUndefined();
  });

  it('403 switch: kubectl shows the real Forbidden message', async () => {
    const f = await group();
    f.server.forbid({ verb: 'patch', resource: 'pods' });
    const result = await kubectl(f, ['label', 'pod', 'shop-2', 'raft-role=leader']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('pods "shop-2" is forbidden: User "system:serviceaccount:default:raft-elector" cannot patch resource "pods" in API group "" in the namespace "shop"');
    f.server.allow();
    expect((await kubectl(f, ['label', 'pod', 'shop-2', 'raft-role=leader'])).code).toBe(0);
  });

  it('a wrong token gets 401 Unauthorized', async () => {
    const f = await group();
    const kubeconfig = f.server.writeKubeconfig('shop');
    const { readFileSync, writeFileSync } = await import('node:fs');
    writeFileSync(kubeconfig, readFileSync(kubeconfig, 'utf8').replace(f.server.token, 'wrong'));
    const result = await run('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', cacheDir, 'get', 'pods']).catch((error: { stderr: string }) => error);
    expect((result as { stderr: string }).stderr).toMatch(/Unauthorized|must be logged in/);
  });
});

describe('the sidecar\'s client against the test API server', () => {
  it('watch streams ADDED, MODIFIED, DELETED, and a selector watch sees objects enter and leave', async () => {
    const f = await group();
    const list = await f.client.core.listNamespacedPod({ namespace: 'shop', labelSelector: 'raft-role=leader' });
    expect(list.items.map((pod) => pod.metadata?.name)).toEqual(['shop-1']);
    const seen: string[] = [];
    const controller = await f.client.watch.watch(
      '/api/v1/namespaces/shop/pods',
      { labelSelector: 'raft-role=leader', resourceVersion: list.metadata?.resourceVersion },
      (type: string, object: { metadata: { name: string } }) => seen.push(`${type} ${object.metadata.name}`),
      () => undefined,
    );
    f.server.updatePod('shop-2', (pod) => (pod.metadata.labels = { ...pod.metadata.labels, 'raft-role': 'leader' }), 'shop');
    f.server.setPodPhase('shop-2', 'Failed', 'shop');
    f.server.updatePod('shop-1', (pod) => (pod.metadata.labels = { app: 'shop', 'raft-role': 'follower' }), 'shop');
    f.server.deletePod('shop-2', { namespace: 'shop', gracePeriodSeconds: 0 });
    f.server.createPod({ namespace: 'other', name: 'ignored', labels: { 'raft-role': 'leader' } });
    await waitFor('four events', () => seen.length >= 4);
    controller.abort();
    expect(seen).toEqual(['ADDED shop-2', 'MODIFIED shop-2', 'DELETED shop-1', 'DELETED shop-2']);
  });

  it('fieldSelector=metadata.name= and a watch without resourceVersion starting with synthetic ADDED', async () => {
    const f = await group();
    const seen: string[] = [];
    const controller = await f.client.watch.watch('/api/v1/namespaces/shop/pods', { fieldSelector: 'metadata.name=shop-0' }, (type: string, object: { metadata: { name: string } }) => seen.push(`${type} ${object.metadata.name}`), () => undefined);
    f.server.setPodPhase('shop-1', 'Failed', 'shop');
    f.server.setPodPhase('shop-0', 'Failed', 'shop');
    await waitFor('two events', () => seen.length >= 2);
    controller.abort();
    expect(seen).toEqual(['ADDED shop-0', 'MODIFIED shop-0']);
  });

  it('a resourceVersion older than the retained history gets an ERROR event carrying a 410 Status', async () => {
    const f = await group();
    const old = String(f.server.currentResourceVersion);
    f.server.setPodPhase('shop-0', 'Failed', 'shop');
    f.server.expireHistory();
    const events: Array<{ type: string; object: Record<string, unknown> }> = [];
    let ended = false;
    await f.client.watch.watch('/api/v1/namespaces/shop/pods', { resourceVersion: old }, (type: string, object: Record<string, unknown>) => events.push({ type, object }), () => (ended = true));
    await waitFor('the stream ended', () => ended);
    expect(events).toEqual([
      { type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: expect.stringMatching(/^too old resource version: \d+ \(\d+\)$/), reason: 'Expired', code: 410 } },
    ]);
  });

  it('a resourceVersion precondition that does not match is a 409 Conflict', async () => {
    const f = await group();
    const { mergePatchOptions } = await import('../../k8s/pod-label.js');
    const error = await f.client.core
      .patchNamespacedPod({ name: 'shop-0', namespace: 'shop', body: { metadata: { resourceVersion: '1', labels: { a: 'b' } } } }, mergePatchOptions())
      .catch((err: { code: number; body: string }) => err);
    expect((error as { code: number }).code).toBe(409);
    expect(JSON.parse((error as { body: string }).body)).toMatchObject({ kind: 'Status', status: 'Failure', reason: 'Conflict', code: 409 });
    // Without a content type the client sends JSON Patch (as client-node's generated method), which a merge-patch body does not satisfy.
    const wrongType = await f.client.core.patchNamespacedPod({ name: 'shop-0', namespace: 'shop', body: { metadata: { labels: { a: 'b' } } } }).catch((err: { code: number }) => err);
    expect((wrongType as { code: number }).code).toBe(400);
    expect(f.server.requests.at(-1)?.contentType).toBe('application/json-patch+json');
  });

  it('events.k8s.io/v1 and core/v1 events can be created and listed; discovery lists both', async () => {
    const f = await group();
    await f.client.core.createNamespacedEvent({ namespace: 'shop', body: { metadata: { generateName: 'shop-0.' }, involvedObject: { kind: 'Pod', name: 'shop-0' }, reason: 'Test', message: 'hello' } });
    expect(f.server.listEvents('shop')).toHaveLength(1);
    const { CoreV1Api, KubeConfig } = await import('@kubernetes/client-node');
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromClusterAndUser({ name: 'test', server: f.server.url, caFile: f.server.certificates!.caFile, skipTLSVerify: false }, { name: 'test', token: f.server.token });
    const apiV1 = await kubeConfig.makeApiClient(CoreV1Api).getAPIResources();
    expect(apiV1.resources.map((resource) => resource.name)).toEqual(['events', 'pods', 'pods/status']);
  });
});
