/**
 * What the member answers and who hears it: the claim rule (isLeader only while a lease is held,
 * never in a transfer's term, never before a lease-skipped election's wait is over), the view's
 * listeners, the audit trail of claims, and the wake-up timer for the moment the lease or the
 * claim wait ends. Separate from RaftMember because it only reads the member's state: the rule
 * a caller relies on stays in one place, apart from driving raft.
 */
import type { Logger } from 'pino';
import type { ConfState, StateType } from '../raft/index.js';
import { ClaimLog } from './claim-log.js';
import type { LeadershipView } from './interfaces.js';
import type { LeaderLease } from './lease.js';
import { votesInEveryConfig } from './member-membership.js';
import type { MemberTimers } from './member-options.js';
import { WakeupTimer } from './wakeup-timer.js';

/** The member's state the view is computed from, read afresh on every use. */
export interface ClaimState {
  /** Raft leads on a running member: only then may it claim. */
  readonly leading: boolean;
  readonly leader: string | null;
  readonly term: number;
  readonly role: StateType;
  readonly confState: ConfState;
  /** Monotonic ms before which a new leader does not claim (after a lease-skipped election). */
  readonly claimNotBeforeMs: number;
  /** This member started a transfer in this term: it never claims it again. */
  readonly transferring: boolean;
}

export interface ViewHost {
  readonly self: string;
  readonly lease: LeaderLease;
  readonly timers: MemberTimers;
  nowMs(): number;
  wallClock(): Date;
  /** A getter: tests swap the member's logger after construction. */
  log(): Logger;
  state(): ClaimState;
  /** A changed view, before the listeners hear it (the transfer gate). */
  beforeListeners(view: LeadershipView): void;
}

export class ViewPublisher {
  private readonly listeners = new Set<(view: LeadershipView) => void>();
  private lastView: LeadershipView | undefined;
  private leaderSince: { lead: string; term: number; at: Date } | undefined;
  private readonly claimLog: ClaimLog;
  private readonly leaseTimer: WakeupTimer;

  constructor(private readonly host: ViewHost) {
    // The logger of construction time, as before the split: only the getter follows a swap.
    this.claimLog = new ClaimLog(host.log());
    this.leaseTimer = new WakeupTimer(host.timers, () => this.publish());
  }

  onChange(listener: (view: LeadershipView) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The view now (Member.view). */
  current(): LeadershipView {
    return this.compute(this.host.nowMs());
  }

  /** Emits the view when it changed, and arms a timer for the moment the lease or the claim wait ends. */
  publish(): void {
    const now = this.host.nowMs();
    const view = this.compute(now);
    const prev = this.lastView;
    const changed =
      !prev ||
      prev.leader !== view.leader ||
      prev.term !== view.term ||
      prev.role !== view.role ||
      prev.isLeader !== view.isLeader;
    this.lastView = view;
    // The audit trail of claims: when this member started and stopped answering isLeader true.
    if ((prev?.isLeader ?? false) !== view.isLeader) this.claimLog.flipped(now, view);
    else this.claimLog.flush(now, view);
    if (changed) {
      this.host.beforeListeners(view);
      for (const listener of this.listeners) {
        try {
          listener(view);
        } catch (err) {
          this.host.log().error({ err }, 'view listener failed');
        }
      }
    }
    this.armLeaseTimer(now, view);
  }

  /** The member stops: no wake-up is due. */
  clearTimer(): void {
    this.leaseTimer.clear();
  }

  private compute(now: number): LeadershipView {
    const s = this.host.state();
    const leader = s.leader;
    let isLeader = false;
    let leaseExpiresInMs: number | null = null;
    if (s.leading) {
      const cs = s.confState;
      // A learner, removed or demoted leader never claims, from the moment the change applies.
      const expiresAt = votesInEveryConfig(cs, this.host.self) ? this.host.lease.expiresAtMs(now, cs) : undefined;
      if (expiresAt !== undefined && expiresAt > now && !s.transferring && now >= s.claimNotBeforeMs) {
        isLeader = true;
        leaseExpiresInMs = Math.floor(expiresAt - now);
      }
    }
    if (leader === null) {
      this.leaderSince = undefined;
    } else if (!this.leaderSince || this.leaderSince.lead !== leader || this.leaderSince.term !== s.term) {
      this.leaderSince = { lead: leader, term: s.term, at: this.host.wallClock() };
    }
    return {
      self: this.host.self,
      leader,
      term: s.term,
      role: s.role,
      isLeader,
      leaseExpiresInMs,
      since: this.leaderSince ? this.leaderSince.at.toISOString() : null,
    };
  }

  private armLeaseTimer(now: number, view: LeadershipView): void {
    // Read afresh: a listener may have moved the member on (stopped it, started a transfer).
    const s = this.host.state();
    let wakeAt: number | undefined;
    if (s.leading) {
      if (view.isLeader && view.leaseExpiresInMs !== null) wakeAt = now + view.leaseExpiresInMs + 1;
      else if (s.claimNotBeforeMs > now) wakeAt = s.claimNotBeforeMs;
    }
    this.leaseTimer.arm(now, wakeAt);
  }
}
