import type { ConfState } from '../raft/index.js';
import type { PeerTiming, PeerTimingRecord } from './interfaces.js';

/** The voter sets in force: the incoming one, and the outgoing one while joint. */
export type LeaseConfig = Pick<ConfState, 'voters' | 'votersOutgoing'>;

/**
 * The leader's lease (Raft thesis §6.4.1), for a group whose members may run with different
 * timing settings (a rolling upgrade).
 *
 * The invariant. Follower f, on a heartbeat from the leader, zeroes its election clock and
 * refuses every non-transfer vote while electionElapsed < electionTicks_f. Its ticks are at
 * least tickMs_f apart but the first may come at once, so it refuses for at least
 *     R_f = (electionTicks_f - 1) * tickMs_f                          (f's clock)
 * after it received the heartbeat, hence after the leader sent it at sentAt (leader's clock).
 * The two clocks may drift apart by up to the larger of the two announced bounds over such a
 * window, so on the leader's clock f refuses at least until
 *     expiry_f = sentAt + R_f - max(maxClockDriftMs_leader, maxClockDriftMs_f).
 * No one is elected without a quorum of votes, and a quorum of the voters must include one of
 * any other quorum. With the leader itself and the others sorted by expiry_f, latest first,
 * the (quorum - 1)-th one bounds the time before which no other leader can exist:
 *     lease ends at the (quorum - 1)-th latest expiry_f.
 * An ack from a peer whose timing is unknown counts for nothing; a window that is not positive
 * counts for nothing. Each ack's expiry is fixed with the timing f announced when it acked: if
 * f restarts with shorter timing the old ack keeps its old window, which is why f's start-up
 * vote refusal covers the longest window it ever announced (cluster/timing-record.ts). "Refuses
 * every vote" includes f's own: f does not campaign while it refuses (raft.ts hup), else its new,
 * shorter election timeout lets it stand inside the old window.
 *
 * A changing configuration. An ack is f's promise about f alone (it refuses votes until
 * expiry_f), whatever role f had when it gave it, so it is kept for any peer and counted, at
 * check time, in every configuration raft's tracker holds then in which f is a voter; learners
 * and removed members count nowhere. While joint, an election needs a quorum of both halves
 * (and raft changes one voter at a time or through the joint), so any configuration another
 * candidate can be on shares a quorum member with each of the ones checked here: the lease is
 * the earliest of the per-configuration leases. Acks in flight across a change are thus judged
 * by the configuration in force when isLeader is asked, and the member asks again after every
 * applied change.
 *
 * Every wait that covers *another* leader's lease (the claim wait after a lease-skipped
 * election, the fresh-start vote delay) uses longestLeaseWindowMs(): the largest window any
 * known member may grant, since that other leader's quorum is unknown here. "Any" includes what
 * a peer announced before it restarted with shorter timing: its old acks keep their old window
 * at the leader holding them, and the restart marks the votes it grants meanwhile as skipping a
 * lease, so a successor this member elects must wait out that old window, not the new one. Even if this
 * member never linked to the old incarnation: each member announces the longest lease window
 * of its timing record in the handshake, and that counts here too.
 * Times are monotonic milliseconds from the driver.
 */
export class LeaderLease {
  private readonly sentAtBySeq = new Map<string, number>();
  /** Per peer: the latest expiry its acks of this leadership guarantee. */
  private readonly ackExpiry = new Map<string, number>();
  private readonly peerTimings = new Map<string, PeerTiming>();
  /**
   * Per peer: the longest window (R_f - maxClockDriftMs_f) and largest drift it ever announced
   * here, and the longest refusal window R_f its timing record announced (0: none).
   */
  private readonly longestAnnounced = new Map<string, { windowMs: number; driftMs: number; recordedRefusalMs: number }>();
  /** This member's own window, for a configuration in which it is the only voter needed. */
  readonly leaseWindowMs: number;

  constructor(
    private readonly self: string,
    private readonly selfTiming: PeerTiming,
    /** Bound on remembered heartbeat rounds; older rounds can no longer extend the lease anyway. */
    private readonly maxTrackedRounds = 256,
    /** Bound on peers whose timing and acks are kept (members come and go). */
    private readonly maxTrackedPeers = 1024,
  ) {
    this.leaseWindowMs = refusalWindowMs(selfTiming) - selfTiming.maxClockDriftMs;
  }

  /**
   * The timing a peer announced on its current link; applies to acks from now on. `record`,
   * what the peer announced of its timing record, feeds only the waits that cover another
   * leader's lease (its old incarnations may have acked a leader this member never linked to):
   * its lease window as an announced (R_f - maxClockDriftMs_f) would, its refusal window
   * through longestRecordedRefusalWindowMs(). A refusal window without a lease window (a build
   * that announced only that) counts whole, as a lease window with a drift of 0.
   */
  setPeerTiming(peer: string, timing: PeerTiming, record: PeerTimingRecord = {}): void {
    if (peer === this.self) return;
    this.peerTimings.delete(peer);
    this.peerTimings.set(peer, { ...timing });
    const before = this.longestAnnounced.get(peer);
    const recordedWindow = record.longestLeaseWindowMs ?? record.longestRefusalWindowMs ?? -Infinity;
    this.longestAnnounced.delete(peer);
    this.longestAnnounced.set(peer, {
      windowMs: Math.max(before?.windowMs ?? -Infinity, refusalWindowMs(timing) - timing.maxClockDriftMs, recordedWindow),
      driftMs: Math.max(before?.driftMs ?? 0, timing.maxClockDriftMs),
      recordedRefusalMs: Math.max(before?.recordedRefusalMs ?? 0, record.longestRefusalWindowMs ?? 0),
    });
    // Oldest announcement first: a peer gone long ago is the one to forget.
    while (this.peerTimings.size > this.maxTrackedPeers) this.peerTimings.delete(this.peerTimings.keys().next().value as string);
    while (this.longestAnnounced.size > this.maxTrackedPeers) this.longestAnnounced.delete(this.longestAnnounced.keys().next().value as string);
  }

  peerTiming(peer: string): PeerTiming | undefined {
    return this.peerTimings.get(peer);
  }

  /** What one ack from `peer` guarantees, in ms after its heartbeat was sent; undefined if nothing. */
  ackWindowMs(peer: string): number | undefined {
    const t = this.peerTimings.get(peer);
    if (t === undefined) return undefined;
    const w = refusalWindowMs(t) - Math.max(this.selfTiming.maxClockDriftMs, t.maxClockDriftMs);
    return w > 0 ? w : undefined;
  }

  /**
   * The longest lease any leader of this group may hold, as far as this member knows: the
   * largest (R_f - maxClockDriftMs_f) among itself and every timing announced to it, a peer's
   * earlier announcements included (it may have acked under them before a restart), and the
   * longest lease window each peer's timing record holds (those of restarts before it linked here).
   */
  longestLeaseWindowMs(): number {
    let longest = this.leaseWindowMs;
    for (const t of this.longestAnnounced.values()) longest = Math.max(longest, t.windowMs);
    return longest;
  }

  /** The largest drift bound among this member and every timing announced to it, earlier ones included. */
  largestDriftMs(): number {
    let largest = this.selfTiming.maxClockDriftMs;
    for (const t of this.longestAnnounced.values()) largest = Math.max(largest, t.driftMs);
    return largest;
  }

  /**
   * The longest refusal window any peer's timing record announced: a floor under the waits that
   * cover another leader's lease (member-timing.ts otherLeaseCoverMs).
   */
  longestRecordedRefusalWindowMs(): number {
    let longest = 0;
    for (const t of this.longestAnnounced.values()) longest = Math.max(longest, t.recordedRefusalMs);
    return longest;
  }

  /** A new term or a new leadership: acknowledgements of earlier rounds must not count. */
  reset(): void {
    this.sentAtBySeq.clear();
    this.ackExpiry.clear();
  }

  heartbeatSent(seq: string, nowMs: number): void {
    // One round goes to every follower; the first send time is the conservative one.
    if (this.sentAtBySeq.has(seq)) return;
    this.sentAtBySeq.set(seq, nowMs);
    while (this.sentAtBySeq.size > this.maxTrackedRounds) {
      const oldest = this.sentAtBySeq.keys().next().value as string;
      this.sentAtBySeq.delete(oldest);
    }
  }

  heartbeatAcked(from: string, seq: string): void {
    if (from === this.self) return;
    const sentAt = this.sentAtBySeq.get(seq);
    const window = this.ackWindowMs(from);
    if (sentAt === undefined || window === undefined) return;
    // Fixed now, with the timing announced on the link the ack came over.
    const expiry = sentAt + window;
    const previous = this.ackExpiry.get(from);
    if (previous === undefined || expiry > previous) this.ackExpiry.set(from, expiry);
    // Only peers with a known timing get here, and those are bounded.
    for (const id of this.ackExpiry.keys()) if (!this.peerTimings.has(id)) this.ackExpiry.delete(id);
  }

  /**
   * Monotonic time at which the lease ends under `config` (the one in force now), or undefined
   * when some configuration's quorum never acknowledged.
   */
  expiresAtMs(nowMs: number, config: LeaseConfig): number | undefined {
    let earliest: number | undefined;
    for (const voters of [config.voters, config.votersOutgoing]) {
      // An empty outgoing half means not joint; an empty incoming one cannot elect anyone.
      if (voters.length === 0 && voters === config.votersOutgoing) continue;
      const expiry = this.configExpiry(nowMs, voters);
      if (expiry === undefined) return undefined;
      earliest = earliest === undefined ? expiry : Math.min(earliest, expiry);
    }
    return earliest;
  }

  private configExpiry(nowMs: number, voters: readonly string[]): number | undefined {
    if (voters.length === 0) return undefined;
    const othersNeeded = Math.floor(voters.length / 2) + 1 - (voters.includes(this.self) ? 1 : 0);
    if (othersNeeded <= 0) return nowMs + this.leaseWindowMs;
    const expiries: number[] = [];
    for (const id of voters) {
      const e = id === this.self ? undefined : this.ackExpiry.get(id);
      if (e !== undefined) expiries.push(e);
    }
    expiries.sort((a, b) => b - a);
    return expiries[othersNeeded - 1];
  }
}

/** R = (electionTicks - 1) * tickMs: how long a member surely refuses votes after a heartbeat. */
export function refusalWindowMs(t: PeerTiming): number {
  return (t.electionTicks - 1) * t.tickMs;
}
