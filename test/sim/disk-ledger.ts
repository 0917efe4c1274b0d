/**
 * What every disk identity of the simulation ever persisted, and the invariants that rest on
 * it: one vote per term per disk identity, committed entries that agree across members. A wipe
 * begins a new identity (the design accepts that a wiped member may vote twice in one term), so
 * a second leader of a term is explained only by a member that voted for both under two
 * identities (`doubleVoteWitness`).
 */
import { None, type DurableState } from '../../raft/index.js';

interface PersistedVote {
  candidate: string;
  /** The voter's own ticks since its start when it wrote the vote. */
  ageTicks: number;
}

export interface DoubleVoteWitness {
  voter: string;
  /** Disk identities of the voter that voted for the first and for the second leader. */
  firstDisk: number;
  secondDisk: number;
  /** The vote on the later of the two identities: for whom, and the voter's own ticks since that start. */
  laterVoteFor: string;
  laterVoteAgeTicks: number;
}

export type LedgerViolation = (invariant: string, text: string) => Error;

export class DiskLedger {
  /** `<id>#<disk identity>` → term → the vote persisted in it. */
  private readonly votes = new Map<string, Map<number, PersistedVote>>();
  /** index → term of the entry any member persisted as committed there. */
  private readonly committedTerms = new Map<number, number>();
  /** Some disk that held written state has been erased: committed prefixes may rightly fork from here. */
  private writtenDiskLost = false;

  constructor(
    private readonly allowLostCommittedEntries: boolean,
    private readonly violation: LedgerViolation,
    /** The simulation's counters, bumped here. */
    private readonly stats: { votesPersisted: number; forkedCommittedEntries: number },
  ) {}

  /** A fresh disk identity (a member's first start, or after a wipe); `hadState`: the erased disk held a write. */
  newDisk(id: string, identity: number, hadState: boolean): void {
    if (hadState) this.writtenDiskLost = true;
    this.votes.set(key(id, identity), new Map());
  }

  /** Checks a write of `ds` by `id` on disk `identity` against everything persisted before, then records it. */
  recordWrite(id: string, identity: number, ds: DurableState, ageTicks: number): void {
    const hs = ds.hardState;
    if (hs.vote !== None) {
      const votes = this.votes.get(key(id, identity))!;
      const earlier = votes.get(hs.term)?.candidate;
      if (earlier !== undefined && earlier !== hs.vote) {
        throw this.violation(
          'one-vote-per-term',
          `${id} (disk #${identity}) persisted a vote for ${hs.vote} in term ${hs.term} after it had persisted a vote for ${earlier}`,
        );
      }
      if (earlier === undefined) {
        votes.set(hs.term, { candidate: hs.vote, ageTicks });
        this.stats.votesPersisted++;
      }
    }
    for (const e of ds.entries) {
      if (e.index > hs.commit) break;
      const term = this.committedTerms.get(e.index);
      if (term === undefined) this.committedTerms.set(e.index, e.term);
      else if (term !== e.term && this.allowLostCommittedEntries && this.writtenDiskLost) {
        this.stats.forkedCommittedEntries++;
      } else if (term !== e.term) {
        throw this.violation('committed-entries-agree', `${id} committed index ${e.index} at term ${e.term}; another member committed it at term ${term}`);
      }
    }
  }

  /**
   * Two quorums of one term share a member; with one vote per term per disk, that member
   * must have voted for the two leaders under two disk identities. Returns it, or nothing.
   */
  doubleVoteWitness(term: number, first: string, second: string, members: readonly { id: string; diskIdentity: number }[]): DoubleVoteWitness | undefined {
    for (const { id, diskIdentity } of members) {
      let firstDisk: number | undefined;
      let secondDisk: number | undefined;
      for (let d = 0; d <= diskIdentity; d++) {
        const vote = this.votes.get(key(id, d))?.get(term)?.candidate;
        if (vote === first) firstDisk ??= d;
        if (vote === second) secondDisk ??= d;
      }
      if (firstDisk === undefined || secondDisk === undefined || firstDisk === secondDisk) continue;
      const later = this.votes.get(key(id, Math.max(firstDisk, secondDisk)))!.get(term)!;
      return { voter: id, firstDisk, secondDisk, laterVoteFor: later.candidate, laterVoteAgeTicks: later.ageTicks };
    }
    return undefined;
  }
}

function key(id: string, identity: number): string {
  return `${id}#${identity}`;
}
