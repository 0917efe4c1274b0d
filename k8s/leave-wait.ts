/**
 * A voter whose pod is being deleted keeps running after SIGTERM until the leader has removed
 * it from the configuration (bounded). Without this, deleting two followers of a three-voter
 * group at once loses the quorum for good: both exit before the leader can commit the first
 * removal, and no later pod can be added without a quorum. A container restart inside a pod
 * that stays (no deletionTimestamp) does not wait: the member comes back as itself.
 */
import type { Logger } from 'pino';
import type { ConfState } from '../raft/index.js';

export type LeaveOutcome = 'removed' | 'not-deleting' | 'not-a-voter' | 'last-voter' | 'timed-out' | 'disabled';

export interface LeaveWaitOptions {
  selfId: string;
  confState(): ConfState;
  onMembershipChange(listener: (cs: ConfState) => void): () => void;
  /** This member's own pod is deleting (the pod watch, else a fresh read: SIGTERM may beat the watch event). */
  ownPodDeleting(): Promise<boolean>;
  maxWaitMs: number;
  setTimeout(callback: () => void, delayMs: number): unknown;
  clearTimeout(handle: unknown): void;
  logger: Logger;
}

function votesIn(cs: ConfState, id: string): boolean {
  return cs.voters.includes(id) || cs.votersOutgoing.includes(id);
}

/** Resolves once this member may exit without taking a vote the group still counts on. */
export async function waitUntilRemoved(o: LeaveWaitOptions): Promise<LeaveOutcome> {
  const log = o.logger.child({ component: 'leave-wait' });
  const outcome = await decide(o, log);
  if (outcome !== 'removed' && outcome !== 'timed-out') log.info({ outcome }, 'leaving without waiting to be removed');
  return outcome;
}

async function decide(o: LeaveWaitOptions, log: Logger): Promise<LeaveOutcome> {
  const cs = o.confState();
  if (o.maxWaitMs === 0) return 'disabled';
  if (!votesIn(cs, o.selfId)) return 'not-a-voter';
  // The last voter cannot be removed; nobody waits on its vote either.
  if (cs.voters.length === 1 && cs.votersOutgoing.length === 0) return 'last-voter';
  if (!(await o.ownPodDeleting().catch(() => false))) return 'not-deleting';
  log.info({ maxWaitMs: o.maxWaitMs, voters: [...cs.voters].sort() }, 'pod deleting: staying until the leader removes this voter');
  return new Promise<LeaveOutcome>((resolve) => {
    let done = false;
    const finish = (outcome: LeaveOutcome) => {
      if (done) return;
      done = true;
      unsubscribe();
      o.clearTimeout(timer);
      log.info({ outcome }, outcome === 'removed' ? 'removed from the configuration: leaving' : 'not removed in time: leaving anyway');
      resolve(outcome);
    };
    const unsubscribe = o.onMembershipChange((next) => {
      if (!votesIn(next, o.selfId)) finish('removed');
    });
    const timer = o.setTimeout(() => finish('timed-out'), o.maxWaitMs);
    // The change may have been applied between the check above and the subscription.
    if (!votesIn(o.confState(), o.selfId)) finish('removed');
  });
}
