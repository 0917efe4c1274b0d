/**
 * Real raft-elector processes, each in its own network namespace (see netns.ts), with
 * everything the checker needs recorded as it happens: every role change and granted vote
 * from the logs, every change of each state file's term/vote, every life of every process,
 * and the sampler's GET /leader answers. Every buffer is bounded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { STATE_FILE_NAME, parseStateBytes } from '../../cluster/state-file.js';
import { ElectorBin } from '../integration/harness.js';
import { agreed, committedConfigs, type ConfigRecord, type Life, type RoleEvent, type Sample, type VoteRecord } from './checker.js';
import { startHubSampler } from './hub-sampler.js';
import { FaultKube } from './kube.js';
import { FaultNet } from './netns.js';

export const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

const PeerPort = 4041;
const HttpPort = 4040;
const MaxSamples = 1_000_000;
const MaxEvents = 100_000;
const MaxLinesPerMember = 5_000;
const StatePollMs = 5;

export interface NsClusterOptions {
  size: number;
  tickMs: number;
  electionTicks: number;
  /** Extra environment for every member (the unsafe test switch). */
  env?: Record<string, string>;
  /** Per member (index 0 is m1): its clock and timers run at this rate (RAFT_ELECTOR_TEST_CLOCK_RATE). */
  clockRates?: number[];
  sampleEveryMs?: number;
  /**
   * Membership that follows pods (in-cluster mode against the test API server): `size` slots,
   * pods in the first `initialPods`; the others wait empty for pods the schedule adds.
   */
  kube?: { initialPods: number };
}

export interface NsMember {
  index: number;
  /** The slot: its namespace and addresses. */
  id: string;
  dataDir: string;
  /** Grows with each new identity in the slot (a wiped data dir, or a new pod). */
  incarnation: number;
  /** In-cluster: the pod in this slot (none while the slot is empty). */
  pod: { name: string; uid: string } | undefined;
  child: ChildProcess | undefined;
  paused: boolean;
  lines: string[];
  lastState: string;
  lastConfigs: string;
}

/** Clusters not yet stopped: an exiting test process still kills their members and removes their namespaces. */
const live = new Set<NsCluster>();
let exitHook = false;
function onExit(): void {
  for (const c of live) c.stopNow();
}

export class NsCluster {
  readonly net: FaultNet;
  readonly dir: string;
  readonly members: NsMember[] = [];
  readonly samples: Sample[] = [];
  readonly lives: Life[] = [];
  readonly roles: RoleEvent[] = [];
  readonly votes: VoteRecord[] = [];
  readonly configs: ConfigRecord[] = [];
  readonly kube: FaultKube | undefined;
  /** Configuration lists that did not apply (reported in the run's line). */
  configErrors: string[] = [];
  private readonly secretFile: string;
  private sampler: ChildProcess | undefined;
  private poller: NodeJS.Timeout | undefined;
  private dropped = 0;

  constructor(readonly options: NsClusterOptions) {
    this.net = new FaultNet(options.size);
    this.dir = mkdtempSync(join(tmpdir(), 'raft-elector-faults-'));
    this.secretFile = join(this.dir, 'secret');
    writeFileSync(this.secretFile, randomBytes(32).toString('hex'), { mode: 0o600 });
    for (let i = 1; i <= options.size; i++) {
      this.members.push({ index: i, id: `m${i}`, dataDir: join(this.dir, `m${i}`), incarnation: 0, pod: undefined, child: undefined, paused: false, lines: [], lastState: '', lastConfigs: '' });
    }
    if (options.kube) this.kube = new FaultKube(this.dir);
  }

  /** Who runs in the slot: the raft id in-cluster, else the slot and its data-dir incarnation. */
  identity(m: NsMember): string {
    return m.pod ? `${m.pod.name}@${m.pod.uid}` : `${m.id}#${m.incarnation}`;
  }

  /** Slots with a process running (or paused). */
  running(): NsMember[] {
    return this.members.filter((m) => m.child !== undefined);
  }

  /** In-cluster: a new pod (a new identity, on a fresh data dir) in an empty slot, started. */
  addPod(m: NsMember, name: string): void {
    if (!this.kube) throw new Error('addPod needs the in-cluster mode');
    if (m.pod || m.child) throw new Error(`slot ${m.id} is not empty`);
    const pod = this.kube.createPod(name, this.net.peerAddress(m.index));
    m.pod = { name, uid: pod.metadata.uid };
    m.incarnation++;
    m.dataDir = join(this.dir, `${name}-${m.incarnation}`);
    m.lastState = '';
    m.lastConfigs = '';
    this.spawn(m);
  }

  /**
   * In-cluster: deletes the slot's pod as kubectl delete pod and the kubelet do: the pod shows
   * deleting at once; after `preStopMs` (a preStop hook) the container gets SIGTERM, SIGKILL
   * after `graceMs`; then the pod object goes and the slot is empty.
   */
  async deletePod(m: NsMember, preStopMs: number, graceMs = 10_000): Promise<void> {
    if (!this.kube || !m.pod) return;
    const name = m.pod.name;
    this.kube.beginDelete(name);
    if (preStopMs > 0) await new Promise((r) => setTimeout(r, preStopMs));
    await this.terminate(m, graceMs);
    this.kube.finalize(name);
    m.pod = undefined;
  }

  /** SIGTERM (a paused process is continued first), SIGKILL if it has not exited after graceMs. */
  async terminate(m: NsMember, graceMs: number): Promise<void> {
    const child = m.child;
    if (!child) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGCONT');
    m.paused = false;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  get electionTimeoutMs(): number {
    return this.options.tickMs * this.options.electionTicks;
  }

  /** Records dropped because a bound was reached (reported, never silent). */
  get droppedRecords(): number {
    return this.dropped;
  }

  async start(): Promise<void> {
    if (!exitHook) {
      exitHook = true;
      process.once('exit', onExit);
    }
    live.add(this);
    this.net.setUp();
    if (this.kube) {
      await this.kube.start(this.net);
      for (const m of this.members.slice(0, this.options.kube!.initialPods)) this.addPod(m, m.id);
    } else {
      for (const m of this.members) this.spawn(m);
    }
    this.poller = setInterval(() => this.pollStateFiles(), StatePollMs);
    this.startSampler();
  }

  member(id: string): NsMember {
    const m = this.members.find((x) => x.id === id);
    if (!m) throw new Error(`no member ${id}`);
    return m;
  }

  private peers(): string {
    return this.members.map((m) => `${m.id}=${this.net.peerAddress(m.index)}:${PeerPort}`).join(',');
  }

  spawn(m: NsMember): void {
    if (m.child) throw new Error(`${m.id} is already running`);
    const kube = this.kube && m.pod ? this.kube.memberArgs(m.pod) : undefined;
    const args = [
      'netns', 'exec', this.net.ns(m.index),
      process.execPath, ElectorBin,
      ...(kube ? kube.args : ['--id', m.id, '--peers', this.peers()]),
      '--listen', `${this.net.peerAddress(m.index)}:${PeerPort}`,
      '--http', `${this.net.obsAddress(m.index)}:${HttpPort}`,
      '--data-dir', m.dataDir,
      '--secret-file', this.secretFile,
      '--tick-ms', String(this.options.tickMs),
      '--election-ticks', String(this.options.electionTicks),
    ];
    const rate = this.options.clockRates?.[m.index - 1];
    const env = { ...process.env, ...this.options.env, ...kube?.env, ...(rate === undefined ? {} : { RAFT_ELECTOR_TEST_RUN: '1', RAFT_ELECTOR_TEST_CLOCK_RATE: rate.toFixed(4) }) };
    const child = spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    m.child = child;
    m.paused = false;
    const identity = this.identity(m);
    const life: Life = { member: m.id, incarnation: m.incarnation, identity, startMs: nowMs(), endMs: null };
    this.lives.push(life);
    const incarnation = m.incarnation;
    let partial = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      const text = partial + chunk.toString('utf8');
      const cut = text.lastIndexOf('\n');
      partial = text.slice(cut + 1);
      for (const line of text.slice(0, cut + 1).split('\n')) if (line) this.onLine(m, incarnation, identity, line);
    });
    child.stderr!.on('data', (chunk: Buffer) => this.keepLine(m, chunk.toString('utf8').trimEnd()));
    child.on('exit', () => {
      life.endMs = nowMs();
      if (m.child === child) m.child = undefined;
    });
  }

  private keepLine(m: NsMember, line: string): void {
    m.lines.push(line);
    if (m.lines.length > MaxLinesPerMember) m.lines.shift();
  }

  private onLine(m: NsMember, incarnation: number, identity: string, line: string): void {
    const atMs = nowMs();
    this.keepLine(m, line);
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    const msg = typeof rec.msg === 'string' ? rec.msg : '';
    if (msg.startsWith('role ') && typeof rec.role === 'string' && typeof rec.term === 'number') {
      this.push(this.roles, { member: m.id, incarnation, identity, atMs, term: rec.term, role: rec.role, leader: typeof rec.leader === 'string' ? rec.leader : null });
    } else if (msg === 'vote granted' && typeof rec.term === 'number' && typeof rec.candidate === 'string') {
      this.push(this.votes, { member: m.id, incarnation, identity, atMs, term: rec.term, vote: rec.candidate, source: 'log' });
    }
  }

  private push<T>(list: T[], item: T, max = MaxEvents): void {
    if (list.length >= max) {
      this.dropped++;
      return;
    }
    list.push(item);
  }

  /**
   * The state file's term and vote, recorded on every change seen (a poll can miss a
   * short-lived one), and in-cluster its committed configurations, on every change.
   */
  private pollStateFiles(): void {
    for (const m of this.members) {
      const path = join(m.dataDir, STATE_FILE_NAME);
      let bytes: Buffer;
      try {
        bytes = readFileSync(path);
      } catch {
        continue;
      }
      try {
        const state = parseStateBytes(bytes, path).state;
        const hs = state.hardState;
        const identity = this.identity(m);
        const key = `${m.incarnation}/${hs.term}/${hs.vote}`;
        if (key !== m.lastState) {
          m.lastState = key;
          this.push(this.votes, { member: m.id, incarnation: m.incarnation, identity, atMs: nowMs(), term: hs.term, vote: hs.vote, source: 'state-file' });
        }
        if (!this.kube) continue;
        const snapshot = { index: state.snapshot.index, ...(state.confState ? { confState: state.confState } : {}) };
        const { configs, error } = committedConfigs(snapshot, state.entries, hs.commit);
        if (error && this.configErrors.length < 10) this.configErrors.push(`${identity}: ${error}`);
        const configsKey = `${m.incarnation}/${configs.map((c) => c.index).join(',')}`;
        if (configsKey === m.lastConfigs) continue;
        m.lastConfigs = configsKey;
        this.push(this.configs, { member: m.id, identity, atMs: nowMs(), commit: hs.commit, configs });
      } catch {
        // read while the file was created or regrown (a rename): the next poll sees the whole file
      }
    }
  }

  private startSampler(): void {
    const config = {
      everyMs: this.options.sampleEveryMs ?? 5,
      // Long enough that a paused member's late answer still arrives and counts.
      timeoutMs: 30_000,
      members: this.members.map((m) => ({ id: m.id, url: `http://${this.net.obsAddress(m.index)}:${HttpPort}/leader` })),
    };
    this.sampler = startHubSampler<{ m: string; s: number; r: number; l: string | null; t: number; i: boolean; d?: string; L?: string | null }>(this.net, config, 'sampler', (s) => {
      // In-cluster the raft id is the identity; with --peers a wiped member keeps its name, so the checker places it by life.
      const ids = s.d === undefined || !this.kube ? {} : { selfId: s.d, leaderId: s.L ?? null };
      this.push(this.samples, { member: s.m, sentMs: s.s, receivedMs: s.r, leader: s.l, term: s.t, isLeader: s.i, ...ids }, MaxSamples);
    });
  }

  /** The member whose latest answer claims isLeader, if any. */
  currentLeader(): NsMember | undefined {
    const latest = new Map<string, Sample>();
    for (let i = this.samples.length - 1; i >= 0 && latest.size < this.members.length; i--) {
      const s = this.samples[i]!;
      if (!latest.has(s.member)) latest.set(s.member, s);
    }
    const claim = [...latest.values()].filter((s) => s.isLeader).sort((a, b) => b.receivedMs - a.receivedMs)[0];
    return claim ? this.member(claim.member) : undefined;
  }

  /**
   * In-cluster: whether the pod in `m` can go for good and leave a group that can still commit
   * its removal: the voters of the latest committed configuration whose pods still exist, `m`
   * left out, are a majority of it (of both halves while joint). Paused, cut off or restarting
   * members count: they come back. FAULTS_MEMBERSHIP_UNGUARDED=1 lifts the guard (see README).
   */
  canLose(m: NsMember): boolean {
    if (process.env.FAULTS_MEMBERSHIP_UNGUARDED === '1') return true;
    let latest: { index: number; conf: string } | undefined;
    for (const r of this.configs) {
      const last = r.configs.at(-1);
      if (last && (!latest || last.index > latest.index)) latest = last;
    }
    if (!latest) return false;
    const cs = JSON.parse(latest.conf) as { voters: string[]; votersOutgoing: string[] };
    const gone = this.identity(m);
    const existing = new Set(this.members.filter((x) => x.pod && x !== m).map((x) => this.identity(x)));
    const majority = (voters: string[]): boolean => voters.length === 0 || voters.filter((v) => v !== gone && existing.has(v)).length > voters.length / 2;
    return majority(cs.voters) && majority(cs.votersOutgoing);
  }

  /** In-cluster: the slot of the member the latest answer names as leader (it may not hold a lease now). */
  namedLeader(): NsMember | undefined {
    for (let i = this.samples.length - 1; i >= 0; i--) {
      const id = this.samples[i]!.leaderId;
      if (id) return this.members.find((m) => m.pod && this.identity(m) === id);
    }
    return undefined;
  }

  /** Every running member's latest answer, among those sent after `sinceMs`. */
  private latestSince(sinceMs: number): { latest: Map<string, Sample>; expected: number } {
    const running = new Set(this.running().map((m) => m.id));
    const latest = new Map<string, Sample>();
    for (let i = this.samples.length - 1; i >= 0 && latest.size < running.size; i--) {
      const s = this.samples[i]!;
      if (s.sentMs < sinceMs) break;
      if (running.has(s.member) && !latest.has(s.member)) latest.set(s.member, s);
    }
    return { latest, expected: running.size };
  }

  /** Every running member has answered a request sent after `sinceMs`. */
  allAnsweredSince(sinceMs: number): boolean {
    const { latest, expected } = this.latestSince(sinceMs);
    return expected > 0 && latest.size === expected;
  }

  /** Every running member's latest answer (sent after `sinceMs`) names one leader and term, and it claims isLeader. */
  agreedSince(sinceMs: number): boolean {
    const { latest, expected } = this.latestSince(sinceMs);
    return expected > 0 && latest.size === expected && agreed([...latest.values()]);
  }

  async kill(m: NsMember): Promise<void> {
    const child = m.child;
    if (!child) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGCONT');
    child.kill('SIGKILL');
    await exited;
  }

  pause(m: NsMember): void {
    m.child?.kill('SIGSTOP');
    m.paused = m.child !== undefined;
  }

  resume(m: NsMember): void {
    if (m.paused) m.child?.kill('SIGCONT');
    m.paused = false;
  }

  /** Starts a stopped member again; `wipe` removes its data dir first, which makes it a new identity. */
  restart(m: NsMember, wipe: boolean): void {
    if (m.child || (this.kube && !m.pod)) return;
    if (wipe) {
      rmSync(m.dataDir, { recursive: true, force: true });
      m.incarnation++;
    }
    this.spawn(m);
  }

  /** Stops the sampler, returning once its last answers are in. */
  async stopSampling(): Promise<void> {
    const child = this.sampler;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((r) => child.once('close', () => r()));
    child.kill('SIGTERM');
    await exited;
  }

  async stop(): Promise<void> {
    if (this.poller) clearInterval(this.poller);
    await Promise.all(this.members.map((m) => this.kill(m)));
    await this.kube?.stop();
    this.stopNow();
  }

  /** Synchronous, for the exit hook too: kills whatever still runs and removes the namespaces and files. */
  stopNow(): void {
    if (this.poller) clearInterval(this.poller);
    for (const m of this.members) {
      m.child?.kill('SIGCONT');
      m.child?.kill('SIGKILL');
    }
    this.sampler?.kill('SIGKILL');
    this.kube?.stopNow();
    this.net.tearDown();
    rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }
}
