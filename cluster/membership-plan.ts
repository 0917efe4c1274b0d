/**
 * The reconciler's decision, taken by the leader each round: the one configuration step (or
 * leadership transfer) that moves the configuration toward the pods that exist. Pure: no I/O,
 * no timers; the k8s driver gathers the input and carries the step out.
 */
import type { ConfChangeSingle, ConfChangeV2 } from '../raft/index.js';
import type { MembershipStatus } from './interfaces.js';

export interface PlanPod {
  id: string;
  name: string;
  /** ready = Running, not deleting, reachable; leaving = deleting/failed/gone-but-in-config. */
  state: 'ready' | 'leaving';
  createdAtMs: number;
}

export interface PlanInput {
  selfId: string;
  pods: readonly PlanPod[];
  membership: MembershipStatus;
  maxVoters: number;
  caughtUpLagEntries: number;
  /**
   * Members that joined too recently to take over: a member that started with no state grants
   * no vote and ignores MsgTimeoutNow for two election timeouts (the fresh-vote delay; nothing
   * skips it), so a transfer to it stalls for its whole deadline. Ranked last as successors.
   */
  youngIds?: readonly string[];
}

export type PlanStep = { change: ConfChangeV2; reason: string } | { transferTo: string; reason: string } | null;

/**
 * In order, the first that applies:
 * 1. a change pending or a joint configuration: nothing (raft's auto-leave leaves joint);
 * 2. this leader leaving: transfer to a caught-up voter (etcd: the app transfers first), the
 *    newest pod first (but none in its fresh-vote delay); a caught-up learner on a newer pod
 *    is promoted first (below maxVoters);
 *    with none, go on, and step 7 promotes a learner even to an even count;
 * 3. a voter leaving (its pod leaving, or no pod at all: an old incarnation) with a caught-up
 *    ready learner: swap them in one joint change, so the voter count never dips;
 * 4. a learner leaving or gone: remove it;
 * 5. a voter leaving with no replacement on its way: remove it (never the last voter);
 * 6. a ready pod outside the configuration: add it as a learner;
 * 7. caught-up learners, while below maxVoters: promote as many as keep the count odd
 *    (two at once, jointly, rather than pass through an even count).
 * Ties go by pod creation time, then name, then id.
 */
export function planMembership(input: PlanInput): PlanStep {
  const { selfId, membership: ms, maxVoters, caughtUpLagEntries } = input;
  const cs = ms.confState;
  if (ms.pendingConfChange || cs.votersOutgoing.length > 0) return null;
  const pods = [...input.pods].sort(byAge);
  const podOf = new Map(pods.map((p) => [p.id, p]));
  const rank = (id: string): number => {
    const i = pods.findIndex((p) => p.id === id);
    return i < 0 ? -1 : i;
  };
  // Ids without a pod first (old incarnations), in id order; then by pod age.
  const ordered = (ids: Iterable<string>): string[] =>
    [...ids].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
  const leaving = (id: string): boolean => podOf.get(id)?.state !== 'ready';
  const caughtUp = (id: string): boolean => {
    const pr = ms.progress[id];
    return pr !== undefined && pr.recentActive && ms.lastIndex - pr.match <= caughtUpLagEntries;
  };
  const voters = new Set(cs.voters);
  const learners = new Set(cs.learners);
  const readyLearners = ordered([...learners].filter((id) => !leaving(id)));
  const caughtUpLearners = readyLearners.filter(caughtUp);

  const selfLeaving = voters.has(selfId) && leaving(selfId);
  if (selfLeaving) {
    const to = successorOf(input, [...voters].filter((id) => id !== selfId && !leaving(id) && caughtUp(id)));
    const newer = successorOf(input, caughtUpLearners.filter((id) => !input.youngIds?.includes(id)));
    // A rolling update replaces the old pods one by one: handing over to an old one means handing
    // over again when its turn comes. A newer caught-up learner is promoted first (one voter more,
    // for as long as the handover takes), then it takes over.
    if (newer !== undefined && voters.size < maxVoters && (to === undefined || createdAt(podOf.get(newer)) > createdAt(podOf.get(to)))) {
      return { change: simple({ type: 'AddNode', nodeId: newer }), reason: `leader ${selfId} is leaving: promote ${newer}, the newest pod, to hand over to it` };
    }
    if (to !== undefined) return { transferTo: to, reason: `leader ${selfId} is leaving: hand over to ${to} first` };
    // No voter to hand over to: make one (below), even at an even count.
  }

  const leavingVoters = ordered([...voters].filter((id) => id !== selfId && leaving(id)));
  const firstLeavingVoter = leavingVoters[0];
  // Leaving voters count as gone for the cap: a replacement is wanted only below it.
  const staying = voters.size - leavingVoters.length - (selfLeaving ? 1 : 0);
  const replacementWanted = staying < maxVoters;
  const replacement = caughtUpLearners[0];
  if (firstLeavingVoter !== undefined && replacement !== undefined && replacementWanted) {
    return {
      change: joint([
        { type: 'RemoveNode', nodeId: firstLeavingVoter },
        { type: 'AddNode', nodeId: replacement },
      ]),
      reason: `voter ${firstLeavingVoter} ${why(podOf.get(firstLeavingVoter))}: swap in caught-up learner ${replacement}`,
    };
  }

  const leavingLearner = ordered([...learners].filter(leaving))[0];
  if (leavingLearner !== undefined) {
    return { change: simple({ type: 'RemoveNode', nodeId: leavingLearner }), reason: `learner ${leavingLearner} ${why(podOf.get(leavingLearner))}` };
  }

  const newPods = pods.filter((p) => p.state === 'ready' && !voters.has(p.id) && !learners.has(p.id));
  // A replacement on its way: a pod about to join, or a live learner still catching up.
  const replacementComing = newPods.length > 0 || readyLearners.some((id) => ms.progress[id]?.recentActive === true);
  if (firstLeavingVoter !== undefined && voters.size > 1 && !(replacementComing && replacementWanted)) {
    return {
      change: simple({ type: 'RemoveNode', nodeId: firstLeavingVoter }),
      reason: `voter ${firstLeavingVoter} ${why(podOf.get(firstLeavingVoter))}, no learner to replace it`,
    };
  }

  const newPod = newPods[0];
  if (newPod !== undefined) {
    return { change: simple({ type: 'AddLearnerNode', nodeId: newPod.id }), reason: `pod ${newPod.name} is ready: add it as a learner` };
  }

  const room = Math.min(caughtUpLearners.length, maxVoters - staying);
  let k = room;
  while (k > 0 && (voters.size + k) % 2 === 0) k--;
  if (k === 0 && selfLeaving) k = Math.min(1, caughtUpLearners.length);
  if (k > 0) {
    const ids = caughtUpLearners.slice(0, k);
    const changes = ids.map((id): ConfChangeSingle => ({ type: 'AddNode', nodeId: id }));
    return {
      change: k === 1 ? simple(changes[0]!) : joint(changes),
      reason: `learner${k > 1 ? 's' : ''} ${ids.join(', ')} caught up: promote to ${voters.size + k} voters`,
    };
  }
  return null;
}

/**
 * Whom a leaving leader hands over to, among caught-up candidates: the newest pod (the one a
 * rolling update keeps), then the furthest along, then by id.
 */
export function successorOf(input: Pick<PlanInput, 'pods' | 'membership' | 'youngIds'>, candidates: readonly string[]): string | undefined {
  const podOf = new Map(input.pods.map((p) => [p.id, p]));
  const match = (id: string): number => input.membership.progress[id]?.match ?? 0;
  const sorted = [...candidates].sort((a, b) => createdAt(podOf.get(b)) - createdAt(podOf.get(a)) || match(b) - match(a) || cmp(a, b));
  // Members in their fresh-vote delay last: a transfer to one stalls.
  return sorted.find((id) => !input.youngIds?.includes(id)) ?? sorted[0];
}

function createdAt(pod: PlanPod | undefined): number {
  return pod === undefined ? -Infinity : pod.createdAtMs;
}

function byAge(a: PlanPod, b: PlanPod): number {
  return a.createdAtMs - b.createdAtMs || cmp(a.name, b.name) || cmp(a.id, b.id);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function simple(change: ConfChangeSingle): ConfChangeV2 {
  return { transition: 'Auto', changes: [change] };
}

/** Entered jointly and left by raft on its own (etcd's JointImplicit: auto-leave). */
function joint(changes: ConfChangeSingle[]): ConfChangeV2 {
  return { transition: 'JointImplicit', changes };
}

function why(pod: PlanPod | undefined): string {
  return pod === undefined ? 'has no pod (an old incarnation)' : `is leaving (pod ${pod.name})`;
}
