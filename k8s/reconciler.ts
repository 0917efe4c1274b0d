/**
 * The membership reconciler: on the leader only, drives the configuration toward the pods the
 * API server lists for the group, one step at a time (planMembership decides; this file only
 * observes and acts). Runs on pod-watch changes, on applied conf changes and every periodMs
 * (on the member's tick: no timer of its own, so an idle follower wakes for nothing here).
 * While the pod watch is not healthy (not synced, or failing) it does nothing: a stale list
 * could remove live members. The election itself never waits for it.
 */
import type { Logger } from 'pino';
import { isClusterError } from '../cluster/errors.js';
import { makeIncarnationId, parseMemberId, podNameOf } from '../cluster/member-id.js';
import type { Member } from '../cluster/interfaces.js';
import { planMembership, successorOf, type PlanInput, type PlanPod, type PlanStep } from '../cluster/membership-plan.js';
import type { ConfState } from '../raft/index.js';
import type { MembershipEventReason } from './events.js';
import type { GroupPod } from './pod-watch.js';

export interface PodSource {
  readonly healthy: boolean;
  snapshot(): GroupPod[];
  onPodsChange(listener: () => void): () => void;
}

export interface MembershipEventSink {
  emitFor(pod: { name: string; uid?: string }, reason: MembershipEventReason, message: string): void;
}

/** What the reconciler needs of a member. */
export type MembershipMember = Pick<Member, 'id' | 'view' | 'transferLeadership' | 'membership' | 'proposeConfChange' | 'onMembershipChange' | 'onTick'>;

export interface ReconcilerOptions {
  member: MembershipMember;
  pods: PodSource;
  /** Whether the transport has an authenticated link to the member id (a pod is ready only when reachable). */
  isConnected(id: string): boolean;
  /** Validated by cmd/config.ts: odd, 1..7. */
  maxVoters: number;
  /** A learner within this many entries of the leader's last index counts as caught up. Default 16. */
  caughtUpLagEntries?: number;
  /**
   * The periodic round, for what raises no event (a link up, a learner caught up); cmd passes
   * tickMs. Rides the member's tick when it has onTick, else a timer of its own.
   */
  periodMs: number;
  /**
   * A handover waits this long after the last applied configuration change (cmd: 2 ticks): a
   * follower learns that the change committed from the next append or heartbeat, and until it
   * applied it, raft ignores its MsgTimeoutNow (etcd's hup rule), so the transfer would stall for
   * its whole deadline. Default 0.
   */
  confSettleMs?: number;
  /**
   * When the fresh-vote delay member `id` announced on its link ends, in ms from now (negative:
   * over; PeerInfo.freshVoteDelayEndsInMs). Undefined: not linked, or it announces nothing.
   */
  freshVoteDelayEndsInMs?(id: string): number | undefined;
  /** Added to an announced delay: the member's ticks may run late (cmd: 2 ticks). Default 0. */
  freshVoteMarginMs?: number;
  /**
   * A leaving leader about to hand over to an older pod waits up to this long for a newer member
   * whose announced delay ends by then, and hands over to it instead (cmd: 4 ticks). The newer
   * pod's Ready (what lets a rolling update delete the leader's pod) comes from the same delay, so
   * the leader's own reckoning of it (link latency plus freshVoteMarginMs) trails by about the
   * margin; handing over to the old pod meanwhile means a second handover when its turn comes.
   * Also the most it waits for one successor in all, however often its announced delay restarts.
   * Default 0: no wait.
   */
  newerSuccessorWaitMaxMs?: number;
  /**
   * For a member that announces no delay (an older version): no handover to it while this
   * leader added it less than this long ago (cmd: 2 election timeouts + 5 ticks; a member is
   * added only once it runs and links, so its delay ends by then). Default 0.
   */
  successorMinAgeMs?: number;
  events?: MembershipEventSink;
  logger: Logger;
  /** Injectable for tests; default cluster/membership-plan.ts. */
  plan?: (input: PlanInput) => PlanStep;
}

export type RoundOutcome = 'not_leader' | 'api_unhealthy' | 'nothing_to_do' | 'proposed' | 'transferring' | 'settling' | 'refused';

/** The plan's view of the group: ready = Running, not going away, has an IP, and reachable. */
export function planPods(pods: readonly GroupPod[], selfId: string, isConnected: (id: string) => boolean, members: ReadonlySet<string>): PlanPod[] {
  const out: PlanPod[] = [];
  for (const pod of pods) {
    if (pod.uid === '') continue;
    let id: string;
    try {
      id = makeIncarnationId(pod.name, pod.uid);
    } catch {
      continue;
    }
    const createdAtMs = Number.isFinite(pod.createdAtMs) ? pod.createdAtMs : 0;
    if (pod.exit !== null) {
      out.push({ id, name: pod.name, state: 'leaving', createdAtMs });
      continue;
    }
    const running = pod.phase === 'Running' && pod.podIP !== null;
    // A member whose link dropped for a moment is not leaving: only a newcomer must be reachable first.
    if (running && (id === selfId || isConnected(id) || members.has(id))) out.push({ id, name: pod.name, state: 'ready', createdAtMs });
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

export class MembershipReconciler {
  private readonly log: Logger;
  private readonly plan: (input: PlanInput) => PlanStep;
  private readonly caughtUpLagEntries: number;
  private started = false;
  private timer: NodeJS.Timeout | null = null;
  private lastPeriodicAtMs = -Infinity;
  /** handOver's waits: woken by whatever may let the next round do something new. */
  private readonly progressWaiters = new Set<() => void>();
  private unsubscribes: (() => void)[] = [];
  private lastConf: ConfState | null = null;
  private loggedUnhealthy = false;
  private transferring: Promise<unknown> | null = null;
  /** The target of the last transfer the member refused as TRANSFER_IN_PROGRESS (a retry to it logs at debug). */
  private inProgressRefusedTo: string | null = null;
  private queued = false;
  private lastAppliedAtMs = -Infinity;
  private settleTimer: NodeJS.Timeout | null = null;
  /** When this leader saw each member added (bounded: forgotten when it leaves the configuration). */
  private readonly addedAtMs = new Map<string, number>();
  /** When a leaving leader first waited for each newer successor (newerSuccessorDueInMs; bounded like addedAtMs). */
  private readonly successorWaitStartedAtMs = new Map<string, number>();
  readonly counts = { rounds: 0, proposed: 0, refused: 0, transfers: 0 };

  constructor(private readonly o: ReconcilerOptions) {
    this.log = o.logger.child({ component: 'reconciler' });
    this.plan = o.plan ?? planMembership;
    this.caughtUpLagEntries = o.caughtUpLagEntries ?? 16;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.lastConf = this.o.member.membership().confState;
    this.unsubscribes.push(
      this.o.pods.onPodsChange(() => {
        this.schedule();
        this.progressed();
      }),
    );
    this.unsubscribes.push(
      this.o.member.onMembershipChange((cs) => {
        this.lastAppliedAtMs = performance.now();
        this.announce(cs);
        this.schedule();
        this.progressed();
      }),
    );
    if (this.o.member.onTick) {
      this.unsubscribes.push(this.o.member.onTick((tick) => this.onTick(tick.nextInMs)));
    } else {
      this.timer = setInterval(() => this.periodic(), this.o.periodMs);
      this.timer.unref?.();
    }
  }

  stop(): void {
    this.started = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.settleTimer) clearTimeout(this.settleTimer);
    this.settleTimer = null;
    for (const u of this.unsubscribes) u();
    this.unsubscribes = [];
    this.progressed();
  }

  /** A round is due on the tick nearest to its moment (periodMs = tickMs: every tick). */
  private onTick(nextInMs: number): void {
    const now = performance.now();
    if (!Number.isFinite(nextInMs) || now + nextInMs / 2 < this.lastPeriodicAtMs + this.o.periodMs) return;
    this.lastPeriodicAtMs = now;
    this.periodic();
  }

  private periodic(): void {
    // A follower's round is one view() and done; only a leader's can change anything.
    if (this.o.member.view().role !== 'Leader') return;
    this.round();
    this.progressed();
  }

  private progressed(): void {
    for (const wake of [...this.progressWaiters]) wake();
    this.progressWaiters.clear();
  }

  /** Resolves on the next membership change, pod change, settle end or periodic round. */
  private nextProgress(): Promise<void> {
    return new Promise((resolve) => this.progressWaiters.add(resolve));
  }

  /** Coalesces bursts of pod events into one round on the next turn of the event loop. */
  private schedule(): void {
    if (this.queued || !this.started) return;
    this.queued = true;
    setImmediate(() => {
      this.queued = false;
      this.round();
    });
  }

  /** One decision; public for tests and for the round timer. */
  round(): RoundOutcome {
    this.counts.rounds += 1;
    const view = this.o.member.view();
    if (view.role !== 'Leader') return 'not_leader';
    if (!this.o.pods.healthy) {
      if (!this.loggedUnhealthy) {
        this.loggedUnhealthy = true;
        this.log.warn('the pod watch is not in sync with the API server: membership changes wait (the election goes on)');
      }
      return 'api_unhealthy';
    }
    if (this.loggedUnhealthy) {
      this.loggedUnhealthy = false;
      this.log.info('the pod watch is in sync again: membership changes resume');
    }
    if (this.transferring) return 'transferring';
    const membership = this.o.member.membership();
    const members = new Set([...membership.confState.voters, ...membership.confState.learners, ...membership.confState.votersOutgoing]);
    const snapshot = this.o.pods.snapshot();
    const pods = planPods(snapshot, this.o.member.id, (id) => this.o.isConnected(id), members);
    const step = this.plan({
      selfId: this.o.member.id,
      pods,
      membership,
      maxVoters: this.o.maxVoters,
      caughtUpLagEntries: this.caughtUpLagEntries,
      ...this.ageRule(members),
    });
    if (step === null) return 'nothing_to_do';
    if ('transferTo' in step) {
      const settleMs = this.lastAppliedAtMs + (this.o.confSettleMs ?? 0) - performance.now();
      const waitMs = Math.max(settleMs, this.newerSuccessorDueInMs(step.transferTo, pods, members));
      if (waitMs > 0) {
        this.settleTimer ??= setTimeout(() => {
          this.settleTimer = null;
          if (!this.started) return;
          this.round();
          this.progressed();
        }, waitMs);
        return 'settling';
      }
      this.transfer(step.transferTo, step.reason);
      return 'transferring';
    }
    try {
      this.o.member.proposeConfChange(step.change);
    } catch (err) {
      this.counts.refused += 1;
      const expected = isClusterError(err, 'NOT_LEADER') || isClusterError(err, 'CONF_CHANGE_PENDING');
      const fields = { code: (err as { code?: string }).code, err: (err as Error).message, change: step.change };
      if (expected) this.log.debug(fields, 'membership: proposal refused; next round retries');
      else this.log.warn(fields, 'membership: proposal refused');
      return 'refused';
    }
    this.counts.proposed += 1;
    this.log.debug({ change: step.change, reason: step.reason }, 'membership: proposed');
    return 'proposed';
  }

  /**
   * Members that cannot take over yet (PlanInput.youngIds): in their fresh-vote delay by their
   * own word on the link (plus freshVoteMarginMs), or, announcing nothing, added by this leader
   * less than successorMinAgeMs ago. Not the pod's Ready: that is the user's readiness probe,
   * which may be off or probe something else.
   */
  private ageRule(members: ReadonlySet<string>): { youngIds?: string[] } {
    const minAge = this.o.successorMinAgeMs ?? 0;
    const margin = this.o.freshVoteMarginMs ?? 0;
    const now = performance.now();
    const young: string[] = [];
    for (const id of members) {
      if (id === this.o.member.id) continue;
      const endsInMs = this.o.freshVoteDelayEndsInMs?.(id);
      const addedAt = this.addedAtMs.get(id);
      if (endsInMs !== undefined ? endsInMs + margin > 0 : addedAt !== undefined && now - addedAt < minAge) young.push(id);
    }
    return young.length > 0 ? { youngIds: young.sort() } : {};
  }

  /**
   * How long until a member on a newer pod than `target` is past its announced fresh-vote delay,
   * when that is within newerSuccessorWaitMaxMs (else 0: hand over to `target` now).
   */
  private newerSuccessorDueInMs(target: string, pods: readonly PlanPod[], members: ReadonlySet<string>): number {
    const maxMs = this.o.newerSuccessorWaitMaxMs ?? 0;
    if (maxMs <= 0 || !this.o.freshVoteDelayEndsInMs) return 0;
    const targetCreatedAtMs = pods.find((p) => p.id === target)?.createdAtMs ?? -Infinity;
    const margin = this.o.freshVoteMarginMs ?? 0;
    const now = performance.now();
    let dueMs = 0;
    for (const pod of pods) {
      if (pod.id === this.o.member.id || pod.id === target || !members.has(pod.id) || pod.state !== 'ready' || pod.createdAtMs <= targetCreatedAtMs) continue;
      const endsInMs = this.o.freshVoteDelayEndsInMs(pod.id);
      if (endsInMs === undefined) continue;
      const dueInMs = endsInMs + margin;
      if (dueInMs <= 0 || dueInMs > maxMs) continue;
      // At most maxMs in all per successor: one that re-handshakes announcing a fresh delay again
      // and again would keep a leaving leader settling until its SIGTERM deadline. An honest
      // member's end never moves later (a relink counts from a later moment, with less left).
      const startedAtMs = this.successorWaitStartedAtMs.get(pod.id) ?? now;
      const leftMs = startedAtMs + maxMs - now;
      if (leftMs <= 0) continue;
      this.successorWaitStartedAtMs.set(pod.id, startedAtMs);
      const waitMs = Math.min(dueInMs, leftMs);
      dueMs = dueMs === 0 ? waitMs : Math.min(dueMs, waitMs);
    }
    return dueMs;
  }

  /** Starts a transfer unless one is under way (a second one would abort it): then that one. */
  private transfer(to: string, reason: string): Promise<unknown> {
    if (this.transferring) return this.transferring;
    this.counts.transfers += 1;
    // Each round retries while the member runs another transfer: one info line, not one a round.
    const repeat = this.inProgressRefusedTo === to;
    this.log[repeat ? 'debug' : 'info']({ to, reason }, 'membership: transferring leadership');
    const done = this.o.member
      .transferLeadership(to)
      .then(() => {
        this.inProgressRefusedTo = null;
      })
      .catch((err: unknown) => {
        // The member runs one transfer at a time (SIGTERM's or an admin's): the next round retries.
        const inProgress = isClusterError(err, 'TRANSFER_IN_PROGRESS');
        this.inProgressRefusedTo = inProgress ? to : null;
        this.log[inProgress ? 'debug' : 'warn']({ err: (err as Error).message, to }, 'membership: transfer failed');
      })
      .finally(() => {
        if (this.transferring === done) this.transferring = null;
      });
    this.transferring = done;
    return done;
  }

  /**
   * Before a graceful stop (SIGTERM), on the leader: wait for a handover already under way (a
   * second transfer to another target would abort it), else hand over to the successor the plan
   * would pick (the newest caught-up voter). Then the member's own shutdown has nothing to do.
   * Resolves within deadlineMs; never throws.
   */
  async handOver(deadlineMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, deadlineMs);
    });
    let timedOut = false;
    void deadline.then(() => (timedOut = true));
    try {
      if (this.transferring) await Promise.race([this.transferring, deadline]);
      if (timedOut || this.transferring) return;
      // Our own pod is seen leaving: the rounds are handing over already, maybe promoting the new
      // pod first to hand over to it. Picking a voter here would race that promotion and hand over
      // to an old pod, which must hand over again when its turn comes. Drive the rounds instead.
      // Each pass waits for something that may change the outcome (an applied change, a pod
      // event, the settle timer, a periodic round), never a poll: bounded by the events and the deadline.
      while (!timedOut && !this.transferring && this.started && this.o.member.view().role === 'Leader' && this.ownPodLeaving()) {
        const outcome = this.round();
        const busy = outcome === 'proposed' || outcome === 'settling' || outcome === 'refused' || (outcome === 'nothing_to_do' && this.o.member.membership().pendingConfChange);
        if (!busy) break;
        await Promise.race([this.nextProgress(), deadline]);
      }
      if (this.transferring) await Promise.race([this.transferring, deadline]);
      // Past the deadline, or a transfer still under way: starting another would abort it.
      if (timedOut || this.transferring || !this.started || this.o.member.view().role !== 'Leader') return;
      const ms = this.o.member.membership();
      const members = new Set([...ms.confState.voters, ...ms.confState.learners]);
      const snapshot = this.o.pods.snapshot();
      const pods = planPods(snapshot, this.o.member.id, (id) => this.o.isConnected(id), members);
      const ready = new Set(pods.filter((p) => p.state === 'ready').map((p) => p.id));
      const candidates = ms.confState.voters.filter((id) => {
        const pr = ms.progress[id];
        return id !== this.o.member.id && ready.has(id) && pr !== undefined && pr.recentActive && ms.lastIndex - pr.match <= this.caughtUpLagEntries;
      });
      const to = successorOf({ pods, membership: ms, ...this.ageRule(members) }, candidates);
      if (to === undefined) return;
      await Promise.race([this.transfer(to, 'stopping (SIGTERM): hand over to the newest caught-up voter'), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  private ownPodLeaving(): boolean {
    const { podName, podUid } = parseMemberId(this.o.member.id);
    return this.o.pods.snapshot().some((p) => p.name === podName && (podUid === null || p.uid === podUid) && p.exit !== null);
  }

  /** One info line and one Event per member whose place changed in an applied configuration. */
  private announce(next: ConfState): void {
    const prev = this.lastConf;
    this.lastConf = next;
    const now = roles(next);
    for (const id of now.keys()) if (prev && !roles(prev).has(id) && !this.addedAtMs.has(id)) this.addedAtMs.set(id, performance.now());
    for (const id of [...this.addedAtMs.keys()]) if (!now.has(id)) this.addedAtMs.delete(id);
    for (const id of [...this.successorWaitStartedAtMs.keys()]) if (!now.has(id)) this.successorWaitStartedAtMs.delete(id);
    if (!prev || this.o.member.view().role !== 'Leader') return;
    const before = roles(prev);
    const after = roles(next);
    const ids = [...new Set([...before.keys(), ...after.keys()])].sort();
    for (const id of ids) {
      const was = before.get(id);
      const now = after.get(id);
      if (was === now) continue;
      let reason: MembershipEventReason;
      let message: string;
      if (was === undefined) {
        reason = 'MemberAdded';
        message = `${id} joined the raft group as a ${now}`;
      } else if (now === undefined) {
        reason = 'MemberRemoved';
        message = `${id} left the raft group (was a ${was})`;
      } else if (now === 'voter') {
        reason = 'MemberPromoted';
        message = `${id} was promoted from learner to voter`;
      } else {
        reason = 'MemberRemoved';
        message = `${id} became a learner (was a voter)`;
      }
      this.log.info({ member: id, pod: podNameOf(id), from: was ?? null, to: now ?? null, voters: next.voters }, `membership: ${message}`);
      const { podName, podUid } = parseMemberId(id);
      this.o.events?.emitFor({ name: podName, ...(podUid ? { uid: podUid } : {}) }, reason, message);
    }
  }
}

function roles(cs: ConfState): Map<string, 'voter' | 'learner'> {
  const out = new Map<string, 'voter' | 'learner'>();
  for (const id of cs.learners) out.set(id, 'learner');
  for (const id of cs.learnersNext) out.set(id, 'learner');
  for (const id of cs.votersOutgoing) out.set(id, 'voter');
  for (const id of cs.voters) out.set(id, 'voter');
  return out;
}
