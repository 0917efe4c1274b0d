/**
 * The role and leader raft last reported (its soft state), and what follows when they change:
 * the election metrics (started, leader changed, how long the group had no leader), a new
 * leader's fresh lease and its claim wait after a lease-skipped election, and the role log line.
 * Separate from RaftMember because it is bookkeeping on a change the Ready cycle hands it: it
 * never acts on raft.
 */
import type { Logger } from 'pino';
import { CampaignTransferContext, None, type Ready, type StateType, type Status } from '../raft/index.js';
import type { MemberMetrics } from './interfaces.js';
import type { LeaderLease } from './lease.js';

export interface RoleHost {
  readonly metrics: MemberMetrics | undefined;
  readonly lease: LeaderLease;
  /** How long a wait must be to outlast any other leader's lease (MemberTiming). */
  otherLeaseCoverMs(): number;
  /** A getter: tests swap the member's logger after construction. */
  log(): Logger;
}

export class RoleTracker {
  private soft: { lead: string; state: StateType } = { lead: None, state: 'Follower' };
  /** When this member, as leader, may first claim its lease (after a lease-skipped election). */
  private claimNotBefore = 0;
  private leaderLostAtMs: number | undefined;

  constructor(private readonly host: RoleHost) {}

  get state(): StateType {
    return this.soft.state;
  }

  /** The leader's id, or None. */
  get lead(): string {
    return this.soft.lead;
  }

  get claimNotBeforeMs(): number {
    return this.claimNotBefore;
  }

  /** A Ready with a soft state; `status` is raft's after it, `now` monotonic ms. */
  apply(rd: Ready, status: Status, now: number): void {
    const { metrics } = this.host;
    const next = rd.softState!;
    const prev = this.soft;
    this.soft = { lead: next.lead, state: next.state };
    if (next.state !== prev.state) {
      if (next.state === 'PreCandidate') metrics?.electionStarted('pre-vote');
      if (next.state === 'Candidate') {
        const transfer = rd.messages.some((m) => m.type === 'MsgVote' && m.context === CampaignTransferContext);
        metrics?.electionStarted(transfer ? 'transfer' : 'vote');
      }
      if (next.state === 'Leader') {
        this.host.lease.reset();
        // Followers that forgot the old leader skipped its lease: wait it out before claiming,
        // with the drift margin, since the old lease ran on the old leader's clock. Its quorum is
        // unknown here, so the wait covers the longest window any member announced.
        this.claimNotBefore = status.leaseSkipped ? now + this.host.otherLeaseCoverMs() : 0;
      }
    }
    if (next.lead !== prev.lead) {
      if (next.lead === None) {
        this.leaderLostAtMs ??= now;
      } else {
        metrics?.leaderChanged();
        if (this.leaderLostAtMs !== undefined) metrics?.electionDuration((now - this.leaderLostAtMs) / 1000);
        this.leaderLostAtMs = undefined;
      }
    }
    this.host.log().info(
      { term: status.term, role: next.state, leader: next.lead || null, previousRole: prev.state },
      `role ${next.state}, term ${status.term}, leader ${next.lead || 'none'}`,
    );
  }
}
