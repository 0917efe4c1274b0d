/**
 * ADAPTER, to delete at the merge with core11: the membership API core11 builds on RaftMember
 * (membership(), proposeConfChange(), onMembershipChange()) and a minimal stand-in of its pure
 * planMembership (cluster/membership-plan.ts). k8s/reconciler.ts codes against these types only.
 */
import type { ConfChangeV2, ConfState } from '../raft/index.js';
import type { Member } from './interfaces.js';

export interface MembershipProgress {
  match: number;
  recentActive: boolean;
  isLearner: boolean;
}

export interface MembershipStatus {
  confState: ConfState;
  pendingConfChange: boolean;
  appliedIndex: number;
  lastIndex: number;
  progress: Record<string, MembershipProgress>;
}

/** What the reconciler needs of a member (RaftMember after core11). */
export interface MembershipMember extends Pick<Member, 'id' | 'view' | 'transferLeadership'> {
  membership(): MembershipStatus;
  /** Throws ClusterError NOT_LEADER | CONF_CHANGE_PENDING | CONF_CHANGE_REMOVES_LEADER | CONF_CHANGE_INVALID. */
  proposeConfChange(cc: ConfChangeV2): void;
  onMembershipChange(listener: (cs: ConfState) => void): () => void;
}

export interface PlanPod {
  id: string;
  name: string;
  state: 'ready' | 'leaving';
  createdAtMs: number;
}

export interface PlanInput {
  selfId: string;
  pods: readonly PlanPod[];
  membership: MembershipStatus;
  maxVoters: number;
  caughtUpLagEntries: number;
}

export type PlanStep = { change: ConfChangeV2; reason: string } | { transferTo: string; reason: string } | null;

/**
 * Stand-in for core11's planMembership, one step at a time: transfer away before removing
 * self; remove a member whose pod is leaving or gone (swapping in a caught-up learner when a
 * voter leaves); add a ready pod as learner; promote a caught-up learner below the cap.
 */
export function planMembership(input: PlanInput): PlanStep {
  const { membership: m, selfId } = input;
  if (m.pendingConfChange || m.confState.votersOutgoing.length > 0) return null;
  const voters = new Set(m.confState.voters);
  const learners = new Set(m.confState.learners);
  const byId = new Map(input.pods.map((p) => [p.id, p]));
  const ready = (id: string): boolean => byId.get(id)?.state === 'ready';
  const caughtUp = (id: string): boolean => {
    const pr = m.progress[id];
    return pr !== undefined && pr.recentActive && m.lastIndex - pr.match <= input.caughtUpLagEntries;
  };
  const members = [...voters, ...learners].sort();
  const leaving = members.filter((id) => !ready(id));
  const readyLearners = [...learners].filter((id) => ready(id) && caughtUp(id)).sort();
  for (const id of leaving) {
    if (id === selfId) {
      const to = [...voters].filter((v) => v !== selfId && ready(v) && caughtUp(v)).sort()[0];
      return to ? { transferTo: to, reason: `this member's pod is leaving: hand over to ${to} first` } : null;
    }
    if (voters.has(id) && readyLearners.length > 0) {
      const promote = readyLearners[0]!;
      return {
        change: { transition: 'Auto', changes: [{ type: 'RemoveNode', nodeId: id }, { type: 'AddNode', nodeId: promote }] },
        reason: `voter ${id}'s pod is leaving: swap in learner ${promote} in one joint change`,
      };
    }
    return { change: { transition: 'Auto', changes: [{ type: 'RemoveNode', nodeId: id }] }, reason: `${id}'s pod is leaving or gone` };
  }
  const newcomer = input.pods.filter((p) => p.state === 'ready' && !voters.has(p.id) && !learners.has(p.id)).sort((a, b) => a.createdAtMs - b.createdAtMs || (a.id < b.id ? -1 : 1))[0];
  if (newcomer) {
    return { change: { transition: 'Auto', changes: [{ type: 'AddLearnerNode', nodeId: newcomer.id }] }, reason: `pod ${newcomer.name} is ready: add it as a learner` };
  }
  if (voters.size < input.maxVoters && readyLearners[0]) {
    return { change: { transition: 'Auto', changes: [{ type: 'AddNode', nodeId: readyLearners[0] }] }, reason: `learner ${readyLearners[0]} caught up: promote it (${voters.size + 1}/${input.maxVoters} voters)` };
  }
  return null;
}
