/**
 * Steady RSS of one member of an idle three-member cluster, against a bare Node.js process
 * that loads express and ws and listens (the floor any such sidecar pays).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { ElectorBin, ProcessCluster } from '../test/integration/harness.js';
import { KubeCluster, Pods } from '../test/integration/kube-cluster.js';
import { rssMb } from './proc.js';

/** Warm-up before sampling, then one sample every 500 ms for the window; the median is reported. */
const settleMs = Number(process.env.MEMORY_SETTLE_MS ?? 5_000);
const windowMs = Number(process.env.MEMORY_WINDOW_MS ?? 10_000);

async function medianRssMb(pids: number[]): Promise<number[]> {
  await new Promise((r) => setTimeout(r, settleMs));
  const samples: number[][] = pids.map(() => []);
  for (let t = 0; t < windowMs; t += 500) {
    pids.forEach((pid, i) => samples[i]!.push(rssMb(pid)));
    await new Promise((r) => setTimeout(r, 500));
  }
  return samples.map((s) => s.sort((a, b) => a - b)[Math.floor(s.length / 2)]!);
}
const TargetMb = 70;
const InClusterTargetMb = 90;
const Bundle = resolve(ElectorBin, '../../bundle/raft-elector.mjs');

/** A member in in-cluster mode (the Kubernetes client loaded), from dist/ or from the bundle. */
async function inClusterRssMb(command: string[]): Promise<number[]> {
  const kube = await KubeCluster.start(undefined, command);
  try {
    await kube.agreedLeader(Pods);
    return await medianRssMb(kube.pods.map((p) => p.child!.pid!));
  } finally {
    await kube.stop();
  }
}

async function bareRssMb(): Promise<number> {
  const script = `
    const express = require('express'); const { WebSocketServer } = require('ws');
    const app = express(); app.get('/', (q, r) => r.json({})); app.listen(0, '127.0.0.1');
    new WebSocketServer({ port: 0, host: '127.0.0.1' });
    setInterval(() => {}, 100);`;
  const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
  const [mb] = await medianRssMb([child.pid!]);
  child.kill('SIGKILL');
  return mb!;
}

async function loopbackRssMb(nodeArgs: string[]): Promise<{ id: string; mb: number; leader: boolean }[]> {
  const cluster = await ProcessCluster.start({ size: 3, nodeArgs });
  try {
    await cluster.agreedLeader(15_000);
    const medians = await medianRssMb(cluster.members.map((m) => m.child!.pid!));
    const leader = await cluster.agreedLeader(1_000);
    return cluster.members.map((m, i) => ({ id: m.id, mb: medians[i]!, leader: m.id === leader.self }));
  } finally {
    await cluster.stop();
  }
}

async function main(): Promise<void> {
  const bare = await bareRssMb();
  console.log(`anchor: bare Node.js with express and ws: ${bare.toFixed(1)} MB`);
  for (const nodeArgs of [[], ['--max-semi-space-size=1']]) {
    const figures = await loopbackRssMb(nodeArgs);
    const how = nodeArgs.length ? `node ${nodeArgs.join(' ')} (as the image runs it)` : 'node (no flags)';
    for (const f of figures) console.log(`loopback member ${f.id}${f.leader ? ' (leader)' : ''}, ${how}: median RSS ${f.mb.toFixed(1)} MB`);
    const worst = Math.max(...figures.map((f) => f.mb));
    console.log(`  worst / bare: ${(worst / bare).toFixed(2)}; target <= ${TargetMb} MB: ${worst <= TargetMb ? 'met' : 'MISSED'}`);
  }
  const fromDist = Math.max(...(await inClusterRssMb([ElectorBin])));
  console.log(`in-cluster member, dist/ with node_modules: worst median RSS ${fromDist.toFixed(1)} MB`);
  if (!existsSync(Bundle)) {
    console.log(`in-cluster member, bundle: not measured (${Bundle} is missing: run npm run bundle)`);
    return;
  }
  const fromBundle = Math.max(...(await inClusterRssMb([Bundle])));
  console.log(`in-cluster member, esbuild bundle: worst median RSS ${fromBundle.toFixed(1)} MB`);
  // Exactly the image's ENTRYPOINT: the bundle with V8's young generation capped at 1 MB.
  const image = Math.max(...(await inClusterRssMb(['--max-semi-space-size=1', Bundle])));
  console.log(
    `in-cluster member as the image runs it (bundle, --max-semi-space-size=1): worst median RSS ${image.toFixed(1)} MB; ` +
      `target <= ${InClusterTargetMb} MB: ${image <= InClusterTargetMb ? 'met' : 'MISSED'}; image / dist: ${(image / fromDist).toFixed(2)}`,
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
