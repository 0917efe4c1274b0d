/**
 * The partition row of `npm run bench`: the leader cut off from both peers (every packet it
 * sends to them and they send to it dropped, test/faults/netns.ts), for raft-elector in the
 * fault harness's namespaces and for etcd in namespaces of the same shape. Both are timed the
 * same way, from the samplers' answers: from the moment the leader's egress is cut until the
 * two survivors' latest answers name one new leader in one term. Trials alternate. The
 * history of our side is judged by the fault checker afterwards.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { check, type FaultRecord, type Sample, type Verdict } from '../test/faults/checker.js';
import { NsCluster, nowMs } from '../test/faults/cluster.js';
import { startHubSampler, type SamplerConfig } from '../test/faults/hub-sampler.js';
import { cleanStale, FaultNet, netnsUnavailable } from '../test/faults/netns.js';
import { EtcdBin, etcdArgs } from './etcd-cluster.js';

const EtcdClientPort = 2379;
const EtcdPeerPort = 2380;
const MaxSamples = 1_000_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** etcd members in namespaces: peers on 198.18.0.i, clients (the sampler) on 198.18.1.i. */
class NsEtcd {
  readonly net: FaultNet;
  readonly samples: Sample[] = [];
  private readonly dir = mkdtempSync(join(tmpdir(), 'raft-elector-etcd-ns-'));
  private readonly children: ChildProcess[] = [];
  private sampler: ChildProcess | undefined;
  private readonly nameOf = new Map<string, string>();

  constructor(
    readonly size: number,
    private readonly timing: { heartbeatMs: number; electionMs: number },
  ) {
    this.net = new FaultNet(size);
  }

  get memberIds(): string[] {
    return Array.from({ length: this.size }, (_, i) => `m${i + 1}`);
  }

  start(): void {
    this.net.setUp();
    const members = this.memberIds.map((name) => ({ name, clientPort: EtcdClientPort, peerPort: EtcdPeerPort, dataDir: join(this.dir, name) }));
    const peerHosts = members.map((_, i) => this.net.peerAddress(i + 1));
    for (let i = 0; i < this.size; i++) {
      const args = etcdArgs(members, peerHosts, i, 'new', this.timing, this.net.obsAddress(i + 1));
      const child = spawn('ip', ['netns', 'exec', this.net.ns(i + 1), EtcdBin, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
      child.stderr!.resume();
      this.children.push(child);
    }
    const config: SamplerConfig = {
      probe: 'etcd-status',
      everyMs: 5,
      timeoutMs: 1_000,
      members: members.map((m, i) => ({ id: m.name, url: `http://${this.net.obsAddress(i + 1)}:${EtcdClientPort}/v3/maintenance/status` })),
    };
    this.sampler = startHubSampler<{ m: string; s: number; r: number; self: string; l: string; t: number }>(this.net, config, 'etcd sampler', (s) => {
      this.nameOf.set(s.self, s.m);
      const leader = s.l === '0' ? null : (this.nameOf.get(s.l) ?? `id:${s.l}`);
      if (this.samples.length < MaxSamples) this.samples.push({ member: s.m, sentMs: s.s, receivedMs: s.r, leader, term: s.t, isLeader: s.self === s.l });
    });
  }

  stop(): void {
    this.sampler?.kill('SIGKILL');
    for (const c of this.children) c.kill('SIGKILL');
    this.net.tearDown();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Latest answer per member among those sent at or after `sinceMs`. */
function latest(samples: Sample[], members: string[], sinceMs: number): Map<string, Sample> {
  const out = new Map<string, Sample>();
  for (let i = samples.length - 1; i >= 0 && out.size < members.length; i--) {
    const s = samples[i]!;
    if (s.sentMs < sinceMs) break;
    if (members.includes(s.member) && !out.has(s.member)) out.set(s.member, s);
  }
  return out;
}

/** The leader every one of `members` names (same term, no unknown ids), or undefined. */
function agreed(samples: Sample[], members: string[], sinceMs: number, not?: string): string | undefined {
  const l = latest(samples, members, sinceMs);
  if (l.size < members.length) return undefined;
  const first = [...l.values()][0]!;
  if (!first.leader || first.leader === not || first.leader.startsWith('id:')) return undefined;
  return [...l.values()].every((s) => s.leader === first.leader && s.term === first.term) ? first.leader : undefined;
}

/** The first instant, from the samples, at which every survivor names one new leader. */
function agreedAt(samples: Sample[], survivors: string[], sinceMs: number, old: string): number | undefined {
  const view = new Map<string, Sample>();
  const start = samples.findIndex((s) => s.sentMs >= sinceMs);
  if (start < 0) return undefined;
  // Sorted by when each answer arrived: the sampler prints in that order, per member.
  const after = samples.slice(start).filter((s) => survivors.includes(s.member)).sort((a, b) => a.receivedMs - b.receivedMs);
  for (const s of after) {
    view.set(s.member, s);
    if (view.size < survivors.length) continue;
    const all = [...view.values()];
    const f = all[0]!;
    if (f.leader && f.leader !== old && !f.leader.startsWith('id:') && all.every((x) => x.leader === f.leader && x.term === f.term)) return s.receivedMs;
  }
  return undefined;
}

async function until<T>(what: string, deadlineMs: number, probe: () => T | undefined): Promise<T> {
  const end = nowMs() + deadlineMs;
  while (nowMs() < end) {
    const v = probe();
    if (v !== undefined) return v;
    await sleep(10);
  }
  throw new Error(`partition bench: timed out after ${deadlineMs} ms waiting for ${what}`);
}

interface Side {
  net: FaultNet;
  samples: Sample[];
  members: string[];
}

/** One trial: cut the agreed leader off, time the survivors' agreement, heal, let it settle. */
async function trial(side: Side, settleMs: number, faults?: FaultRecord[]): Promise<number> {
  const since = nowMs();
  const old = await until('agreement before the partition', 30_000, () => agreed(side.samples, side.members, since));
  const at = side.members.indexOf(old) + 1;
  const others = side.members.map((_, i) => i + 1).filter((i) => i !== at);
  const startMs = nowMs();
  for (const o of others) side.net.drop(at, o);
  // The leader can no longer reach anyone: the clock starts; the other direction follows.
  const t0 = nowMs();
  for (const o of others) side.net.drop(o, at);
  const survivors = others.map((i) => side.members[i - 1]!);
  const agreedMs = await until('the survivors to agree on a new leader', 15_000, () => agreedAt(side.samples, survivors, t0, old));
  side.net.healAll();
  faults?.push({ kind: 'partition-leader', detail: `${old} cut off from ${survivors.join(',')}`, startMs, endMs: nowMs() });
  const healed = nowMs();
  await until('agreement after healing', 30_000, () => agreed(side.samples, side.members, healed));
  await sleep(settleMs);
  return agreedMs - t0;
}

export type PartitionResult = { skipped: string } | { ours: number[]; etcd: number[] | string; verdict: Verdict; verdictLine: string };

export async function partitionBench(o: { trials: number; tickMs: number; electionTicks: number; settleMs: number; etcd: boolean }): Promise<PartitionResult> {
  const why = netnsUnavailable();
  if (why) return { skipped: why };
  cleanStale();
  const ours = new NsCluster({ size: 3, tickMs: o.tickMs, electionTicks: o.electionTicks });
  const theirs = o.etcd ? new NsEtcd(3, { heartbeatMs: o.tickMs, electionMs: o.tickMs * o.electionTicks }) : undefined;
  const faults: FaultRecord[] = [];
  const oursMs: number[] = [];
  const etcdMs: number[] = [];
  let healedMs = 0;
  try {
    ours.start();
    theirs?.start();
    const oursSide: Side = { net: ours.net, samples: ours.samples, members: ours.members.map((m) => m.id) };
    for (let i = 0; i < o.trials; i++) {
      oursMs.push(await trial(oursSide, o.settleMs, faults));
      healedMs = faults[faults.length - 1]!.endMs;
      if (theirs) etcdMs.push(await trial({ net: theirs.net, samples: theirs.samples, members: theirs.memberIds }, o.settleMs));
    }
    await ours.stopSampling();
  } finally {
    await ours.stop();
    theirs?.stop();
  }
  const verdict = check({
    members: ours.members.map((m) => m.id),
    electionTimeoutMs: o.tickMs * o.electionTicks,
    samples: ours.samples,
    lives: ours.lives,
    roles: ours.roles,
    votes: ours.votes,
    faults,
    healedMs,
    endMs: nowMs(),
  });
  const verdictLine =
    `checker on raft-elector's side: faults=${verdict.faultsInjected} leader-changes=${verdict.leaderChanges} violations=${verdict.violationCount} ` +
    `samples=${ours.samples.length}${ours.droppedRecords ? ` records-dropped=${ours.droppedRecords}` : ''}` +
    verdict.violations.map((v) => `\n  VIOLATION ${v.kind}: ${v.message}`).join('');
  return { ours: oursMs, etcd: theirs ? etcdMs : 'not measured', verdict, verdictLine };
}

/** `node dist/bench/partition.js`: the partition row alone. */
if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const trials = Number(process.env.BENCH_TRIALS ?? 20);
  const { summarize } = await import('./stats.js');
  const r = await partitionBench({ trials, tickMs: 100, electionTicks: 10, settleMs: 2_000, etcd: true });
  if ('skipped' in r) console.log(`partition: skipped: ${r.skipped}`);
  else {
    const f = (v: number[]): string => {
      const s = summarize(v);
      return `${s.min.toFixed(0)} / ${s.p50.toFixed(0)} / ${s.p90.toFixed(0)} ms`;
    };
    console.log(`partition, ours (min / p50 / p90): ${f(r.ours)}; etcd: ${typeof r.etcd === 'string' ? r.etcd : f(r.etcd)}`);
    console.log(r.verdictLine);
  }
}
