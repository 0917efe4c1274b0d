/**
 * The leader's lease (Raft thesis §6.4.1): a quorum acknowledged heartbeats sent at
 * or after some instant S, so none of them grants a vote before S + the election
 * timeout (CheckQuorum's vote lease). The leader may therefore act alone until
 * S + leaseWindowMs, where the window is shorter than that timeout by the clock drift
 * we tolerate. Times are monotonic milliseconds from the driver.
 */
export class LeaderLease {
  private readonly sentAtBySeq = new Map<string, number>();
  private readonly ackedSentAt = new Map<string, number>();
  private readonly othersNeeded: number;

  constructor(
    private readonly self: string,
    private readonly voters: readonly string[],
    readonly leaseWindowMs: number,
    /** Bound on remembered heartbeat rounds; older rounds can no longer extend the lease anyway. */
    private readonly maxTrackedRounds = 256,
  ) {
    this.othersNeeded = Math.floor(voters.length / 2) + 1 - (voters.includes(self) ? 1 : 0);
  }

  /** A new term or a new leadership: acknowledgements of earlier rounds must not count. */
  reset(): void {
    this.sentAtBySeq.clear();
    this.ackedSentAt.clear();
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
    if (from === this.self || !this.voters.includes(from)) return;
    const sentAt = this.sentAtBySeq.get(seq);
    if (sentAt === undefined) return;
    const previous = this.ackedSentAt.get(from);
    if (previous === undefined || sentAt > previous) this.ackedSentAt.set(from, sentAt);
  }

  /** Monotonic time at which the lease ends, or undefined when a quorum never acknowledged. */
  expiresAtMs(nowMs: number): number | undefined {
    if (this.othersNeeded <= 0) return nowMs + this.leaseWindowMs;
    const acks = [...this.ackedSentAt.values()].sort((a, b) => b - a);
    const quorumSentAt = acks[this.othersNeeded - 1];
    return quorumSentAt === undefined ? undefined : quorumSentAt + this.leaseWindowMs;
  }
}
