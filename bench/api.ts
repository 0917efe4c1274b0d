/**
 * GET /leader under load from a local load generator (autocannon, in this process), against
 * the leader of a live three-member cluster of real processes; then the member's worst tick
 * lateness, read from its metrics, shows whether the raft loop stayed on time. The anchor is a
 * bare express app answering a fixed JSON body, loaded the same way.
 */
import { spawn } from 'node:child_process';
import autocannon from 'autocannon';
import { freePort, ProcessCluster, waitFor } from '../test/integration/harness.js';

const durationS = Number(process.env.API_BENCH_SECONDS ?? 10);
const connections = Number(process.env.API_BENCH_CONNECTIONS ?? 32);

interface Figures {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

async function load(url: string): Promise<Figures> {
  const r = await autocannon({ url, connections, duration: durationS, pipelining: 1 });
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors, non2xx: r.non2xx };
}

function show(name: string, f: Figures): void {
  console.log(
    `${name}: ${f.rps.toFixed(0)} req/s, latency p50 ${f.p50} ms, p99 ${f.p99} ms, errors ${f.errors}, non-2xx ${f.non2xx}`,
  );
}

async function tickLatenessMs(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = /^raft_elector_tick_lateness_max_seconds ([0-9.e+-]+)$/m.exec(text);
  return m ? Number(m[1]) * 1000 : NaN;
}

async function bareExpress(): Promise<{ url: string; stop(): void }> {
  const port = await freePort();
  const script = `
    const express = require('express');
    const app = express(); app.disable('x-powered-by');
    const body = ${JSON.stringify(JSON.stringify({ leader: 'm1', self: 'm1', isLeader: true, term: 1, leaseExpiresInMs: 800, since: new Date(0).toISOString(), members: [] }))};
    app.get('/leader', (q, r) => r.type('application/json').send(body));
    app.listen(${port}, '127.0.0.1', () => console.log('ready'));`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  return { url: `http://127.0.0.1:${port}/leader`, stop: () => child.kill('SIGKILL') };
}

async function main(): Promise<void> {
  console.log(`api: GET /leader, ${connections} connections, ${durationS} s, 3-member cluster on loopback (100 ms tick)`);
  const cluster = await ProcessCluster.start({ size: 3 });
  try {
    const leader = await cluster.agreedLeader(15_000);
    const member = cluster.member(leader.self);
    const before = await tickLatenessMs(member.httpPort);
    const figures = await load(`http://127.0.0.1:${member.httpPort}/leader`);
    show('raft-elector leader', figures);
    const after = await tickLatenessMs(member.httpPort);
    const stillLeader = await waitFor('the leader to answer', 5_000, () => cluster.leader(leader.self));
    console.log(
      `worst tick lateness of the loaded member: ${after.toFixed(1)} ms (before the load: ${before.toFixed(1)} ms); ` +
        `still leader after the load: ${stillLeader.isLeader && stillLeader.term === leader.term ? 'yes, same term' : 'NO'}`,
    );
    const bare = await bareExpress();
    try {
      const anchor = await load(bare.url);
      show('anchor: bare express, fixed JSON', anchor);
      console.log(`ratio vs bare express: ${(figures.rps / anchor.rps).toFixed(2)} of its req/s, p99 ${(figures.p99 / Math.max(anchor.p99, 1)).toFixed(2)}x`);
    } finally {
      bare.stop();
    }
  } finally {
    await cluster.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
