/**
 * Steady RSS of one member of an idle three-member cluster, against a bare Node.js process
 * that loads express and ws and listens (the floor any such sidecar pays).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { ProcessCluster } from '../test/integration/harness.js';

const settleMs = Number(process.env.MEMORY_SETTLE_MS ?? 15_000);
const TargetMb = 70;

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

async function bareRssMb(): Promise<number> {
  const script = `
    const express = require('express'); const { WebSocketServer } = require('ws');
    const app = express(); app.get('/', (q, r) => r.json({})); app.listen(0, '127.0.0.1');
    new WebSocketServer({ port: 0, host: '127.0.0.1' });
    setInterval(() => {}, 100);`;
  const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, settleMs));
  const mb = rssMb(child.pid!);
  child.kill('SIGKILL');
  return mb;
}

async function main(): Promise<void> {
  const cluster = await ProcessCluster.start({ size: 3 });
  try {
    await cluster.agreedLeader(15_000);
    await new Promise((r) => setTimeout(r, settleMs));
    const figures = cluster.members.map((m) => ({ id: m.id, mb: rssMb(m.child!.pid!) }));
    const leader = await cluster.agreedLeader(1_000);
    for (const f of figures) console.log(`member ${f.id}${f.id === leader.self ? ' (leader)' : ''}: steady RSS ${f.mb.toFixed(1)} MB`);
    const worst = Math.max(...figures.map((f) => f.mb));
    const bare = await bareRssMb();
    console.log(`bare Node.js with express and ws: ${bare.toFixed(1)} MB`);
    console.log(`worst member / bare: ${(worst / bare).toFixed(2)}; target <= ${TargetMb} MB: ${worst <= TargetMb ? 'met' : 'MISSED'}`);
  } finally {
    await cluster.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
