/**
 * `npm run bench`: raft-elector side by side with etcd (Debian's etcd-server 3.4) in one
 * invocation, three members each on loopback, heartbeat 100 ms, election timeout 1000 ms,
 * pre-vote on. Failover trials alternate between the two systems so that machine load
 * hits both alike; idle cost is sampled over the same window for both.
 */
import { cpus, loadavg, release } from 'node:os';
import { ProcessCluster } from '../test/integration/harness.js';
import { EtcdCluster, etcdVersion } from './etcd-cluster.js';
import { partitionBench } from './partition.js';
import { idleCost } from './proc.js';
import { summarize } from './stats.js';
import { etcdTrial, raftElectorTrial, type FailoverSignal } from './trials.js';

const trials = Number(process.env.BENCH_TRIALS ?? 20);
const idleWindowMs = Number(process.env.BENCH_IDLE_MS ?? 30_000);
/**
 * How long the idle row lets every member run before its window: V8 keeps compiling a member's
 * hot functions for about a minute after start (docs/benchmarks.md), and a failover trial has just
 * restarted one. A sidecar runs for days; the window measures that, for etcd's members alike.
 */
const idleWarmupMs = Number(process.env.BENCH_IDLE_WARMUP_MS ?? 90_000);
/** BENCH_ROWS=SIGTERM,idle runs only those rows (default: every row). */
const rowsWanted = new Set((process.env.BENCH_ROWS ?? 'SIGKILL,SIGTERM,idle,partition').split(',').map((r) => r.trim()));
const TickMs = 100;
const ElectionTicks = 10;
const SettleMs = 2 * ElectionTicks * TickMs;
/** As the image's ENTRYPOINT and the command's shebang run it. */
const NodeArgs = ['--max-semi-space-size=1'];

type Row = { event: string; ours: number[]; etcd: number[] | string; unit: string };

function cell(values: number[]): string {
  const s = summarize(values);
  // A tenth of a ms where whole ms would round a small figure to nothing.
  const digits = s.p90 < 10 ? 1 : 0;
  return `${s.min.toFixed(digits)} / ${s.p50.toFixed(digits)} / ${s.p90.toFixed(digits)}`;
}

function ratio(ours: number[], etcd: number[] | string): string {
  if (typeof etcd === 'string') return 'n/a';
  return (summarize(ours).p50 / summarize(etcd).p50).toFixed(3);
}

async function main(): Promise<void> {
  const etcd = etcdVersion();
  const anchor = 'version' in etcd ? `etcd ${etcd.version}` : `etcd not measured: ${etcd.missing}`;
  console.log(`bench: 3 members each on loopback, heartbeat ${TickMs} ms, election ${ElectionTicks * TickMs} ms, pre-vote on; ${trials} trials each; ours run as node ${NodeArgs.join(' ')}; anchor ${anchor}`);
  console.log(machine());
  const ours = await ProcessCluster.start({ size: 3, tickMs: TickMs, electionTicks: ElectionTicks, nodeArgs: NodeArgs });
  const theirs = 'version' in etcd ? await EtcdCluster.start({ size: 3, heartbeatMs: TickMs, electionMs: ElectionTicks * TickMs }) : undefined;
  const rows: Row[] = [];
  try {
    for (const signal of (['SIGKILL', 'SIGTERM'] as FailoverSignal[]).filter((sig) => rowsWanted.has(sig))) {
      const agree: number[] = [];
      const claim: number[] = [];
      const cpu: number[] = [];
      const etcdAgree: number[] = [];
      const etcdCpu: number[] = [];
      for (let i = 0; i < trials; i++) {
        const r = await raftElectorTrial(ours, signal, SettleMs);
        agree.push(r.agreeMs);
        claim.push(r.claimMs);
        cpu.push(r.survivorsCpuMs);
        if (theirs) {
          const e = await etcdTrial(theirs, signal, SettleMs);
          etcdAgree.push(e.agreeMs);
          etcdCpu.push(e.survivorsCpuMs);
        }
      }
      const missing = theirs ? etcdAgree : 'not measured';
      rows.push({ event: `leader ${signal} -> survivors agree (min / p50 / p90)`, ours: agree, etcd: missing, unit: 'ms' });
      rows.push({ event: `leader ${signal} -> new leader answers isLeader`, ours: claim, etcd: 'etcd has no lease answer', unit: 'ms' });
      // Load-independent: what the survivors spent on a CPU until they agreed (waiting for one is not in it).
      rows.push({ event: `leader ${signal} -> survivors' on-CPU time until they agree, both summed (min / p50 / p90)`, ours: cpu, etcd: theirs ? etcdCpu : 'not measured', unit: 'ms' });
    }
    if (rowsWanted.has('idle')) await idleRows(rows, ours, theirs);
  } finally {
    await ours.stop();
    await theirs?.stop();
  }
  if (rowsWanted.has('partition')) await partitionRow(rows, theirs !== undefined);
  printTable(rows, 'version' in etcd ? `etcd ${etcd.version}` : 'etcd');
  console.log(`\nload average at the end: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
}

/** What the figures were measured on; other processes on the machine show in the load average. */
function machine(): string {
  return `machine: ${cpus().length} CPUs (${cpus()[0]?.model ?? 'unknown'}), Linux ${release()}, Node ${process.version}; load average at the start: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`;
}

async function idleRows(rows: Row[], ours: ProcessCluster, theirs: EtcdCluster | undefined): Promise<void> {
  console.log(`idle row: ${idleWarmupMs / 1000} s of warm-up, then a ${idleWindowMs / 1000} s window`);
  await new Promise((r) => setTimeout(r, idleWarmupMs));
  const ourPids = ours.members.map((m) => m.child!.pid!);
  const etcdPids = theirs?.pids() ?? [];
  const cost = await idleCost([...ourPids, ...etcdPids], idleWindowMs);
  const ourCost = cost.slice(0, ourPids.length);
  const etcdCost = cost.slice(ourPids.length);
  rows.push({ event: `idle member RSS over ${idleWindowMs / 1000} s (min / p50 / max of members)`, ours: ourCost.map((c) => c.rssMb), etcd: theirs ? etcdCost.map((c) => c.rssMb) : 'not measured', unit: 'MB' });
  rows.push({ event: `idle member CPU over ${idleWindowMs / 1000} s (% of a core)`, ours: ourCost.map((c) => c.cpuPercent), etcd: theirs ? etcdCost.map((c) => c.cpuPercent) : 'not measured', unit: '%' });
}

async function partitionRow(rows: Row[], withEtcd: boolean): Promise<void> {
  // After the loopback clusters are gone, so that their load does not fall on this row.
  const partition = await partitionBench({ trials, tickMs: TickMs, electionTicks: ElectionTicks, settleMs: SettleMs, etcd: withEtcd });
  const partitionEvent = 'leader partitioned away (namespaces) -> survivors agree (min / p50 / p90)';
  if ('skipped' in partition) {
    console.log(`partition row skipped: ${partition.skipped}`);
    rows.push({ event: partitionEvent, ours: [], etcd: `skipped: ${partition.skipped}`, unit: 'ms' });
  } else {
    console.log(partition.verdictLine);
    rows.push({ event: partitionEvent, ours: partition.ours, etcd: partition.etcd, unit: 'ms' });
  }
}

function printTable(rows: Row[], anchor: string): void {
  console.log('');
  console.log(`| event | raft-elector | ${anchor} | ratio (p50 ours / etcd) |`);
  console.log('|---|---|---|---|');
  for (const r of rows) {
    if (r.ours.length === 0) {
      console.log(`| ${r.event} | not measured | ${typeof r.etcd === 'string' ? r.etcd : cell(r.etcd)} | n/a |`);
      continue;
    }
    const fmt = (v: number[]): string => (r.unit === '%' ? v.map((x) => x.toFixed(1)).join(', ') : cell(v));
    console.log(`| ${r.event} | ${fmt(r.ours)} ${r.unit} | ${typeof r.etcd === 'string' ? r.etcd : `${fmt(r.etcd)} ${r.unit}`} | ${ratio(r.ours, r.etcd)} |`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
