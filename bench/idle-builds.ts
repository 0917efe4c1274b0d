/**
 * `npm run bench:idle-builds`: idle CPU of several raft-elector builds and of etcd, all running
 * at once and sampled in the same windows, so that one change can be judged against the build
 * before it (and both against etcd) under the same machine load.
 *
 *   BENCH_BUILDS=before:/path/to/old/dist,after:dist npm run bench:idle-builds
 *
 * Each build is a `dist/` directory (its cmd/raft-elector.js is run); the default is this
 * checkout's dist alone. `name:dir:--flag,--flag=1` runs that build with extra node flags (after
 * the bench's own), to weigh a V8 flag against the same build without it. Every build runs three members as `npm run bench` does (node
 * --max-semi-space-size=1, heartbeat 100 ms, election 1000 ms); etcd 3.4 runs beside them
 * with the same timings. After BENCH_WARMUP_MS (default 60 s), BENCH_ROUNDS windows (default 5)
 * of BENCH_IDLE_MS (default 10 s) each; per window, the mean CPU of each group's members, and its
 * ratio to etcd's.
 */
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { ProcessCluster } from '../test/integration/harness.js';
import { EtcdCluster, etcdVersion } from './etcd-cluster.js';
import { idleCost } from './proc.js';
import { summarize } from './stats.js';

const TickMs = 100;
const ElectionTicks = 10;
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const windowMs = Number(process.env.BENCH_IDLE_MS ?? 10_000);
const NodeArgs = ['--max-semi-space-size=1'];
/** Before the first window: V8 compiles a member's hot functions for about a minute after start. */
const warmupMs = Number(process.env.BENCH_WARMUP_MS ?? 60_000);

function builds(): { name: string; bin: string; nodeArgs: string[] }[] {
  const spec = process.env.BENCH_BUILDS ?? 'this:dist';
  // Builds are separated by commas, except within a build's flags (which start with --).
  return spec.split(/,(?!--)/).map((item) => {
    const [first, dir, flags] = item.split(':');
    const name = first!;
    const bin = join(resolve(dir ?? first!), 'cmd/raft-elector.js');
    if (!existsSync(bin)) throw new Error(`build ${name}: no ${bin}`);
    return { name, bin, nodeArgs: [...NodeArgs, ...(flags ? flags.split(',') : [])] };
  });
}

const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

async function main(): Promise<void> {
  const wanted = builds();
  const etcd = etcdVersion();
  console.log(`idle builds: ${wanted.map((b) => `${b.name}=${b.bin} ${b.nodeArgs.join(' ')}`).join(', ')}; anchor ${'version' in etcd ? `etcd ${etcd.version}` : `none (${etcd.missing})`}`);
  console.log(`${rounds} windows of ${windowMs / 1000} s after ${warmupMs / 1000} s of warm-up; load average at the start: ${load()}`);
  const groups: { name: string; cluster?: ProcessCluster; etcd?: EtcdCluster; pids: () => number[] }[] = [];
  try {
    for (const b of wanted) {
      const cluster = await ProcessCluster.start({ size: 3, tickMs: TickMs, electionTicks: ElectionTicks, nodeArgs: b.nodeArgs, bin: b.bin });
      groups.push({ name: b.name, cluster, pids: () => cluster.members.map((m) => m.child!.pid!) });
    }
    if ('version' in etcd) {
      const theirs = await EtcdCluster.start({ size: 3, heartbeatMs: TickMs, electionMs: ElectionTicks * TickMs });
      groups.push({ name: 'etcd', etcd: theirs, pids: () => theirs.pids() });
    }
    for (const g of groups) {
      if (g.cluster) await g.cluster.agreedLeader(30_000);
      else await g.etcd!.agreedLeader(30_000, g.etcd!.members.map((m) => m.name));
    }
    // Past start-up, the fresh-vote delay and the JIT's warm-up.
    await new Promise((r) => setTimeout(r, Math.max(2 * ElectionTicks * TickMs + 3_000, warmupMs)));
    const perGroup = new Map<string, number[]>(groups.map((g) => [g.name, []]));
    const rssPerGroup = new Map<string, number[]>(groups.map((g) => [g.name, []]));
    for (let round = 1; round <= rounds; round++) {
      const pids = groups.map((g) => g.pids());
      const cost = await idleCost(pids.flat(), windowMs);
      let at = 0;
      const cells: string[] = [];
      for (const [i, g] of groups.entries()) {
        const cpu = cost.slice(at, at + pids[i]!.length).map((c) => c.cpuPercent);
        rssPerGroup.get(g.name)!.push(...cost.slice(at, at + pids[i]!.length).map((c) => c.rssMb));
        at += pids[i]!.length;
        perGroup.get(g.name)!.push(mean(cpu));
        cells.push(`${g.name} ${cpu.map((c) => c.toFixed(2)).join('/')}`);
      }
      const etcdMean = perGroup.get('etcd')?.at(-1);
      const ratios = etcdMean ? groups.filter((g) => g.cluster).map((g) => `${g.name}/etcd ${(perGroup.get(g.name)!.at(-1)! / etcdMean).toFixed(2)}`) : [];
      console.log(`window ${round}: CPU % per member: ${cells.join('; ')}${ratios.length ? `; ${ratios.join(', ')}` : ''}; load ${load()}`);
    }
    console.log('\n| build | idle CPU per member, mean of 3 (min / p50 / max over windows) | ratio to etcd (p50) | RSS per member, p50 over windows and members |');
    console.log('|---|---|---|---|');
    const etcdP50 = perGroup.has('etcd') ? summarize(perGroup.get('etcd')!).p50 : undefined;
    for (const g of groups) {
      const s = summarize(perGroup.get(g.name)!);
      const rss = summarize(rssPerGroup.get(g.name)!).p50;
      console.log(`| ${g.name} | ${s.min.toFixed(2)} / ${s.p50.toFixed(2)} / ${s.max.toFixed(2)} % | ${etcdP50 && g.cluster ? (s.p50 / etcdP50).toFixed(2) : ''} | ${rss.toFixed(0)} MB |`);
    }
  } finally {
    for (const g of groups) {
      await g.cluster?.stop();
      await g.etcd?.stop();
    }
  }
  console.log(`\nload average at the end: ${load()}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
