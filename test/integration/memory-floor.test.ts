/**
 * A loopback member must not load Node's bundled undici (about 13 MB of RSS): an ESM import
 * of node:http does, through the facade that reads its lazy WebSocket getters, so value
 * imports of node:http/node:https go through cluster/node-http.ts.
 *
 * An in-cluster member must not load @kubernetes/client-node's run-time code or the undici
 * package either (about 45 MB together, docs/benchmarks.md): k8s/kube-client.ts is its own
 * client on node:https, and client-node is only a source of types.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ElectorBin, freePort, waitFor } from './harness.js';
import { KubeCluster, Namespace, Pods } from './kube-cluster.js';

const dir = mkdtempSync(join(tmpdir(), 'raft-elector-floor-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let cluster: KubeCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

/** A loopback member m1 of two (m2 never runs), with a recorder from test/fixtures preloaded. */
async function spawnMember(preload: string, dataDir: string, httpPort: number, env: Record<string, string> = {}): Promise<ChildProcess> {
  const [peer, other] = [await freePort(), await freePort()];
  writeFileSync(join(dir, 'secret'), 'ab'.repeat(32), { mode: 0o600 });
  return spawn(
    process.execPath,
    [
      '--require', resolve(import.meta.dirname, '../fixtures', preload),
      ElectorBin,
      '--id', 'm1',
      '--peers', `m1=127.0.0.1:${peer},m2=127.0.0.1:${other}`,
      '--listen', `127.0.0.1:${peer}`,
      '--http', `127.0.0.1:${httpPort}`,
      '--data-dir', join(dir, dataDir),
      '--secret-file', join(dir, 'secret'),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } },
  );
}

describe('memory floor', () => {
  it('a running member has not loaded undici', { timeout: 30_000 }, async () => {
    const httpPort = await freePort();
    const child = await spawnMember('report-builtins.cjs', 'data', httpPort, { REPORT_BUILTINS_URL: `http://127.0.0.1:${httpPort}/leader` });
    let stderr = '';
    const line = await new Promise<string>((resolveLine, reject) => {
      const timer = setTimeout(() => reject(new Error(`no report within 25 s; stderr: ${stderr}`)), 25_000);
      child.stderr!.on('data', (chunk: Buffer) => {
        stderr += chunk.toString('utf8');
        const m = /^BUILTINS (.*)$/m.exec(stderr);
        if (m) {
          clearTimeout(timer);
          resolveLine(m[1]!);
        }
      });
    });
    child.kill('SIGKILL');
    const loaded = JSON.parse(line) as string[];
    expect(loaded).toContain('NativeModule http');
    expect(loaded.filter((m) => m.includes('undici'))).toEqual([]);
  });

  it('a member that is only polled, probed and scraped has not loaded express; the first routed request loads it and is answered', { timeout: 30_000 }, async () => {
    const httpPort = await freePort();
    const child = await spawnMember('report-modules.cjs', 'data-express', httpPort);
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const packagesNow = async (): Promise<string[]> => {
      const before = stderr.length;
      child.kill('SIGUSR2');
      const line = await waitFor('the member to report its modules', 10_000, () => /^MODULES (.*)$/m.exec(stderr.slice(before))?.[1]);
      return (JSON.parse(line) as { packages: string[] }).packages;
    };
    try {
      const base = `http://127.0.0.1:${httpPort}`;
      await waitFor('the API to answer', 20_000, async () => ((await fetch(`${base}/leader`).catch(() => undefined))?.status === 200 ? true : undefined));
      const statuses: Record<string, number> = {};
      for (const path of ['/leader', '/', '/isLeader', '/healthz', '/readyz', '/metrics']) statuses[path] = (await fetch(`${base}${path}`)).status;
      // Two of two members needed and one running: not ready, which is an answer too.
      expect(statuses).toEqual({ '/leader': 200, '/': 200, '/isLeader': 200, '/healthz': 200, '/readyz': 503, '/metrics': 200 });
      const idle = await packagesNow();
      // The recorder sees the packages a member does use, so an empty list cannot pass for a clean one.
      expect(idle).toEqual(expect.arrayContaining(['pino', 'prom-client', 'ws']));
      expect(idle).not.toContain('express');

      const routed = await fetch(`${base}/leader?waitForChange=0&timeoutMs=0`);
      expect(routed.status).toBe(200);
      expect(await routed.json()).toMatchObject({ self: 'm1', isLeader: false });
      const bad = await fetch(`${base}/healthz?x=1`);
      expect(bad.status).toBe(400);
      expect(await packagesNow()).toContain('express');
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('running in-cluster members (label written, watch open, Lease tried) have loaded neither client-node nor undici', { timeout: 60_000 }, async () => {
    cluster = await KubeCluster.start(undefined, ['--require', resolve(import.meta.dirname, '../fixtures/report-modules.cjs'), ElectorBin]);
    const c = cluster;
    const leader = await c.agreedLeader(Pods);
    // Every kind of call has gone out: the list and watch of every member, the leader's label, its Lease read.
    await waitFor('the labels, the watches and the Lease read', 20_000, () =>
      c.labelOf(leader.self) === 'leader' &&
      Pods.every((p) => c.labelOf(p) !== undefined) &&
      c.api.openWatchCount() === Pods.length &&
      c.api.requests.some((r) => r.path.startsWith(`/apis/coordination.k8s.io/v1/namespaces/${Namespace}/leases/`))
        ? true
        : undefined,
    );
    for (const name of Pods) {
      const pod = c.pod(name);
      pod.child!.kill('SIGUSR2');
      const line = await waitFor(`${name} to report its modules`, 10_000, () => pod.lines.find((l) => l.startsWith('MODULES ')));
      const loaded = JSON.parse(line.slice('MODULES '.length)) as { packages: string[]; builtins: string[] };
      // The recorder sees the packages a member does use, so an empty list cannot pass for a clean one.
      expect(loaded.packages, name).toEqual(expect.arrayContaining(['pino', 'ws']));
      expect(loaded.packages.filter((p) => p === '@kubernetes/client-node' || p === 'undici'), name).toEqual([]);
      expect(loaded.builtins.filter((m) => m.includes('undici')), name).toEqual([]);
      expect(loaded.builtins, name).toContain('NativeModule https');
    }
  });
});
