/**
 * The audit trail of claims: when this member started and stopped answering isLeader true.
 * Bounded, because isLeader can flicker (a leader whose heartbeats are further apart than its
 * lease, docs/design.md) and would log two lines per heartbeat. The first flips of an interval
 * are logged as they happen, which covers every ordinary election, transfer and step-down;
 * further ones are counted and summed up in one line when the interval is over, with the
 * state at that moment, so the last line always tells whether the member claims.
 */
import type { Logger } from 'pino';

export const ClaimLogIntervalMs = 60_000;
/** Lines logged as they happen per interval (five claims and their ends). */
export const ClaimLinesPerInterval = 10;

export interface ClaimView {
  term: number;
  role: string;
  isLeader: boolean;
  leaseExpiresInMs: number | null;
}

export class ClaimLog {
  private windowStartMs = -Infinity;
  private lines = 0;
  private claims = 0;
  private ends = 0;
  private lastLogged: { term: number; role: string } | null = null;

  constructor(
    private readonly log: Logger,
    private readonly intervalMs = ClaimLogIntervalMs,
    private readonly linesPerInterval = ClaimLinesPerInterval,
  ) {}

  /** isLeader changed to view.isLeader. */
  flipped(nowMs: number, view: ClaimView): void {
    this.flush(nowMs, view);
    if (nowMs - this.windowStartMs >= this.intervalMs) {
      this.windowStartMs = nowMs;
      this.lines = 0;
    }
    // Only a flicker (a flip in the term and role of the last line) is counted instead: a new term
    // or role is a real change, and hiding a deposition would leave two claimants in the trail.
    const sameAsLast = this.lastLogged !== null && this.lastLogged.term === view.term && this.lastLogged.role === view.role;
    if (this.lines < this.linesPerInterval || !sameAsLast) {
      this.lines++;
      this.lastLogged = { term: view.term, role: view.role };
      if (view.isLeader) this.log.info({ term: view.term, leaseExpiresInMs: view.leaseExpiresInMs }, 'claiming leadership (lease held)');
      else this.log.info({ term: view.term, role: view.role }, 'no longer claiming leadership');
      return;
    }
    if (view.isLeader) this.claims++;
    else this.ends++;
  }

  /** Called on every published view: the summary of the flips not logged, once their interval is over. */
  flush(nowMs: number, view: ClaimView): void {
    if (this.claims + this.ends === 0 || nowMs - this.windowStartMs < this.intervalMs) return;
    this.log.warn(
      { term: view.term, role: view.role, isLeader: view.isLeader, claims: this.claims, ends: this.ends, intervalMs: this.intervalMs },
      `isLeader flickered: ${this.claims} more claims and ${this.ends} more ends than logged in ${this.intervalMs} ms; ${view.isLeader ? 'claiming' : 'not claiming'} now (heartbeats further apart than the lease? see docs/design.md, mixed timing)`,
    );
    this.claims = 0;
    this.ends = 0;
    this.windowStartMs = nowMs;
    this.lines = 0;
  }
}
