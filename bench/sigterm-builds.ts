/**
 * `npm run bench:sigterm-builds`: the SIGTERM handover of several raft-elector builds (or of one
 * build under several Node.js flags) and of etcd, trial by trial in turn, so that one change is
 * judged against the build before it, and both against etcd, under the same machine load.
 *
 *   BENCH_BUILDS='before:/tmp/old-dist,after:dist,noflush:dist:--no-flush-bytecode' npm run bench:sigterm-builds
 *
 * A build is `name:dir[:node flags]`: a `dist/` directory (its cmd/raft-elector.js is run) and
 * Node.js flags after `--max-semi-space-size=1` (space-separated). Default: this checkout's dist.
 * Every group runs three members on loopback (heartbeat 100 ms, election 1000 ms) for the whole
 * run; BENCH_TRIALS rounds (default 10), each one trial per group, as `npm run bench` times them.
 * BENCH_PROFILE_DIR: members run with `--cpu-prof` there, and the profiles' self time is summed
 * per build over the survivors' windows (signal → agreement) and the old leader's (signal → exit).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { ProcessCluster } from '../test/integration/harness.js';
import { emptySummary, printSummary, profilesByPid, readProfile, summarizeProfile, type WindowUs } from './cpu-profile.js';
import { EtcdCluster, etcdVersion } from './etcd-cluster.js';
import { summarize } from './stats.js';
import { etcdTrial, raftElectorTrial } from './trials.js';

const TickMs = 100;
const ElectionTicks = 10;
const SettleMs = 2 * ElectionTicks * TickMs;
const trials = Number(process.env.BENCH_TRIALS ?? 10);
const profileDir = process.env.BENCH_PROFILE_DIR;
const topFunctions = Number(process.env.BENCH_TOP ?? 30);
const BaseNodeArgs = ['--max-semi-space-size=1'];

interface Build {
  name: string;
  bin: string;
  nodeArgs: string[];
}

function builds(): Build[] {
  const spec = process.env.BENCH_BUILDS ?? 'this:dist';
  return spec.split(',').map((item) => {
    const [name = item, dir = 'dist', flags = ''] = item.split(':');
    const bin = join(resolve(dir), 'cmd/raft-elector.js');
    if (!existsSync(bin)) throw new Error(`build ${name}: no ${bin}`);
    const profiling = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${join(profileDir, name)}`] : [];
    return { name, bin, nodeArgs: [...BaseNodeArgs, ...flags.split(' ').filter((f) => f !== ''), ...profiling] };
  });
}

const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');
const cell = (xs: number[]): string => {
  const s = summarize(xs);
  return `${s.min.toFixed(1)} / ${s.p50.toFixed(1)} / ${s.p90.toFixed(1)}`;
};

interface Figures {
  agreeMs: number[];
  cpuMs: number[];
  /** Profile windows by pid. */
  windows: Map<number, WindowUs[]>;
  oldLeaderWindows: Map<number, WindowUs[]>;
}

async function main(): Promise<void> {
  const wanted = builds();
  const etcd = etcdVersion();
  console.log(`sigterm builds: ${wanted.map((b) => `${b.name}=${b.bin} ${b.nodeArgs.join(' ')}`).join('; ')}; anchor ${'version' in etcd ? `etcd ${etcd.version}` : `none (${etcd.missing})`}`);
  console.log(`${trials} rounds, one trial per group each; load average at the start: ${load()}`);
  if (profileDir) for (const b of wanted) mkdirSync(join(profileDir, b.name), { recursive: true });
  const clusters: ProcessCluster[] = [];
  let theirs: EtcdCluster | undefined;
  const figures = new Map<string, Figures>([...wanted.map((b) => b.name), 'etcd'].map((n) => [n, { agreeMs: [], cpuMs: [], windows: new Map(), oldLeaderWindows: new Map() }]));
  const add = (m: Map<number, WindowUs[]>, pid: number, w: WindowUs): void => void m.set(pid, [...(m.get(pid) ?? []), w]);
  try {
    for (const b of wanted) clusters.push(await ProcessCluster.start({ size: 3, tickMs: TickMs, electionTicks: ElectionTicks, nodeArgs: b.nodeArgs, bin: b.bin }));
    if ('version' in etcd) theirs = await EtcdCluster.start({ size: 3, heartbeatMs: TickMs, electionMs: ElectionTicks * TickMs });
    for (const c of clusters) await c.agreedLeader(30_000);
    // Past the fresh-vote delay of a new group.
    await new Promise((r) => setTimeout(r, SettleMs));
    for (let round = 1; round <= trials; round++) {
      const cells: string[] = [];
      for (const [i, b] of wanted.entries()) {
        const r = await raftElectorTrial(clusters[i]!, 'SIGTERM', SettleMs);
        const f = figures.get(b.name)!;
        f.agreeMs.push(r.agreeMs);
        f.cpuMs.push(r.survivorsCpuMs);
        for (const pid of r.survivorPids) add(f.windows, pid, { fromUs: r.signalUs, toUs: r.agreedUs });
        add(f.oldLeaderWindows, r.oldPid, { fromUs: r.signalUs, toUs: r.exitedUs });
        cells.push(`${b.name} ${r.agreeMs.toFixed(1)} ms (CPU ${r.survivorsCpuMs.toFixed(1)})`);
      }
      if (theirs) {
        const e = await etcdTrial(theirs, 'SIGTERM', SettleMs);
        figures.get('etcd')!.agreeMs.push(e.agreeMs);
        figures.get('etcd')!.cpuMs.push(e.survivorsCpuMs);
        cells.push(`etcd ${e.agreeMs.toFixed(1)} ms (CPU ${e.survivorsCpuMs.toFixed(1)})`);
      }
      console.log(`round ${round}: ${cells.join('; ')}; load ${load()}`);
    }
  } finally {
    // SIGINT: no handover, and the profiler writes its file on exit.
    if (profileDir) for (const c of clusters) await Promise.all(c.running().map((m) => c.signal(m.id, 'SIGINT')));
    for (const c of clusters) await c.stop();
    await theirs?.stop();
  }
  const etcdP50 = theirs ? summarize(figures.get('etcd')!.agreeMs).p50 : undefined;
  console.log('\n| group | SIGTERM -> survivors agree (min / p50 / p90 ms) | survivors on-CPU until agreement (min / p50 / p90 ms) | ratio p50 / etcd |');
  console.log('|---|---|---|---|');
  for (const [name, f] of figures) {
    if (f.agreeMs.length === 0) continue;
    const ratio = etcdP50 && name !== 'etcd' ? (summarize(f.agreeMs).p50 / etcdP50).toFixed(2) : '';
    console.log(`| ${name} | ${cell(f.agreeMs)} | ${cell(f.cpuMs)} | ${ratio} |`);
  }
  if (profileDir) {
    for (const b of wanted) {
      const f = figures.get(b.name)!;
      const survivors = emptySummary();
      const oldLeader = emptySummary();
      for (const [pid, files] of profilesByPid(join(profileDir, b.name))) {
        for (const file of files) {
          const profile = readProfile(file);
          if (f.windows.has(pid)) summarizeProfile(profile, f.windows.get(pid)!, survivors);
          if (f.oldLeaderWindows.has(pid)) summarizeProfile(profile, f.oldLeaderWindows.get(pid)!, oldLeader);
        }
      }
      printSummary(`${b.name}: survivors, signal -> agreement, ${trials} handovers`, survivors, topFunctions);
      printSummary(`${b.name}: old leader, signal -> exit, ${trials} handovers`, oldLeader, topFunctions);
    }
  }
  console.log(`\nload average at the end: ${load()}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
