import { copyEntry, RaftError, type DurableState, type Entry, type EntryId } from './types.js';

/**
 * The election log: payload-free entries after a compaction marker. It is real
 * (indexes, terms, commit) so the vote's up-to-date check and the leader's
 * "empty entry of its own term" rule mean what they mean in etcd-raft.
 */
export class RaftLog {
  /** Entries at or below `snapshot.index` are compacted away. */
  private snapshotId: EntryId;
  private entries: Entry[];
  /** Entries up to this index are on disk. */
  private stableIndex: number;
  /** A compaction marker received from the leader and not yet persisted. */
  private pendingSnapshot: EntryId | undefined;
  committed: number;

  constructor(restored?: DurableState) {
    this.snapshotId = restored ? { ...restored.snapshot } : { index: 0, term: 0 };
    this.entries = restored ? restored.entries.map(copyEntry) : [];
    this.stableIndex = this.lastIndex();
    this.committed = restored ? restored.hardState.commit : 0;
    this.pendingSnapshot = undefined;
    this.checkInvariants();
  }

  private checkInvariants(): void {
    let expected = this.snapshotId.index + 1;
    let prevTerm = this.snapshotId.term;
    for (const e of this.entries) {
      if (e.index !== expected || e.term < prevTerm) {
        throw new RaftError('LOG_CORRUPTED', `entry ${e.index}@${e.term} out of order after ${expected - 1}@${prevTerm}`);
      }
      expected++;
      prevTerm = e.term;
    }
    if (this.committed < this.snapshotId.index || this.committed > this.lastIndex()) {
      throw new RaftError(
        'LOG_CORRUPTED',
        `commit ${this.committed} outside the log [${this.snapshotId.index}, ${this.lastIndex()}]`,
      );
    }
  }

  firstIndex(): number {
    return this.snapshotId.index + 1;
  }

  lastIndex(): number {
    return this.snapshotId.index + this.entries.length;
  }

  lastTerm(): number {
    const last = this.entries[this.entries.length - 1];
    return last ? last.term : this.snapshotId.term;
  }

  lastEntryId(): EntryId {
    return { index: this.lastIndex(), term: this.lastTerm() };
  }

  snapshot(): EntryId {
    return this.snapshotId;
  }

  /** The term of the entry at `index`, or undefined when it is compacted or beyond the end. */
  term(index: number): number | undefined {
    if (index === this.snapshotId.index) return this.snapshotId.term;
    if (index < this.snapshotId.index || index > this.lastIndex()) return undefined;
    return this.entries[index - this.snapshotId.index - 1]?.term;
  }

  /** The entry at `index`, or undefined when it is compacted or beyond the end. */
  entry(index: number): Entry | undefined {
    if (index <= this.snapshotId.index || index > this.lastIndex()) return undefined;
    return this.entries[index - this.snapshotId.index - 1];
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Raft §5.4.1: a candidate's log is at least as up to date as ours. */
  isUpToDate(candidate: EntryId): boolean {
    const lastTerm = this.lastTerm();
    return candidate.term > lastTerm || (candidate.term === lastTerm && candidate.index >= this.lastIndex());
  }

  append(newEntries: readonly Entry[]): number {
    if (newEntries.length === 0) return this.lastIndex();
    const first = newEntries[0]!.index;
    if (first - 1 < this.committed) {
      throw new RaftError('LOG_CORRUPTED', `append after ${first - 1} would overwrite committed ${this.committed}`);
    }
    this.truncateAndAppend(newEntries);
    return this.lastIndex();
  }

  private truncateAndAppend(newEntries: readonly Entry[]): void {
    const first = newEntries[0]!.index;
    const keep = first - this.snapshotId.index - 1;
    if (keep < 0) throw new RaftError('LOG_CORRUPTED', `append at ${first} below the compaction marker`);
    this.entries.length = Math.min(this.entries.length, keep);
    for (const e of newEntries) this.entries.push(copyEntry(e));
    this.stableIndex = Math.min(this.stableIndex, first - 1);
  }

  /** The first entry whose term differs from ours, 0 if none (etcd's findConflict). */
  private findConflict(newEntries: readonly Entry[]): number {
    for (const e of newEntries) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * The follower side of MsgApp: append when the leader's previous entry matches,
   * returning the last index the message covers, or undefined on a mismatch.
   */
  maybeAppend(prevIndex: number, prevTerm: number, commit: number, newEntries: readonly Entry[]): number | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined;
    const lastNew = prevIndex + newEntries.length;
    const conflict = this.findConflict(newEntries);
    if (conflict !== 0) {
      if (conflict <= this.committed) {
        throw new RaftError('LOG_CORRUPTED', `entry ${conflict} conflicts with committed ${this.committed}`);
      }
      this.append(newEntries.slice(conflict - prevIndex - 1));
    }
    this.commitTo(Math.min(commit, lastNew));
    return lastNew;
  }

  /**
   * The largest index at or below `index` whose term is at most `term`: the
   * fast log-backtracking hint of etcd's findConflictByTerm.
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    for (let i = index; i >= this.snapshotId.index; i--) {
      const t = this.term(i);
      if (t === undefined) break;
      if (t <= term) return { index: i, term: t };
    }
    return { index: this.snapshotId.index, term: 0 };
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    if (index > this.lastIndex()) {
      throw new RaftError('LOG_CORRUPTED', `commit ${index} is beyond the last index ${this.lastIndex()}`);
    }
    this.committed = index;
  }

  /** A leader commits only entries of its own term by counting replicas (Raft §5.4.2). */
  maybeCommit(index: number, term: number): boolean {
    if (index > this.committed && this.term(index) === term) {
      this.commitTo(index);
      return true;
    }
    return false;
  }

  entriesFrom(index: number): Entry[] {
    const start = index - this.snapshotId.index - 1;
    if (start < 0) throw new RaftError('INVALID_ARGUMENT', `entries from ${index} are compacted`);
    return this.entries.slice(start);
  }

  unstableEntries(): Entry[] {
    return this.entries.slice(Math.max(0, this.stableIndex - this.snapshotId.index));
  }

  hasUnstable(): boolean {
    return this.lastIndex() > this.stableIndex || this.pendingSnapshot !== undefined;
  }

  pendingSnapshotId(): EntryId | undefined {
    return this.pendingSnapshot;
  }

  /** Marks entries up to `id` persisted, unless they were replaced since (a truncation in between). */
  stableTo(id: EntryId): void {
    if (this.matchTerm(id.index, id.term) && id.index > this.stableIndex) this.stableIndex = id.index;
  }

  stableSnapshot(snapshot: EntryId): void {
    if (this.pendingSnapshot && this.pendingSnapshot.index === snapshot.index) this.pendingSnapshot = undefined;
  }

  /** Replaces the log by a leader's compaction marker (MsgSnap). */
  restore(snapshot: EntryId): void {
    this.snapshotId = { index: snapshot.index, term: snapshot.term };
    this.entries = [];
    this.committed = snapshot.index;
    this.stableIndex = snapshot.index;
    this.pendingSnapshot = { index: snapshot.index, term: snapshot.term };
  }

  /**
   * Folds committed, persisted entries up to `limit` (the applied index, so the marker's
   * configuration is known) into the marker, so the log stays bounded.
   */
  compact(keepEntries: number, limit: number): EntryId | undefined {
    const upTo = Math.min(this.committed, this.stableIndex, this.lastIndex() - keepEntries, limit);
    if (upTo <= this.snapshotId.index) return undefined;
    const term = this.term(upTo);
    if (term === undefined) return undefined;
    this.entries = this.entries.slice(upTo - this.snapshotId.index);
    this.snapshotId = { index: upTo, term };
    return this.snapshotId;
  }

  allEntries(): Entry[] {
    return this.entries.map(copyEntry);
  }
}
