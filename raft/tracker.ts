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

export type VoteResult = 'VotePending' | 'VoteLost' | 'VoteWon';

/** Ids sorted once, so every broadcast and every printed list has one order. */
export function sortedIds(ids: Iterable<string>): string[] {
  return [...ids].sort();
}

export class ProgressTracker {
  readonly voters: readonly string[];
  readonly learners: readonly string[];
  readonly progress = new Map<string, Progress>();
  private votes = new Map<string, boolean>();

  constructor(voters: readonly string[], learners: readonly string[]) {
    this.voters = sortedIds(voters);
    this.learners = sortedIds(learners);
    for (const id of this.voters) this.progress.set(id, newProgress(0, 1, false));
    for (const id of this.learners) this.progress.set(id, newProgress(0, 1, true));
  }

  /** Every member (voters then learners), in sorted order. */
  ids(): string[] {
    return sortedIds(this.progress.keys());
  }

  isVoter(id: string): boolean {
    return this.voters.includes(id);
  }

  quorum(): number {
    return Math.floor(this.voters.length / 2) + 1;
  }

  resetVotes(): void {
    this.votes = new Map();
  }

  /** Only the first answer of a voter counts; repeats and learners are ignored. */
  recordVote(id: string, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const id of this.voters) {
      const v = this.votes.get(id);
      if (v === true) granted++;
      else if (v === false) rejected++;
    }
    const q = this.quorum();
    const missing = this.voters.length - granted - rejected;
    let result: VoteResult = 'VotePending';
    if (granted >= q) result = 'VoteWon';
    else if (granted + missing < q) result = 'VoteLost';
    return { granted, rejected, result };
  }

  /** The highest index replicated on a quorum of voters. */
  committedIndex(): number {
    const matches = this.voters.map((id) => this.progress.get(id)?.match ?? 0).sort((a, b) => b - a);
    return matches[this.quorum() - 1] ?? 0;
  }

  quorumActive(): boolean {
    let active = 0;
    for (const id of this.voters) if (this.progress.get(id)?.recentActive) active++;
    return active >= this.quorum();
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
