/**
 * The member's side of mixed timing settings (a rolling upgrade): the peers' announced timing
 * feeds the leader's lease (cluster/lease.ts); the waits that cover another leader's lease use
 * the longest window any member announced; the start-up vote refusal covers the longest window
 * this member ever announced (cluster/timing-record.ts).
 */
import type { Logger } from 'pino';
import type { Message } from '../raft/index.js';
import type { PeerTiming, PeerTimingRecord } from './interfaces.js';
import { refusalWindowMs, type LeaderLease } from './lease.js';
import type { TimingRecord, TimingRecordStore } from './timing-record.js';

function sameTiming(a: PeerTiming, b: PeerTiming): boolean {
  return a.tickMs === b.tickMs && a.electionTicks === b.electionTicks && a.maxClockDriftMs === b.maxClockDriftMs;
}

export class MemberTiming {
  private startedAtMs = 0;
  private startedFresh = false;
  /** undefined until the first peer message says whether the group ran before this member. */
  private groupRanSeen: boolean | undefined;
  /** The longest windows this member ever announced, its current ones included (its timing record). */
  private longestAnnounced: TimingRecord = { longestRefusalWindowMs: 0, longestLeaseWindowMs: 0 };

  constructor(
    readonly own: PeerTiming,
    private readonly lease: LeaderLease,
    private readonly record: TimingRecordStore | undefined,
    private readonly log: Logger,
  ) {}

  /**
   * Records the longest windows this member ever announced (fsynced before it joins) and
   * returns the start-up vote refusal (raft neither grants nor campaigns in it) in ticks that covers it: an ack the old incarnation gave
   * under longer timing still counts with its old window at the leader. The first tick may come
   * at once, so d ticks refuse for (d - 1) * tickMs: d = ceil(longest / tickMs) + 1.
   */
  start(nowMs: number, fresh: boolean): { restartVoteDelayTicks: number } {
    this.startedAtMs = nowMs;
    this.startedFresh = fresh;
    this.groupRanSeen = undefined;
    const own = refusalWindowMs(this.own);
    const recorded = this.record?.load();
    const longest: TimingRecord = {
      longestRefusalWindowMs: Math.max(own, recorded?.longestRefusalWindowMs ?? 0),
      longestLeaseWindowMs: Math.max(own - this.own.maxClockDriftMs, recorded?.longestLeaseWindowMs ?? 0, 0),
    };
    this.longestAnnounced = longest;
    if (
      recorded === undefined ||
      longest.longestRefusalWindowMs > recorded.longestRefusalWindowMs ||
      longest.longestLeaseWindowMs > recorded.longestLeaseWindowMs
    ) {
      this.record?.save(longest);
    }
    const ticks = Math.max(this.own.electionTicks, Math.ceil(longest.longestRefusalWindowMs / this.own.tickMs) + 1);
    if (recorded !== undefined && recorded.longestRefusalWindowMs > own) {
      this.log.info(
        { refusalWindowMs: own, longestAnnouncedMs: recorded.longestRefusalWindowMs, restartVoteDelayTicks: ticks },
        'timing shorter than before: the start-up vote refusal covers the longest window this member announced',
      );
    }
    return { restartVoteDelayTicks: ticks };
  }

  /** The longest windows this member ever announced (its timing record): announced in the handshake. */
  announcedRecord(): TimingRecord {
    return { ...this.longestAnnounced };
  }

  /**
   * The transport's onPeerTiming: the timing a peer announced on its new link, and what it
   * announced of its timing record (nothing from an older peer).
   */
  peerTiming(peer: string, timing: PeerTiming, record?: PeerTimingRecord): void {
    const before = this.lease.peerTiming(peer);
    this.lease.setPeerTiming(peer, timing, record);
    // Once per change per peer: a rolling upgrade mixes settings on purpose, and it is worth a line.
    if (!sameTiming(timing, this.own) && (before === undefined || !sameTiming(before, timing))) {
      this.log.info(
        { peer, peerTiming: timing, ownTiming: this.own, ackWindowMs: this.lease.ackWindowMs(peer) ?? 0 },
        'peer runs with other timing settings; its acks count with its own window',
      );
    }
  }

  /**
   * How long a wait must be to outlast any other leader's lease: the longest lease window
   * announced (this member's and its peers' timing records included) plus the largest drift,
   * and at least the longest refusal window any record holds. That floor is what an
   * announcement kept whole would give (window + its own drift): a record keeps no drift, and
   * the old leader's drift may be one this member never heard.
   */
  otherLeaseCoverMs(): number {
    const window = Math.max(this.lease.longestLeaseWindowMs(), this.longestAnnounced.longestLeaseWindowMs);
    return Math.max(window + this.lease.largestDriftMs(), this.longestAnnounced.longestRefusalWindowMs, this.lease.longestRecordedRefusalWindowMs());
  }

  /**
   * A member that started without state may have voted, or acked a leader, before its disk was
   * lost, under timing it no longer knows: once the group is seen to have run, it refuses votes
   * for twice the longest window any member announced (raft covers its own timing already).
   */
  refusesFreshVote(m: Message, localTerm: number, nowMs: number): boolean {
    this.noteGroupRan(m);
    if (!this.startedFresh || !this.groupRanSeen) return false;
    // The current term too: a stray message may have set it with no vote (raft.ts refuses those as well).
    if ((m.type !== 'MsgVote' && m.type !== 'MsgPreVote') || m.term < localTerm) return false;
    return this.inFreshWindow(nowMs);
  }

  /**
   * Would refusesFreshVote drop a vote request of a later term now? Undecided counts as yes: a
   * request for the next term of a group past term 1 itself shows that the group ran.
   */
  refusesFreshVotes(nowMs: number): boolean {
    return this.startedFresh && this.groupRanSeen !== false && this.inFreshWindow(nowMs);
  }

  private inFreshWindow(nowMs: number): boolean {
    return nowMs - this.startedAtMs < 2 * this.otherLeaseCoverMs() + this.own.tickMs;
  }

  /** The same rule raft applies to its first peer message (raft.ts noteGroupRan). */
  private noteGroupRan(m: Message): void {
    if (this.groupRanSeen !== undefined) return;
    const fromLeader = m.type === 'MsgApp' || m.type === 'MsgHeartbeat' || m.type === 'MsgSnap';
    const voteWithHistory = (m.type === 'MsgVote' || m.type === 'MsgPreVote') && m.logTerm > 0;
    this.groupRanSeen = m.term > 1 || fromLeader || voteWithHistory;
  }
}
