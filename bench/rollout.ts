/**
 * `npm run bench:rollout`: membership that follows a Deployment, on the real control plane of
 * the e2e suite (etcd, kube-apiserver, kube-controller-manager; the fake kubelet runs each pod's
 * process). Prints, for raft-elector (the chart's example Deployment, 3 replicas):
 *   - pod Running → voter (kubectl scale 3→5) and pod deleting → removed from the configuration
 *     (each old pod of a rollout, and scale 5→3);
 *   - the total time with no isLeader anywhere during `kubectl rollout restart`, and overlaps;
 * and the same rollout of the anchor, client-go's Lease elector with ReleaseOnCancel
 * (bench/client-go-anchor, built into ~/.cache), played by the same fake kubelet, trials
 * alternating. Without the control plane, helm or go it prints why and skips that part.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { repoRoot } from '../test/chart/helm.js';
import { ControlPlane, missingControlPlane } from '../test/e2e/control-plane.js';
import { ElectorBin, Group } from '../test/e2e/group.js';
import { FakeKubelet, registerNode } from '../test/e2e/kubelet.js';
import { LeaderSampler, type Target } from '../test/e2e/leader-sampler.js';
import { GroupProcess } from '../test/e2e/processes.js';
import type { Pod } from '../test/e2e/rest.js';
import { freePort, waitFor } from '../test/integration/harness.js';
import { joinSplit, leaderlessMs, leadershipTimeline, memberGapMs, traceGap, type JoinSplit, type Span } from './rollout-trace.js';
import { summarize } from './stats.js';

const Trials = Number(process.env.ROLLOUT_TRIALS ?? 3);
/** Scale-ups 3→5→3 before the rollouts: each gives two Running → voter figures. */
const ScaleCycles = Number(process.env.ROLLOUT_SCALE_CYCLES ?? 2);
const Replicas = 3;
const AnchorDir = join(repoRoot, 'bench/client-go-anchor');
/** What each pod runs: the image's bundle (npm run bundle), or dist/ with ROLLOUT_FROM_DIST=1 (Node loads it ~3x slower). */
const ElectorUnderTest = process.env.ROLLOUT_FROM_DIST === '1' ? ElectorBin : join(repoRoot, 'dist/bundle/raft-elector.mjs');
const AnchorBin = join(process.env.RAFT_ELECTOR_BENCH_CACHE ?? join(homedir(), '.cache/raft-elector-bench'), 'client-go-anchor');

/**
 * The e2e sampler's judgement (overlaps), but each target sampled on its own loop: in one
 * Promise.all round a member that is starting (or CPU-starved) holds every other answer back
 * for up to its 500 ms timeout, which reads as time without a leader.
 */
class IndependentSampler extends LeaderSampler {
  private readonly loops = new Map<string, Promise<void>>();
  private on = false;
  private watcher: Promise<void> | undefined;

  constructor(private readonly list: () => Target[], private readonly periodMs = 5) {
    super(list, periodMs);
  }

  override start(): void {
    this.on = true;
    this.watcher = (async () => {
      while (this.on) {
        for (const t of this.list()) if (!this.loops.has(t.key)) this.loops.set(t.key, this.follow(t));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
  }

  /** While paused no request goes out (the other group's rollout is being measured: less load on this process). */
  paused = false;

  private async follow(t: Target): Promise<void> {
    while (this.on && this.list().some((x) => x.key === t.key)) {
      if (this.paused) {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      const sentAt = performance.now();
      try {
        const res = await fetch(t.url, { signal: AbortSignal.timeout(500) });
        const body = (await res.json()) as { term: number; isLeader: boolean };
        this.samples.push({ key: t.key, term: body.term, isLeader: body.isLeader, sentAt, receivedAt: performance.now() });
      } catch {
        // Starting or stopping: no answer is no claim.
      }
      await new Promise((r) => setTimeout(r, this.periodMs));
    }
    this.loops.delete(t.key);
  }

  override async stop(): Promise<void> {
    this.on = false;
    await this.watcher;
    await Promise.all([...this.loops.values()]);
  }
}

interface RolloutResult {
  totalMs: number;
  longestMs: number;
  gaps: number;
  spans: Span[];
  overlaps: number;
  wallMs: number;
}

/** Records when each pod (by uid) was first seen Running and first seen deleting, on the wall clock. */
class PodClock {
  readonly running = new Map<string, number>();
  readonly deleting = new Map<string, number>();
  private stopped = false;
  private loop: Promise<void> | undefined;
  constructor(private readonly list: () => Promise<Pod[]>) {}
  start(): void {
    this.loop = (async () => {
      while (!this.stopped) {
        const now = Date.now();
        for (const p of await this.list().catch(() => [] as Pod[])) {
          const phase = (p as { status?: { phase?: string } }).status?.phase;
          if (phase === 'Running' && !this.running.has(p.metadata.uid)) this.running.set(p.metadata.uid, now);
          if (p.metadata.deletionTimestamp && !this.deleting.has(p.metadata.uid)) this.deleting.set(p.metadata.uid, now);
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    })();
  }
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

/** raft-elector: the chart's example Deployment of 3. */
class Ours {
  private constructor(
    readonly group: Group,
    readonly sampler: IndependentSampler,
    readonly clock: PodClock,
  ) {}

  static async start(cp: ControlPlane, helm: Exclude<ReturnType<typeof Group.helm>, string>): Promise<Ours> {
    const group = await Group.install(cp, helm, { namespace: 'bench-ours', release: 'ro', workload: 'Deployment', electorBin: ElectorUnderTest });
    const sampler = new IndependentSampler(() =>
      group.incarnations.filter((m) => m.process.running).map((m) => ({ key: `${m.name}@${m.uid}`, url: `http://${m.ip}:${group.httpPort}/leader` })),
    );
    sampler.start();
    const clock = new PodClock(() => group.pods());
    clock.start();
    const ours = new Ours(group, sampler, clock);
    await ours.converged(Replicas);
    return ours;
  }

  get deployment(): string {
    return this.group.sts.metadata.name;
  }

  /** The leader's configuration equals the live pods, voters at the odd count, one claim. */
  converged(pods: number, deadlineMs = 120_000): Promise<string[]> {
    const wanted = Math.min(pods, 5) % 2 === 0 ? Math.min(pods, 5) - 1 : Math.min(pods, 5);
    return waitFor(`raft-elector's membership to equal its ${pods} pods`, deadlineMs, async () => {
      const live = await this.group.livePods();
      if (live.length !== pods) return undefined;
      if (!live.every((p) => this.group.incarnations.some((i) => i.uid === p.metadata.uid && i.process.running))) return undefined;
      const ids = live.map((p) => `${p.metadata.name}@${p.metadata.uid}`).sort();
      const answers = await Promise.all(live.map((p) => this.group.ask(p.metadata.name).catch(() => undefined)));
      const leader = answers.find((a) => a?.isLeader);
      if (!leader || !answers.every((a) => a?.leaderId === leader.selfId)) return undefined;
      const members = leader.members.filter((m) => m.membership === 'voter' || m.membership === 'learner').map((m) => m.id).sort();
      const voters = leader.members.filter((m) => m.membership === 'voter').length;
      return JSON.stringify(members) === JSON.stringify(ids) && voters === wanted ? ids : undefined;
    }, 200);
  }

  async rollout(cp: ControlPlane): Promise<RolloutResult> {
    const before = await this.converged(Replicas);
    const overlapsBefore = this.sampler.overlaps().length;
    const from = performance.now();
    await cp.kubectl(['rollout', 'restart', `deployment/${this.deployment}`, '--namespace', 'bench-ours']);
    await waitFor('every raft-elector pod to be replaced and the membership to follow', 240_000, async () => {
      const ids = await this.converged(Replicas, 5_000).catch(() => undefined);
      return ids && ids.every((id) => !before.includes(id)) ? true : undefined;
    }, 200);
    const to = performance.now();
    return { ...leaderlessMs(this.sampler.samples, from, to), overlaps: this.sampler.overlaps().length - overlapsBefore, wallMs: to - from };
  }

  /** From the leaders' logs: when each incarnation became a voter, and when it left the configuration. */
  membershipTimes(): { voterAt: Map<string, number>; removedAt: Map<string, number> } {
    const voterAt = new Map<string, number>();
    const removedAt = new Map<string, number>();
    for (const l of this.group.logLines()) {
      if (l.component !== 'reconciler' || typeof l.member !== 'string' || typeof l.time !== 'number') continue;
      const uid = l.member.slice(l.member.indexOf('@') + 1);
      if (l.to === 'voter' && !voterAt.has(uid)) voterAt.set(uid, l.time);
      if (l.to === null && !removedAt.has(uid)) removedAt.set(uid, l.time);
    }
    return { voterAt, removedAt };
  }

  traceGap(span: Span): string {
    return traceGap(this.group.incarnations, span);
  }

  leadershipTimeline(spans: readonly Span[]): string[] {
    return leadershipTimeline(this.group.incarnations, spans);
  }

  memberGapMs(span: Span): number | undefined {
    return memberGapMs(this.group.incarnations, span);
  }

  joinSplit(uid: string, runningAt: number): JoinSplit | undefined {
    return joinSplit(this.group.incarnations, uid, runningAt);
  }

  async stop(): Promise<void> {
    await this.sampler.stop();
    await this.clock.stop();
    await this.group.stop();
  }
}

/** client-go's Lease elector with ReleaseOnCancel, as the process of each pod of a Deployment of 3. */
class Anchor {
  readonly procs = new Map<string, { name: string; ip: string; process: GroupProcess }>();
  private kubelet!: FakeKubelet;
  sampler!: IndependentSampler;
  private readonly port: Promise<number> = freePort();
  private constructor(private readonly cp: ControlPlane, private readonly dir: string) {}

  static async start(cp: ControlPlane): Promise<Anchor> {
    const a = new Anchor(cp, join(cp.dir, 'anchor'));
    mkdirSync(a.dir, { recursive: true });
    const port = await a.port;
    const labels = { app: 'client-go-anchor' };
    const objects = [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bench-anchor' } },
      // No service-account controller runs here to make `default`; the process uses the admin kubeconfig.
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'anchor', namespace: 'bench-anchor' } },
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'anchor', namespace: 'bench-anchor' },
        spec: {
          replicas: Replicas,
          selector: { matchLabels: labels },
          // The same strategy as the chart's example Deployment.
          strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
          template: { metadata: { labels }, spec: { serviceAccountName: 'anchor', automountServiceAccountToken: false, containers: [{ name: 'app', image: 'client-go-anchor:bench' }] } },
        },
      },
    ];
    const manifest = join(a.dir, 'manifest.yaml');
    writeFileSync(manifest, objects.map((o) => stringify(o)).join('---\n'));
    await cp.kubectl(['apply', '-f', manifest]);
    a.kubelet = new FakeKubelet(cp.admin, 'bench-anchor', 'app=client-go-anchor', {
      start: async (pod, ip) => {
        const process = GroupProcess.start(`anchor ${pod.metadata.name}`, AnchorBin, [
          `--kubeconfig=${cp.kubeconfig}`, '--namespace=bench-anchor', '--lease=anchor', `--listen=${ip}:${port}`, `--id=${pod.metadata.name}`,
        ], { logFile: join(a.dir, `${pod.metadata.name}.log`) });
        a.procs.set(pod.metadata.uid, { name: pod.metadata.name, ip, process });
      },
      stop: async (pod, graceMs) => {
        const p = a.procs.get(pod.metadata.uid);
        if (!p) return;
        p.process.signal('SIGTERM');
        if (!(await p.process.waitExit(graceMs))) {
          p.process.signal('SIGKILL');
          await p.process.waitExit(5_000);
        }
      },
      ready: async (pod) => {
        const p = a.procs.get(pod.metadata.uid);
        if (!p?.process.running) return false;
        return (await fetch(`http://${p.ip}:${port}/healthz`, { signal: AbortSignal.timeout(2_000) })).status === 200;
      },
    }, 'pool');
    a.kubelet.start();
    a.sampler = new IndependentSampler(() => [...a.procs.entries()].filter(([, p]) => p.process.running).map(([uid, p]) => ({ key: `${p.name}@${uid}`, url: `http://${p.ip}:${port}/leader` })));
    a.sampler.start();
    await a.settled();
    return a;
  }

  private async livePods(): Promise<Pod[]> {
    const list = await this.cp.admin.json<{ items: Pod[] }>('GET', '/api/v1/namespaces/bench-anchor/pods');
    return list.items.filter((p) => !p.metadata.deletionTimestamp);
  }

  /** 3 live pods, each running its process, one of them claiming. */
  settled(deadlineMs = 120_000): Promise<string[]> {
    return waitFor('the anchor Deployment to run 3 candidates with one leader', deadlineMs, async () => {
      const live = await this.livePods();
      if (live.length !== Replicas || !live.every((p) => this.procs.get(p.metadata.uid)?.process.running)) return undefined;
      const since = performance.now() - 300;
      const claims = this.sampler.samples.filter((s) => s.sentAt >= since && s.isLeader);
      const uids = live.map((p) => p.metadata.uid).sort();
      return claims.some((c) => uids.includes(c.key.slice(c.key.indexOf('@') + 1))) ? uids : undefined;
    }, 200);
  }

  async rollout(): Promise<RolloutResult> {
    const before = await this.settled();
    const overlapsBefore = this.sampler.overlaps().length;
    const from = performance.now();
    await this.cp.kubectl(['rollout', 'restart', 'deployment/anchor', '--namespace', 'bench-anchor']);
    await waitFor('every anchor pod to be replaced with a leader among them', 240_000, async () => {
      const uids = await this.settled(5_000).catch(() => undefined);
      return uids && uids.every((u) => !before.includes(u)) ? true : undefined;
    }, 200);
    const to = performance.now();
    return { ...leaderlessMs(this.sampler.samples, from, to), overlaps: this.sampler.overlaps().length - overlapsBefore, wallMs: to - from };
  }

  async stop(): Promise<void> {
    await this.sampler?.stop();
    await this.kubelet?.stop();
    await Promise.all([...this.procs.values()].map((p) => p.process.stop(5_000)));
  }
}

/** Builds the anchor into the cache; a reason string when it cannot. */
function buildAnchor(): string | null {
  const go = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (go.error || go.status !== 0) return 'go is not installed (the anchor is a Go program on k8s.io/client-go)';
  mkdirSync(join(AnchorBin, '..'), { recursive: true });
  const build = spawnSync('go', ['build', '-o', AnchorBin, '.'], { cwd: AnchorDir, encoding: 'utf8', timeout: 900_000 });
  if (build.status !== 0) return `go build of bench/client-go-anchor failed: ${(build.stderr || build.error?.message || '').trim().split('\n').slice(-3).join(' | ')}`;
  return null;
}

function row(values: number[]): string {
  const s = summarize(values);
  return `min ${s.min.toFixed(0)} / p50 ${s.p50.toFixed(0)} / p90 ${s.p90.toFixed(0)} / max ${s.max.toFixed(0)} ms (n=${s.n})`;
}

function load(): string {
  return loadavg().map((l) => l.toFixed(1)).join(' ');
}

async function main(): Promise<void> {
  const missing = missingControlPlane();
  if (missing) {
    console.log(`bench rollout skipped: ${missing}`);
    return;
  }
  const helm = Group.helm();
  if (typeof helm === 'string') {
    console.log(`bench rollout skipped: ${helm}`);
    return;
  }
  const anchorMissing = existsSync(join(AnchorDir, 'go.mod')) ? buildAnchor() : `no anchor program at ${AnchorDir}`;
  if (!existsSync(ElectorUnderTest)) {
    console.log(`bench rollout skipped: ${ElectorUnderTest} is missing (npm run bundle)`);
    return;
  }
  console.log(`raft-elector runs ${ElectorUnderTest === ElectorBin ? 'from dist/ (ROLLOUT_FROM_DIST=1)' : 'as the image runs it: the esbuild bundle'}`);
  console.log(`bench rollout: Deployment of ${Replicas}, maxSurge 1, maxUnavailable 0, ${Trials} rollout restarts each, alternating; sampling GET /leader on every process every 5 ms; load ${load()}`);
  console.log(`anchor: ${anchorMissing ?? `client-go ${anchorVersion()} leaderelection, LeaseLock, LeaseDuration 15 s, RenewDeadline 10 s, RetryPeriod 2 s, ReleaseOnCancel`}`);
  const dir = mkdtempSync(join(process.env.RAFT_ELECTOR_E2E_WORKDIR ?? tmpdir(), 'raft-elector-bench-rollout-'));
  const cp = await ControlPlane.start(join(dir, 'cp'));
  let ours: Ours | undefined;
  let anchor: Anchor | undefined;
  try {
    await registerNode(cp.admin);
    ours = await Ours.start(cp, helm);
    anchor = anchorMissing ? undefined : await Anchor.start(cp);

    // Running → voter and deleting → removed, from scales 3→5→3 of ours (two new pods each).
    const scaleUps: { from: number; to: number }[] = [];
    for (let i = 0; i < ScaleCycles; i++) {
      const from = Date.now();
      await cp.kubectl(['scale', 'deployment', ours.deployment, '--replicas=5', '--namespace', 'bench-ours']);
      await ours.converged(5);
      scaleUps.push({ from, to: Date.now() });
      await cp.kubectl(['scale', 'deployment', ours.deployment, '--replicas=3', '--namespace', 'bench-ours']);
      await ours.converged(3);
    }

    const mine: RolloutResult[] = [];
    const theirs: RolloutResult[] = [];
    for (let i = 0; i < Trials; i++) {
      // Each rollout is sampled alone: the idle group's sampler would only load this process.
      if (anchor) anchor.sampler.paused = true;
      const r = await ours.rollout(cp);
      if (anchor) anchor.sampler.paused = false;
      mine.push(r);
      console.log(`  trial ${i + 1} raft-elector: no isLeader ${r.totalMs.toFixed(0)} ms in ${r.gaps} gap(s) (longest ${r.longestMs.toFixed(0)} ms), ${r.overlaps} overlaps, rollout took ${(r.wallMs / 1000).toFixed(1)} s; load ${load()}`);
      for (const span of r.spans) console.log(`    ${ours.traceGap(span)}`);
      const timeline = ours.leadershipTimeline(r.spans);
      if (timeline.length > 0) console.log(`    more than one gap: every member's leadership lines (ms after the first gap's last claim)\n${timeline.map((t) => `      ${t}`).join('\n')}`);
      if (anchor) {
        ours.sampler.paused = true;
        const a = await anchor.rollout().finally(() => (ours!.sampler.paused = false));
        theirs.push(a);
        console.log(`  trial ${i + 1} client-go:    no isLeader ${a.totalMs.toFixed(0)} ms in ${a.gaps} gap(s) (longest ${a.longestMs.toFixed(0)} ms), ${a.overlaps} overlaps, rollout took ${(a.wallMs / 1000).toFixed(1)} s; load ${load()}`);
      }
    }

    const { voterAt, removedAt } = ours.membershipTimes();
    const toVoter: number[] = [];
    const toRemoved: number[] = [];
    const splits: JoinSplit[] = [];
    for (const [uid, at] of ours.clock.running) {
      const v = voterAt.get(uid);
      // Only the scale-up: in a rollout of 3 a new pod stays a learner until an old voter leaves.
      if (v !== undefined && scaleUps.some((w) => at >= w.from && at <= w.to) && v >= at) {
        toVoter.push(v - at);
        const split = ours.joinSplit(uid, at);
        if (split) splits.push(split);
      }
    }
    for (const [uid, at] of ours.clock.deleting) {
      const r = removedAt.get(uid);
      if (r !== undefined) toRemoved.push(Math.max(0, r - at));
    }
    console.log('');
    console.log(`raft-elector, pod Running -> voter (scale 3->5, ${ScaleCycles}x; target < 1000 ms): ${row(toVoter)}`);
    if (splits.length > 0) {
      const part = (name: string, pick: (s: JoinSplit) => number) => `    ${name}: ${row(splits.map(pick))}`;
      console.log('  of which (from the processes\' logs):');
      console.log(part('process spawned -> voter (the whole way, whenever Running is reported)', (s) => s.spawnToVoter));
      console.log(part('process spawned -> Running reported (the fake kubelet, after the container started)', (s) => s.spawnToRunning));
      console.log(part('spawned -> member up (Node start-up, config, bootstrap decision)', (s) => s.spawnToUp));
      console.log(part('member up -> voter (the figure the reconciler owns)', (s) => s.memberUpToVoter));
      console.log(part('  member up -> leader linked to it', (s) => s.upToLinked));
      console.log(part('  linked -> learner proposed', (s) => s.linkedToProposed));
      console.log(part('  learner proposed -> committed', (s) => s.learnerCommit));
      console.log(part('  learner -> promotion proposed (catch-up, the other learner)', (s) => s.learnerToPromote));
      console.log(part('  promotion proposed -> committed', (s) => s.promoteCommit));
    }
    console.log(`raft-elector, pod deleting -> removed from the configuration (scale 5->3 and the rollouts; target < 1000 ms): ${row(toRemoved)}`);
    const total = (rs: RolloutResult[]) => rs.map((r) => r.totalMs);
    console.log(`rollout restart of ${Replicas}, total time with no isLeader anywhere (target < 100 ms):`);
    console.log(`  raft-elector: ${row(total(mine))}; overlaps ${mine.reduce((n, r) => n + r.overlaps, 0)}`);
    const logged = mine.map((r) => r.spans.map((sp) => ours!.memberGapMs(sp)));
    if (logged.every((gs) => gs.every((g) => g !== undefined))) {
      console.log(`  raft-elector, the same gaps in the members' own logs (end of one claim to the start of the next): ${row(logged.map((gs) => gs.reduce((a, g) => a + g!, 0)))}`);
    } else {
      console.log('  raft-elector, the same gaps in the members\' own logs: a log line is missing for some gap');
    }
    if (anchor) {
      console.log(`  client-go:    ${row(total(theirs))}; overlaps ${theirs.reduce((n, r) => n + r.overlaps, 0)}`);
      console.log(`  ratio (p50 ours / client-go): ${(summarize(total(mine)).p50 / summarize(total(theirs)).p50).toFixed(3)}`);
    } else {
      console.log(`  client-go: not measured (${anchorMissing}); ratio n/a`);
    }
  } finally {
    await anchor?.stop();
    await ours?.stop();
    await cp.stop();
    if (process.env.E2E_KEEP !== '1') rmSync(dir, { recursive: true, force: true });
    else console.log(`kept ${dir}`);
  }
}

function anchorVersion(): string {
  try {
    const out = execFileSync('go', ['list', '-m', '-f', '{{.Version}}', 'k8s.io/client-go'], { cwd: AnchorDir, encoding: 'utf8' });
    return out.trim();
  } catch {
    return '(version unknown)';
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`bench rollout failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
