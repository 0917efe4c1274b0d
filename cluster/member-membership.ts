import type { Logger } from 'pino';
import {
  confChangeEntersJoint,
  confChangeLeavesJoint,
  confStateAfter,
  confStateEqual,
  None,
  RaftError,
  type ConfChangeV2,
  type ConfState,
  type Status,
} from '../raft/index.js';
import { ClusterError } from './errors.js';
import type { ConfChangeKind, MemberMetrics, MemberProgress, MembershipRole, MembershipStatus, PeerTransport } from './interfaces.js';

const EmptyConfState: ConfState = { voters: [], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false };

/** Every id a configuration holds, voters of both halves and learners. */
export function confStateIds(cs: ConfState): Set<string> {
  return new Set([...cs.voters, ...cs.votersOutgoing, ...cs.learners, ...cs.learnersNext]);
}

/** A voter of every configuration in force (both halves while joint): only such a member may claim isLeader. */
export function votesInEveryConfig(cs: ConfState, id: string): boolean {
  return cs.voters.includes(id) && (cs.votersOutgoing.length === 0 || cs.votersOutgoing.includes(id));
}

export function confChangeKind(cc: ConfChangeV2): ConfChangeKind {
  if (confChangeLeavesJoint(cc)) return 'leave_joint';
  if (confChangeEntersJoint(cc).joint) return 'joint';
  const type = cc.changes[0]?.type;
  if (type === 'AddLearnerNode') return 'add_learner';
  if (type === 'RemoveNode') return 'remove';
  return 'add_voter';
}

/**
 * The member's view of the configuration in force: what members() shows, who was removed,
 * and who hears of a change (listeners, metrics, the transport's link set).
 */
export class MembershipBook {
  private cs: ConfState = EmptyConfState;
  /** Removed ids, oldest first; bounded. */
  private readonly removed: string[] = [];
  private readonly listeners = new Set<(cs: ConfState) => void>();

  constructor(
    private readonly self: string,
    private readonly log: Logger,
    private readonly metrics: MemberMetrics | undefined,
    private readonly maxRemembered = 32,
  ) {}

  get current(): ConfState {
    return this.cs;
  }

  /** Takes the configuration raft holds now; on a change tells everyone concerned. */
  update(next: ConfState, transport: PeerTransport | undefined, initial = false): void {
    if (!initial && (this.cs === next || confStateEqual(this.cs, next))) return;
    const before = confStateIds(this.cs);
    const after = confStateIds(next);
    for (const id of [...before].sort()) if (!after.has(id)) this.remember(id);
    for (const id of after) this.forget(id);
    this.cs = next;
    this.metrics?.membershipChanged?.({ voters: new Set([...next.voters, ...next.votersOutgoing]).size, learners: next.learners.length });
    transport?.setMembers?.([...after].filter((id) => id !== this.self).sort());
    if (initial) return;
    this.log.info(
      { voters: next.voters, votersOutgoing: next.votersOutgoing, learners: next.learners, learnersNext: next.learnersNext },
      'configuration changed',
    );
    for (const listener of this.listeners) {
      try {
        listener(next);
      } catch (err) {
        this.log.error({ err }, 'membership listener failed');
      }
    }
  }

  onChange(listener: (cs: ConfState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  roleOf(id: string): MembershipRole {
    if (this.cs.voters.includes(id) || this.cs.votersOutgoing.includes(id)) return 'voter';
    if (this.cs.learners.includes(id) || this.cs.learnersNext.includes(id)) return 'learner';
    return this.removed.includes(id) ? 'removed' : 'joining';
  }

  /** Everyone members() lists: the configuration, the removed ones kept, and `known` (peers, self). */
  ids(known: Iterable<string>): string[] {
    return [...new Set([...confStateIds(this.cs), ...this.removed, ...known])].sort();
  }

  private remember(id: string): void {
    this.forget(id);
    this.removed.push(id);
    while (this.removed.length > this.maxRemembered) this.removed.shift();
  }

  private forget(id: string): void {
    const i = this.removed.indexOf(id);
    if (i >= 0) this.removed.splice(i, 1);
  }
}

export function membershipStatus(s: Status): MembershipStatus {
  const progress: Record<string, MemberProgress> = {};
  for (const id of Object.keys(s.progress).sort()) {
    const pr = s.progress[id]!;
    progress[id] = { match: pr.match, recentActive: pr.recentActive, isLearner: pr.isLearner };
  }
  return {
    confState: s.confState,
    pendingConfChange: s.pendingConfIndex > s.applied || s.confState.votersOutgoing.length > 0,
    appliedIndex: s.applied,
    lastIndex: s.lastIndex,
    progress,
  };
}

/**
 * The member's checks before a conf change reaches raft. etcd leaves removing the leader to
 * the application: a leader that applies its own removal steps down with no successor, and the
 * group waits an election timeout. So a change that takes the leader out of the (incoming)
 * voters is refused; the caller transfers leadership first and the new leader proposes it.
 */
export function vetConfChange(s: Status, cc: ConfChangeV2, transferredInTerm: number, leader: string | null): void {
  if (s.state !== 'Leader' || s.leadTransferee !== None || transferredInTerm === s.term) {
    throw new ClusterError('NOT_LEADER', `only the leader changes the configuration; the leader is ${leader === s.id && s.state === 'Leader' ? `${s.id}, handing over` : (leader ?? 'unknown')}`);
  }
  const leaving = confChangeLeavesJoint(cc);
  if (s.pendingConfIndex > s.applied) {
    throw new ClusterError('CONF_CHANGE_PENDING', `a configuration change at index ${s.pendingConfIndex} is not applied yet (applied ${s.applied})`);
  }
  if (s.confState.votersOutgoing.length > 0 && !leaving) {
    throw new ClusterError('CONF_CHANGE_PENDING', 'the configuration is joint: it must be left first');
  }
  let next: ConfState;
  try {
    next = confStateAfter(s.confState, cc);
  } catch (err) {
    if (err instanceof RaftError) throw new ClusterError('CONF_CHANGE_INVALID', `configuration change refused: ${err.message}`, { cause: err });
    throw err;
  }
  if (!next.voters.includes(s.id)) {
    throw new ClusterError(
      'CONF_CHANGE_REMOVES_LEADER',
      `the change removes this leader (${s.id}) from the voters: transfer leadership first, then let the new leader propose it`,
    );
  }
}
