import {
  describeJoint,
  describeMajority,
  jointCommittedIndex,
  jointIds,
  jointVoteResult,
  majorityConfig,
  type JointConfig,
  type VoteResult,
} from './quorum.js';
import type { ConfState } from './types.js';

export type { VoteResult } from './quorum.js';

/** Replication progress of one peer, as seen by the leader (etcd's tracker.Progress, trimmed). */
export type ProgressState = 'Probe' | 'Replicate' | 'Snapshot';

export interface Progress {
  match: number;
  next: number;
  state: ProgressState;
  /** In Probe, one append is outstanding until a response or a heartbeat response arrives. */
  probeSent: boolean;
  pendingSnapshot: number;
  /** The highest commit index sent to the peer, capped at next-1 (etcd's pendingCommit). */
  sentCommit: number;
  /** Set by any response from the peer; cleared by each CheckQuorum round. */
  recentActive: boolean;
  isLearner: boolean;
}

/** Ids sorted once, so every broadcast and every printed list has one order. */
export function sortedIds(ids: Iterable<string>): string[] {
  return [...ids].sort();
}

/** The membership the tracker counts with (etcd's tracker.Config). All lists are sorted. */
export interface TrackerConfig {
  /** [incoming, outgoing]: outgoing is non-empty only while joint. */
  readonly voters: JointConfig;
  /** Learners that are not voters in either half. */
  readonly learners: readonly string[];
  /**
   * Voters of the outgoing half demoted to learner by the joint change: they stay
   * voters (outgoing) until the joint configuration is left (etcd: a node is never a
   * voter and a learner at once, so the demotion waits).
   */
  readonly learnersNext: readonly string[];
  /** Leave the joint configuration as soon as it is applied (set only while joint). */
  readonly autoLeave: boolean;
}

export function simpleConfig(voters: readonly string[], learners: readonly string[]): TrackerConfig {
  return { voters: [majorityConfig(voters), []], learners: majorityConfig(learners), learnersNext: [], autoLeave: false };
}

export function isJointConfig(c: TrackerConfig): boolean {
  return c.voters[1].length > 0;
}

/** etcd's Config.String(): "voters=(1 2)&&(1) learners=(3) learners_next=(4) autoleave". */
export function describeConfig(c: TrackerConfig): string {
  let s = `voters=${describeJoint(c.voters)}`;
  if (c.learners.length > 0) s += ` learners=${describeMajority(c.learners)}`;
  if (c.learnersNext.length > 0) s += ` learners_next=${describeMajority(c.learnersNext)}`;
  if (c.autoLeave) s += ' autoleave';
  return s;
}

export function confStateOf(c: TrackerConfig): ConfState {
  return {
    voters: [...c.voters[0]],
    votersOutgoing: [...c.voters[1]],
    learners: [...c.learners],
    learnersNext: [...c.learnersNext],
    autoLeave: c.autoLeave,
  };
}

export class ProgressTracker {
  config: TrackerConfig;
  progress: Map<string, Progress>;
  private votes = new Map<string, boolean>();

  constructor(voters: readonly string[], learners: readonly string[]) {
    this.config = simpleConfig(voters, learners);
    this.progress = new Map();
    for (const id of this.config.voters[0]) this.progress.set(id, newProgress(0, 1, false));
    for (const id of this.config.learners) this.progress.set(id, newProgress(0, 1, true));
  }

  /** Every voter of either half, sorted. */
  get voters(): readonly string[] {
    return jointIds(this.config.voters);
  }

  get learners(): readonly string[] {
    return this.config.learners;
  }

  /** Every member (voters, learners), in sorted order. */
  ids(): string[] {
    return sortedIds(this.progress.keys());
  }

  /** A voter in either half of the configuration: its vote and its acks count. */
  isVoter(id: string): boolean {
    return this.config.voters[0].includes(id) || this.config.voters[1].includes(id);
  }

  isJoint(): boolean {
    return isJointConfig(this.config);
  }

  /** etcd's IsSingleton: one voter and not joint. */
  isSingleton(): boolean {
    return this.config.voters[0].length === 1 && !this.isJoint();
  }

  confState(): ConfState {
    return confStateOf(this.config);
  }

  resetVotes(): void {
    this.votes = new Map();
  }

  /** Only the first answer of a node counts; the tally ignores non-voters (etcd's RecordVote). */
  recordVote(id: string, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  /** Granted and rejected count voters only; the result needs a majority of each half. */
  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const [id, pr] of this.progress) {
      if (pr.isLearner) continue;
      const v = this.votes.get(id);
      if (v === true) granted++;
      else if (v === false) rejected++;
    }
    return { granted, rejected, result: jointVoteResult(this.config.voters, this.votes) };
  }

  /** The highest index replicated on a quorum of every configuration in force. */
  committedIndex(): number {
    const idx = jointCommittedIndex(this.config.voters, (id) => this.progress.get(id)?.match);
    // No voters at all (a node outside any configuration) commits nothing by counting.
    return Number.isFinite(idx) ? idx : 0;
  }

  /** A quorum of every configuration in force was heard from (etcd's QuorumActive). */
  quorumActive(): boolean {
    const active = new Map<string, boolean>();
    for (const [id, pr] of this.progress) if (!pr.isLearner) active.set(id, pr.recentActive);
    return jointVoteResult(this.config.voters, active) === 'VoteWon';
  }
}

export function newProgress(match: number, next: number, isLearner: boolean): Progress {
  return {
    match,
    next,
    state: 'Probe',
    probeSent: false,
    pendingSnapshot: 0,
    sentCommit: 0,
    recentActive: false,
    isLearner,
  };
}

export function becomeProbe(pr: Progress): void {
  if (pr.state === 'Snapshot') {
    const pending = pr.pendingSnapshot;
    pr.state = 'Probe';
    pr.next = Math.max(pr.match + 1, pending + 1);
  } else {
    pr.state = 'Probe';
    pr.next = pr.match + 1;
    pr.sentCommit = Math.min(pr.sentCommit, pr.match);
  }
  pr.probeSent = false;
  pr.pendingSnapshot = 0;
}

export function becomeReplicate(pr: Progress): void {
  pr.state = 'Replicate';
  pr.next = pr.match + 1;
  pr.sentCommit = Math.min(pr.sentCommit, pr.match);
  pr.probeSent = false;
  pr.pendingSnapshot = 0;
}

export function becomeSnapshot(pr: Progress, snapshotIndex: number): void {
  pr.state = 'Snapshot';
  pr.probeSent = false;
  pr.pendingSnapshot = snapshotIndex;
}

/** True when `index` advanced what the peer is known to hold. */
export function maybeUpdate(pr: Progress, index: number): boolean {
  let updated = false;
  if (pr.match < index) {
    pr.match = index;
    updated = true;
    pr.probeSent = false;
  }
  pr.next = Math.max(pr.next, index + 1);
  return updated;
}

/** etcd's MaybeDecrTo: false when the rejection is stale. */
export function maybeDecrTo(pr: Progress, rejected: number, matchHint: number): boolean {
  if (pr.state === 'Replicate') {
    if (rejected <= pr.match) return false;
    pr.next = pr.match + 1;
    pr.sentCommit = Math.min(pr.sentCommit, pr.match);
    return true;
  }
  if (pr.next - 1 !== rejected) return false;
  if (rejected <= pr.match) {
    // The peer now lacks an entry it once acknowledged: its disk was lost (a pod recreated on an
    // empty volume). Not an etcd case; without it the probe below repeats forever at network
    // speed. Lowering match never raises the commit index, so this is safe.
    pr.match = Math.min(matchHint, rejected - 1);
  }
  pr.next = Math.max(Math.min(rejected, matchHint + 1), pr.match + 1);
  pr.sentCommit = Math.min(pr.sentCommit, pr.next - 1);
  pr.probeSent = false;
  return true;
}

/** Sending `index` as the commit could still raise the peer's commit (etcd's CanBumpCommit). */
export function canBumpCommit(pr: Progress, index: number): boolean {
  return pr.sentCommit < Math.min(index, pr.next - 1);
}

/** Records a commit index sent to the peer; it can only matter up to next-1. */
export function sentCommit(pr: Progress, commit: number): void {
  pr.sentCommit = Math.min(Math.max(pr.sentCommit, commit), pr.next - 1);
}

export function isPaused(pr: Progress): boolean {
  if (pr.state === 'Probe') return pr.probeSent;
  return pr.state === 'Snapshot';
}
