import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { ClusterError } from '../cluster/errors.js';
import type { LeadershipView, MembershipStatus, TransferResult } from '../cluster/interfaces.js';
import type { ConfChangeV2, ConfState } from '../raft/index.js';
import type { MembershipEventReason } from './events.js';
import type { GroupPod } from './pod-watch.js';
import { MembershipReconciler, planPods, type MembershipMember, type PodSource, type ReconcilerOptions } from './reconciler.js';

/** Applies each proposed change at once (a one-member log), as a leader whose followers keep up. */
class FakeMembershipMember implements MembershipMember {
  role: LeadershipView['role'] = 'Leader';
  conf: ConfState;
  pending = false;
  readonly proposals: ConfChangeV2[] = [];
  readonly transfers: string[] = [];
  onTick?: MembershipMember['onTick'];
  private readonly listeners = new Set<(cs: ConfState) => void>();
  constructor(
    readonly id: string,
    voters: string[],
    learners: string[] = [],
  ) {
    this.conf = { voters: [...voters].sort(), votersOutgoing: [], learners: [...learners].sort(), learnersNext: [], autoLeave: false };
  }
  view(): LeadershipView {
    return { self: this.id, leader: this.role === 'Leader' ? this.id : null, term: 3, role: this.role, isLeader: this.role === 'Leader', leaseExpiresInMs: null, since: null };
  }
  transferLeadership(to?: string): Promise<TransferResult> {
    this.transfers.push(to ?? '');
    this.role = 'Follower';
    return Promise.resolve({ leader: to ?? null, transferred: true });
  }
  membership(): MembershipStatus {
    const progress: MembershipStatus['progress'] = {};
    for (const id of [...this.conf.voters, ...this.conf.learners]) progress[id] = { match: 10, recentActive: true, isLearner: this.conf.learners.includes(id) };
    return { confState: this.conf, pendingConfChange: this.pending, appliedIndex: 10, lastIndex: 10, progress };
  }
  proposeConfChange(cc: ConfChangeV2): void {
    if (this.role !== 'Leader') throw new ClusterError('NOT_LEADER', 'not leader');
    this.proposals.push(cc);
    const voters = new Set(this.conf.voters);
    const learners = new Set(this.conf.learners);
    for (const c of cc.changes) {
      voters.delete(c.nodeId);
      learners.delete(c.nodeId);
      if (c.type === 'AddNode') voters.add(c.nodeId);
      if (c.type === 'AddLearnerNode') learners.add(c.nodeId);
    }
    this.conf = { voters: [...voters].sort(), votersOutgoing: [], learners: [...learners].sort(), learnersNext: [], autoLeave: false };
    for (const l of this.listeners) l(this.conf);
  }
  onMembershipChange(listener: (cs: ConfState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

class FakePods implements PodSource {
  healthy = true;
  pods: GroupPod[] = [];
  snapshot(): GroupPod[] {
    return this.pods.map((p) => ({ ...p }));
  }
  onPodsChange(): () => void {
    return () => {};
  }
  add(name: string, uid: string, createdAtMs: number): void {
    this.pods.push({ name, uid, phase: 'Running', podIP: `10.0.0.${this.pods.length + 1}`, createdAtMs, exit: null, member: false });
  }
  set(name: string, patch: Partial<GroupPod>): void {
    this.pods = this.pods.map((p) => (p.name === name ? { ...p, ...patch } : p));
  }
}

function setup(member: FakeMembershipMember, pods: FakePods, maxVoters = 5, confSettleMs = 0, successorMinAgeMs = 0, periodMs = 60_000, extra: Partial<ReconcilerOptions> = {}) {
  const events: Array<[string, MembershipEventReason, string]> = [];
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
  const r = new MembershipReconciler({
    member,
    pods,
    isConnected: () => true,
    maxVoters,
    periodMs,
    confSettleMs,
    successorMinAgeMs,
    events: { emitFor: (pod, reason, message) => events.push([pod.name, reason, message]) },
    logger,
    ...extra,
  });
  r.start();
  return { r, events, lines, settle: () => { for (let i = 0; i < 50 && r.round() === 'proposed'; i++); } };
}

/** Old pods a, b, c (voters, a the leader); the new pod n joined as a learner; then the leader's pod is deleted. */
function leavingLeaderWithLearner() {
  const m = new FakeMembershipMember('a@1', ['a@1', 'b@1', 'c@1'], ['n@1']);
  const pods = new FakePods();
  for (const name of ['a', 'b', 'c']) pods.add(name, '1', 1_000);
  pods.add('n', '1', 60_000);
  pods.set('a', { exit: 'deleting' });
  return { m, pods };
}

describe('MembershipReconciler', () => {
  it('scale 1 -> 3: each new pod joins as a learner and is promoted; one event and one info line per change', () => {
    const m = new FakeMembershipMember('web-0@u0', ['web-0@u0']);
    const pods = new FakePods();
    pods.add('web-0', 'u0', 1);
    pods.add('web-1', 'u1', 2);
    pods.add('web-2', 'u2', 3);
    const { r, events, lines, settle } = setup(m, pods);
    settle();
    expect(m.conf.voters).toEqual(['web-0@u0', 'web-1@u1', 'web-2@u2']);
    expect(m.conf.learners).toEqual([]);
    expect(events.map(([pod, reason]) => `${pod}:${reason}`)).toEqual(['web-1:MemberAdded', 'web-2:MemberAdded', 'web-1:MemberPromoted', 'web-2:MemberPromoted']);
    expect(lines.filter((l) => l.level === 30 && String(l.msg).startsWith('membership:'))).toHaveLength(4);
    expect(r.round()).toBe('nothing_to_do');
  });

  it('beyond the voter cap pods stay learners', () => {
    const m = new FakeMembershipMember('p-0@u0', ['p-0@u0']);
    const pods = new FakePods();
    for (let i = 0; i < 7; i++) pods.add(`p-${i}`, `u${i}`, i);
    const { settle } = setup(m, pods, 3);
    settle();
    expect(m.conf.voters).toHaveLength(3);
    expect(m.conf.learners).toHaveLength(4);
  });

  it('a deleting voter is swapped for a ready learner in one change', () => {
    const m = new FakeMembershipMember('a@1', ['a@1', 'b@1', 'c@1'], ['d@1']);
    const pods = new FakePods();
    for (const n of ['a', 'b', 'c', 'd']) pods.add(n, '1', 0);
    pods.set('b', { exit: 'deleting' });
    const { r, events } = setup(m, pods, 3);
    expect(r.round()).toBe('proposed');
    expect(m.proposals[0]!.changes).toEqual([{ type: 'RemoveNode', nodeId: 'b@1' }, { type: 'AddNode', nodeId: 'd@1' }]);
    expect(m.conf.voters).toEqual(['a@1', 'c@1', 'd@1']);
    expect(events.map(([pod, reason]) => `${pod}:${reason}`)).toEqual(['b:MemberRemoved', 'd:MemberPromoted']);
  });

  it('does nothing while the pod watch is unhealthy (logged once), and nothing on a follower', () => {
    const m = new FakeMembershipMember('a@1', ['a@1']);
    const pods = new FakePods();
    pods.add('a', '1', 0);
    pods.add('b', '1', 0);
    pods.healthy = false;
    const { r, lines } = setup(m, pods);
    expect(r.round()).toBe('api_unhealthy');
    expect(r.round()).toBe('api_unhealthy');
    expect(lines.filter((l) => String(l.msg).includes('not in sync'))).toHaveLength(1);
    expect(m.proposals).toEqual([]);
    pods.healthy = true;
    m.role = 'Follower';
    expect(r.round()).toBe('not_leader');
    expect(m.proposals).toEqual([]);
  });

  it('upgrade from fixed voters: plain pod-name voters are replaced by their incarnations', () => {
    const m = new FakeMembershipMember('web-0@u0', ['web-0@u0', 'web-1', 'web-2']);
    const pods = new FakePods();
    for (let i = 0; i < 3; i++) pods.add(`web-${i}`, `u${i}`, i);
    const { settle } = setup(m, pods, 3);
    settle();
    expect(m.conf.voters).toEqual(['web-0@u0', 'web-1@u1', 'web-2@u2']);
  });

  it('a leader whose own pod is leaving hands over first', async () => {
    const m = new FakeMembershipMember('a@1', ['a@1', 'b@1', 'c@1']);
    const pods = new FakePods();
    for (const n of ['a', 'b', 'c']) pods.add(n, '1', 0);
    pods.set('a', { exit: 'deleting' });
    const { r } = setup(m, pods, 3);
    expect(r.round()).toBe('transferring');
    await Promise.resolve();
    expect(m.transfers).toEqual(['b@1']);
    expect(m.proposals).toEqual([]);
  });

  it('while the member runs another transfer (TRANSFER_IN_PROGRESS), the rounds retry with one info line, not one a round', async () => {
    const m = new FakeMembershipMember('a@1', ['a@1', 'b@1', 'c@1']);
    const pods = new FakePods();
    for (const n of ['a', 'b', 'c']) pods.add(n, '1', 0);
    pods.set('a', { exit: 'deleting' });
    let busy = 3;
    const transferNow = m.transferLeadership.bind(m);
    m.transferLeadership = (to) => (busy-- > 0 ? Promise.reject(new ClusterError('TRANSFER_IN_PROGRESS', 'a transfer is under way')) : transferNow(to));
    const { r, lines } = setup(m, pods, 3);
    const lineOf = (l: Record<string, unknown>) => `${String(l.level)}:${String(l.msg)}`;
    for (let i = 0; i < 4; i++) {
      expect(r.round()).toBe('transferring');
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(m.transfers).toEqual(['b@1']);
    const transferLines = lines.filter((l) => String(l.msg).startsWith('membership: transfer')).map(lineOf);
    expect(transferLines.filter((l) => l === '30:membership: transferring leadership')).toHaveLength(1);
    expect(transferLines.filter((l) => l === '20:membership: transferring leadership')).toHaveLength(3);
    expect(transferLines.filter((l) => l.startsWith('40:'))).toEqual([]);
  });

  it('a rolling update hands leadership over once: the leaving leader promotes the new pod and hands over to it', async () => {
    const { m, pods } = leavingLeaderWithLearner();
    const { r } = setup(m, pods, 5);
    expect(r.round()).toBe('proposed');
    expect(m.proposals[0]!.changes).toEqual([{ type: 'AddNode', nodeId: 'n@1' }]);
    expect(r.round()).toBe('transferring');
    await Promise.resolve();
    expect(m.transfers).toEqual(['n@1']);
  });

  it('a handover waits confSettleMs after the last applied change (the target must have applied it), then goes', () => {
    vi.useFakeTimers();
    try {
      const { m, pods } = leavingLeaderWithLearner();
      const { r } = setup(m, pods, 5, 200);
      expect(r.round()).toBe('proposed'); // the promotion applies at once here
      expect(r.round()).toBe('settling');
      vi.advanceTimersByTime(199);
      expect(m.transfers).toEqual([]);
      vi.advanceTimersByTime(1);
      expect(m.transfers).toEqual(['n@1']);
      r.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  /** Voters a, b, c; the new pod n joined moments ago as a learner (added 60 s is "young" here). */
  function newLearnerGroup(extra: Partial<ReconcilerOptions> = {}) {
    const m = new FakeMembershipMember('a@1', ['a@1', 'b@1', 'c@1']);
    const pods = new FakePods();
    for (const [name, at] of [['a', 1], ['b', 2], ['c', 3]] as const) pods.add(name, '1', at);
    pods.add('n', '1', 60_000);
    const { r, settle } = setup(m, pods, 5, 0, 60_000, 60_000, extra);
    settle();
    expect(m.conf.learners).toEqual(['n@1']);
    return { m, pods, r };
  }

  it('a member this leader added moments ago that announces no delay is no successor (its fresh-vote delay drops MsgTimeoutNow)', async () => {
    const { m, pods, r } = newLearnerGroup();
    pods.set('a', { exit: 'deleting' });
    expect(r.round()).toBe('transferring'); // no promotion of n
    await Promise.resolve();
    expect(m.transfers).toEqual(['c@1']);
    m.role = 'Leader';
    await r.handOver(1_000);
    expect(m.transfers).toEqual(['c@1', 'c@1']);
  });

  it('a member added moments ago whose link says its fresh-vote delay is over is promoted and takes over', async () => {
    const { m, pods, r } = newLearnerGroup({ freshVoteDelayEndsInMs: (id) => (id === 'n@1' ? -50 : -Infinity), freshVoteMarginMs: 20 });
    pods.set('a', { exit: 'deleting' });
    expect(r.round()).toBe('proposed');
    expect(m.proposals.at(-1)!.changes).toEqual([{ type: 'AddNode', nodeId: 'n@1' }]);
    expect(r.round()).toBe('transferring');
    await Promise.resolve();
    expect(m.transfers).toEqual(['n@1']);
  });

  it('a member in its fresh-vote delay by its own word is no successor, even with its pod Ready (the readiness probe is the user\'s)', async () => {
    let endsInMs = 300;
    const { m, pods, r } = newLearnerGroup({ freshVoteDelayEndsInMs: (id) => (id === 'n@1' ? endsInMs : -Infinity), freshVoteMarginMs: 20 });
    // Ready at once: a pod without a readiness probe, or one that probes something else.
    pods.set('n', { ready: true });
    pods.set('a', { exit: 'deleting' });
    endsInMs = -10; // over, but within the margin for late ticks
    expect(r.round()).toBe('transferring');
    await Promise.resolve();
    expect(m.transfers).toEqual(['c@1']);
    expect(m.proposals.map((p) => p.changes)).not.toContainEqual([{ type: 'AddNode', nodeId: 'n@1' }]);
  });

  it('a leaving leader waits for a newer member whose delay ends within newerSuccessorWaitMaxMs, then hands over to it, not to an old pod', async () => {
    vi.useFakeTimers();
    try {
      const t0 = performance.now();
      const { m, pods, r } = newLearnerGroup({
        freshVoteDelayEndsInMs: (id) => (id === 'n@1' ? 30 - (performance.now() - t0) : -Infinity),
        freshVoteMarginMs: 20,
        newerSuccessorWaitMaxMs: 400,
      });
      pods.set('a', { exit: 'deleting' });
      expect(r.round()).toBe('settling');
      await vi.advanceTimersByTimeAsync(49);
      expect(m.transfers).toEqual([]);
      await vi.advanceTimersByTimeAsync(10);
      expect(m.proposals.at(-1)!.changes).toEqual([{ type: 'AddNode', nodeId: 'n@1' }]);
      await vi.advanceTimersByTimeAsync(10);
      expect(m.transfers).toEqual(['n@1']);
      r.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('a newer member whose announced delay keeps restarting (it re-handshakes) is waited for newerSuccessorWaitMaxMs in all, not until the SIGTERM deadline', async () => {
    vi.useFakeTimers();
    try {
      // Each reading says 100 ms left: a peer that relinks announcing a fresh delay every time.
      const { m, pods, r } = newLearnerGroup({ freshVoteDelayEndsInMs: (id) => (id === 'n@1' ? 100 : -Infinity), freshVoteMarginMs: 20, newerSuccessorWaitMaxMs: 400 });
      pods.set('a', { exit: 'deleting' });
      const handing = r.handOver(5_000);
      await vi.advanceTimersByTimeAsync(399);
      expect(m.transfers).toEqual([]);
      await vi.advanceTimersByTimeAsync(1);
      expect(m.transfers).toEqual(['c@1']);
      await handing;
      r.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('a leaving leader does not wait for a newer member whose delay ends past newerSuccessorWaitMaxMs', async () => {
    const { m, pods, r } = newLearnerGroup({ freshVoteDelayEndsInMs: (id) => (id === 'n@1' ? 1_000 : -Infinity), freshVoteMarginMs: 20, newerSuccessorWaitMaxMs: 400 });
    pods.set('a', { exit: 'deleting' });
    expect(r.round()).toBe('transferring');
    await Promise.resolve();
    expect(m.transfers).toEqual(['c@1']);
    r.stop();
  });

  it('handOver (SIGTERM) on the leader: to the newest caught-up voter whose pod stays', async () => {
    const m = new FakeMembershipMember('a@1', ['a@1', 'b@1', 'c@1', 'd@1', 'e@1']);
    const pods = new FakePods();
    pods.add('a', '1', 1);
    pods.add('b', '1', 5);
    pods.add('c', '1', 9);
    pods.add('d', '1', 7);
    pods.add('e', '1', 3);
    pods.set('c', { exit: 'deleting' });
    const { r } = setup(m, pods, 5);
    await r.handOver(1_000);
    expect(m.transfers).toEqual(['d@1']);
    // A follower has nothing to hand over.
    await r.handOver(1_000);
    expect(m.transfers).toEqual(['d@1']);
  });

  it('handOver (SIGTERM) while the rounds promote the new pod to hand over to it: the handover goes to the new pod', async () => {
    // The leader's pod is deleting; its round proposed promoting the new pod n. SIGTERM comes before
    // that change applies: picking among today's voters would hand over to an old pod.
    const { m, pods } = leavingLeaderWithLearner();
    const proposeNow = m.proposeConfChange.bind(m);
    let held: ConfChangeV2 | undefined;
    m.proposeConfChange = (cc) => {
      held = cc;
      m.pending = true;
    };
    const { r } = setup(m, pods, 5);
    expect(r.round()).toBe('proposed');
    vi.useFakeTimers();
    try {
      const handing = r.handOver(1_000);
      await vi.advanceTimersByTimeAsync(500);
      expect(m.transfers).toEqual([]);
      m.pending = false;
      proposeNow(held!);
      await vi.advanceTimersByTimeAsync(100);
      await handing;
      expect(m.conf.voters).toContain('n@1');
      expect(m.transfers).toEqual(['n@1']);
    } finally {
      vi.useRealTimers();
    }
  });

  it('handOver while the promotion is refused waits for progress, not a poll, and starts no transfer after its deadline', async () => {
    const { m, pods } = leavingLeaderWithLearner();
    m.proposeConfChange = () => {
      throw new ClusterError('CONF_CHANGE_PENDING', 'pending');
    };
    const { r } = setup(m, pods, 5);
    vi.useFakeTimers();
    try {
      const handing = r.handOver(1_000);
      await vi.advanceTimersByTimeAsync(1_000);
      await handing;
      // One attempt: nothing changed that could make a second one go.
      expect(r.counts.refused).toBe(1);
      // The member's own shutdown hands over next; a transfer of ours would race it.
      expect(m.transfers).toEqual([]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('handOver waits for a transfer already under way instead of redirecting it, within its deadline', async () => {
    const m = new FakeMembershipMember('a@1', ['a@1', 'b@1', 'c@1']);
    let finish: (r: TransferResult) => void = () => {};
    m.transferLeadership = (to?: string) => {
      m.transfers.push(to ?? '');
      return new Promise<TransferResult>((resolve) => {
        finish = (res) => {
          m.role = 'Follower';
          resolve(res);
        };
      });
    };
    const pods = new FakePods();
    for (const [name, at] of [['a', 1], ['b', 2], ['c', 3]] as const) pods.add(name, '1', at);
    pods.set('a', { exit: 'deleting' });
    const { r } = setup(m, pods, 3);
    expect(r.round()).toBe('transferring');
    let done = false;
    const handing = r.handOver(1_000).then(() => (done = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(done).toBe(false);
    finish({ leader: 'c@1', transferred: true });
    await handing;
    expect(m.transfers).toEqual(['c@1']);
    // A transfer that never ends: handOver gives up at its deadline, and starts no second one.
    m.role = 'Leader';
    expect(r.round()).toBe('transferring');
    vi.useFakeTimers();
    try {
      let returned = false;
      const second = r.handOver(50).then(() => (returned = true));
      await vi.advanceTimersByTimeAsync(49);
      expect(returned).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      await second;
      expect(m.transfers).toEqual(['c@1', 'c@1']);
      expect(r.round()).toBe('transferring');
      expect(m.transfers).toHaveLength(2);
    } finally {
      vi.useRealTimers();
    }
  });

  it("rides the member's tick: no timer of its own, a follower's tick does no round, a leader's does", () => {
    const m = new FakeMembershipMember('a@1', ['a@1']);
    const ticks = new Set<(t: { lateMs: number; nextInMs: number }) => void>();
    m.onTick = (l) => {
      ticks.add(l);
      return () => ticks.delete(l);
    };
    const tick = () => {
      for (const l of ticks) l({ lateMs: 0, nextInMs: 100 });
    };
    const pods = new FakePods();
    pods.add('a', '1', 0);
    pods.add('b', '1', 1);
    vi.useFakeTimers();
    try {
      const { r } = setup(m, pods, 3, 0, 0, 100);
      expect(vi.getTimerCount()).toBe(0);
      m.role = 'Follower';
      tick();
      expect(r.counts.rounds).toBe(0);
      m.role = 'Leader';
      vi.advanceTimersByTime(100);
      tick();
      expect(m.proposals.map((p) => p.changes)).toEqual([[{ type: 'AddLearnerNode', nodeId: 'b@1' }]]);
      tick(); // the same moment: the round is not due yet
      expect(r.counts.rounds).toBe(1);
      r.stop();
      vi.advanceTimersByTime(100);
      tick();
      expect(m.proposals).toHaveLength(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it('a proposal refused as pending is retried by a later round, not logged as a warning', () => {
    const m = new FakeMembershipMember('a@1', ['a@1']);
    m.proposeConfChange = () => {
      throw new ClusterError('CONF_CHANGE_PENDING', 'pending');
    };
    const pods = new FakePods();
    pods.add('a', '1', 0);
    pods.add('b', '1', 0);
    const { r, lines } = setup(m, pods);
    expect(r.round()).toBe('refused');
    expect(lines.filter((l) => l.level === 40)).toHaveLength(0);
  });
});

describe('planPods', () => {
  const base: GroupPod = { name: 'x', uid: 'u', phase: 'Running', podIP: '10.0.0.1', createdAtMs: 5, exit: null, member: false };
  it('ready needs Running, an IP and a link (or membership); going away is leaving; pending pods are not listed', () => {
    const pods: GroupPod[] = [
      { ...base, name: 'ready' },
      { ...base, name: 'noip', podIP: null },
      { ...base, name: 'pending', phase: 'Pending' },
      { ...base, name: 'gone', exit: 'deleting' },
      { ...base, name: 'unlinked' },
      { ...base, name: 'member-unlinked' },
    ];
    const linked = new Set(['ready@u']);
    expect(planPods(pods, 'self@u', (id) => linked.has(id), new Set(['member-unlinked@u']))).toEqual([
      { id: 'gone@u', name: 'gone', state: 'leaving', createdAtMs: 5 },
      { id: 'member-unlinked@u', name: 'member-unlinked', state: 'ready', createdAtMs: 5 },
      { id: 'ready@u', name: 'ready', state: 'ready', createdAtMs: 5 },
    ]);
  });
});
