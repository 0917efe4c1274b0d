import type { Logger } from 'pino';
import type { RandomSource } from '../raft/index.js';
import { ClusterError } from './errors.js';
import type { MemberMetrics, PeerTransport, StateStore, TransportEvents } from './interfaces.js';
import type { TimingRecordStore } from './timing-record.js';

/** RaftMember's options and their validation (done once, up front). */
export interface MemberOptions {
  id: string;
  /**
   * The configuration of a brand-new group, used only when the state file holds none. Absent:
   * a joiner with an empty configuration, which learns it from the leader. `id` need not be in
   * it: a member outside the configuration never campaigns but answers (etcd's promotable()).
   */
  bootstrap?: { voters: readonly string[]; learners?: readonly string[] };
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
  preVote?: boolean;
  checkQuorum?: boolean;
  /** Clock-rate difference tolerated between members over one lease window. */
  maxClockDriftMs: number;
  store: StateStore;
  /**
   * Where the longest vote-refusal window this member ever announced is kept (a file in the
   * data dir); without one, only the current settings count at a restart.
   */
  timingRecord?: TimingRecordStore;
  createTransport(events: TransportEvents): PeerTransport;
  logger: Logger;
  metrics?: MemberMetrics;
  random?: RandomSource;
  /**
   * When the link to the leader closes (its process died: the kernel closed the socket),
   * forget it at once, and let the lowest-id remaining voter campaign, instead of waiting
   * an election timeout. Safe: votes granted so carry LeaseSkipped, so the new leader waits
   * one lease window before it claims isLeader; a leader that is still alive keeps its
   * followers that did not lose it, and their lease refuses the pre-vote. Default true.
   */
  forgetLeaderOnDisconnect?: boolean;
  /**
   * When the leader falls silent for an election timeout, the lowest-id other voter asks for
   * pre-votes at once (and every tick after, for one more timeout) instead of at its randomized
   * timeout (RaftConfig.successorCampaign). Default true.
   */
  successorCampaign?: boolean;
  /**
   * A leader that hands over gives its own vote for the target's campaign with MsgTimeoutNow
   * (RaftConfig.transferGrantsVote), so a three-member handover needs no other follower's
   * round trip. Default true.
   */
  transferGrantsVote?: boolean;
  /** Called once when the member stops itself (the state file cannot be written). */
  onFatal?: (err: unknown) => void;
  /** This member's own peer address, shown in members(). */
  selfAddress?: string;
  /** Monotonic clock in ms; injectable for tests. */
  monotonicNowMs?: () => number;
  /** Timers that run on the same clock as monotonicNowMs; injectable so a test can skew both. */
  timers?: MemberTimers;
  wallClock?: () => Date;
}

export interface MemberTimers {
  setTimeout(callback: () => void, delayMs: number): NodeJS.Timeout;
  clearTimeout(handle: NodeJS.Timeout): void;
}

export const realTimers: MemberTimers = {
  setTimeout: (callback, delayMs) => setTimeout(callback, delayMs),
  clearTimeout: (handle) => clearTimeout(handle),
};

/** Validated, derived settings. */
export interface Timing {
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
  electionTimeoutMs: number;
  leaseWindowMs: number;
  maxClockDriftMs: number;
}

export function validateMemberOptions(o: MemberOptions): Timing {
  const fail = (msg: string): never => {
    throw new ClusterError('INVALID_MEMBER_OPTIONS', msg);
  };
  if (!o.id) fail('id must be a non-empty member id');
  if (o.bootstrap) {
    const { voters, learners = [] } = o.bootstrap;
    const all = [...voters, ...learners];
    if (voters.length === 0) fail('bootstrap.voters must name at least one member');
    if (all.some((id) => typeof id !== 'string' || id === '')) fail('bootstrap member ids must be non-empty strings');
    if (new Set(all).size !== all.length) fail(`bootstrap voters and learners must be distinct (${[...all].sort().join(', ')})`);
  }
  if (!Number.isInteger(o.tickMs) || o.tickMs < 1) fail(`tickMs must be a positive integer, got ${o.tickMs}`);
  if (!Number.isInteger(o.heartbeatTicks) || o.heartbeatTicks < 1) {
    fail(`heartbeatTicks must be a positive integer, got ${o.heartbeatTicks}`);
  }
  if (!Number.isInteger(o.electionTicks) || o.electionTicks <= o.heartbeatTicks) {
    fail(`electionTicks (${o.electionTicks}) must be an integer greater than heartbeatTicks (${o.heartbeatTicks})`);
  }
  if (!Number.isFinite(o.maxClockDriftMs) || o.maxClockDriftMs < 0) {
    fail(`maxClockDriftMs must be a non-negative number, got ${o.maxClockDriftMs}`);
  }
  // A follower refuses votes for electionTicks ticks after a heartbeat; the first of those
  // ticks may come at once, so only (electionTicks - 1) whole ticks are guaranteed.
  const leaseWindowMs = (o.electionTicks - 1) * o.tickMs - o.maxClockDriftMs;
  if (leaseWindowMs <= 0) {
    fail(
      `the lease window (electionTicks - 1) * tickMs - maxClockDriftMs = (${o.electionTicks} - 1) * ${o.tickMs} - ` +
        `${o.maxClockDriftMs} = ${leaseWindowMs} ms must be positive: raise electionTicks or lower maxClockDriftMs`,
    );
  }
  return {
    tickMs: o.tickMs,
    electionTicks: o.electionTicks,
    heartbeatTicks: o.heartbeatTicks,
    electionTimeoutMs: o.electionTicks * o.tickMs,
    leaseWindowMs,
    maxClockDriftMs: o.maxClockDriftMs,
  };
}

