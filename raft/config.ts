import { restoreConfState } from './confchange.js';
import type { RandomSource } from './random.js';
import { None, RaftError, type ConfState, type DurableState, type StateType } from './types.js';

export interface RaftConfig {
  id: string;
  /**
   * The initial voters, used when `restored` carries no ConfState. May be empty (with no
   * learners) for a member that joins a running group and learns its configuration from
   * the leader. `id` need not be a member: a node outside the configuration never
   * campaigns, but it answers (etcd's promotable()).
   */
  voters: readonly string[];
  /** Non-voting members: they replicate and may answer votes, but never campaign or count. */
  learners?: readonly string[];
  /** Ticks a follower waits without hearing from a leader before campaigning (randomized up to 2x). */
  electionTick: number;
  /** Ticks between a leader's heartbeats. Must be below electionTick. */
  heartbeatTick: number;
  preVote: boolean;
  checkQuorum: boolean;
  /** Each member needs its own source: identical sources draw identical timeouts. */
  random: RandomSource;
  /** What the member persisted before it stopped; absent for a fresh member. */
  restored?: DurableState;
  /**
   * Ticks after start during which a member with restored state answers no
   * higher-term (pre-)vote request and does not campaign (its own vote counts too): a
   * leader's lease may still count on a heartbeat it acknowledged before it stopped. A
   * transfer skips it, and the votes it grants meanwhile carry LeaseSkipped (another leader's
   * lease may be the one its old acks hold up). Not an etcd rule (Raft thesis §6.4.1).
   */
  restartVoteDelayTicks?: number;
  /**
   * The same delay (no campaign either, and nothing skips it) for a member that started
   * without state, applied only when the first message it gets shows the group ran before it
   * started (a term above 1, a candidate with a non-empty log, or a leader). It grants no vote
   * at any term in it, its current one included.
   */
  freshVoteDelayTicks?: number;
  /** Committed entries kept before older ones fold into the compaction marker. */
  maxLogEntries?: number;
  /**
   * With preVote: when a follower has heard nothing from its leader for electionTick ticks (the
   * earliest a timeout may fire), the lowest-id voter other than that leader asks for pre-votes
   * at once, and again every tick while it stays a PreCandidate, for up to electionTick ticks,
   * instead of waiting out its randomized timeout. One member named by a rule all compute alike
   * campaigns first, so a silent leader is replaced after about one election timeout rather than
   * the earlier of the others' random draws in [electionTick, 2 * electionTick), without more
   * split votes. A pre-vote changes no term and is refused by anyone still hearing the leader.
   * Not an etcd rule.
   */
  successorCampaign?: boolean;
  /**
   * A leader that hands over (MsgTimeoutNow) gives its own vote for the target's next term in
   * the same step, as if the target's MsgVote had already arrived: the leader only hands over to
   * a follower whose log matches its own, so that request would be granted. The leader becomes a
   * follower of the next term, writes the vote, and sends the grant after the write (as every
   * vote). In a three-member group the target then wins with its own vote and the leader's,
   * without waiting for the other follower's round trip and write. Not an etcd rule.
   */
  transferGrantsVote?: boolean;
}

export type CampaignType = 'CampaignPreElection' | 'CampaignElection' | 'CampaignTransfer';

export interface ProgressStatus {
  match: number;
  next: number;
  state: string;
  recentActive: boolean;
  isLearner: boolean;
}

/**
 * What a driver reads after every Ready (etcd's BasicStatus, trimmed): no progress, and the
 * ConfState is one frozen object shared until the configuration changes (status() copies).
 */
export interface BasicStatus {
  term: number;
  state: StateType;
  leadTransferee: string;
  confState: ConfState;
}

export interface Status {
  id: string;
  term: number;
  vote: string;
  commit: number;
  lead: string;
  state: StateType;
  lastIndex: number;
  lastTerm: number;
  electionElapsed: number;
  randomizedElectionTimeout: number;
  leadTransferee: string;
  /** This leader won with votes of followers that forgot a leader still in its lease. */
  leaseSkipped: boolean;
  /** Ticks since the node started (drives the restart vote delay). */
  ticksSinceStart: number;
  /**
   * Ticks left of the fresh-vote delay (a node that started with no state, in a group that ran
   * before it): it grants no vote and ignores MsgTimeoutNow until then. 0 when not in it.
   */
  freshVoteDelayTicksLeft: number;
  /** For a leader: each member's replication progress, in sorted id order. */
  progress: Record<string, ProgressStatus>;
  /** The configuration in force (applied). */
  confState: ConfState;
  /** The last entry whose configuration change (if any) is applied. */
  applied: number;
  /** On a leader: the index of the latest conf change it may have appended (pending while above applied). */
  pendingConfIndex: number;
}

export const DefaultMaxLogEntries = 64;

export function validateConfig(c: RaftConfig): void {
  const fail = (msg: string): never => {
    throw new RaftError('INVALID_CONFIG', msg);
  };
  if (typeof c.id !== 'string' || c.id === None) fail('id must be a non-empty string');
  const learners = c.learners ?? [];
  const all = [...c.voters, ...learners];
  // An empty configuration is a joining member's; learners without voters can never elect anyone.
  if (c.voters.length === 0 && learners.length > 0) fail('voters must name at least one member');
  if (new Set(all).size !== all.length) fail('voters and learners must be distinct and not repeat');
  if (all.some((id) => typeof id !== 'string' || id === None)) fail('member ids must be non-empty strings');
  if (!Number.isInteger(c.heartbeatTick) || c.heartbeatTick <= 0) fail('heartbeatTick must be a positive integer');
  if (!Number.isInteger(c.electionTick) || c.electionTick <= c.heartbeatTick) {
    fail(`electionTick (${c.electionTick}) must be an integer greater than heartbeatTick (${c.heartbeatTick})`);
  }
  for (const [name, v] of [
    ['restartVoteDelayTicks', c.restartVoteDelayTicks],
    ['freshVoteDelayTicks', c.freshVoteDelayTicks],
    ['maxLogEntries', c.maxLogEntries],
  ] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v < 0)) fail(`${name} must be a non-negative integer`);
  }
  const hs = c.restored?.hardState;
  // With a fixed configuration a vote for a stranger is corruption; once the configuration
  // lives in the log, the vote may be for a member removed since.
  if (hs && hs.vote !== None && c.restored?.confState === undefined && all.length > 0 && !all.includes(hs.vote)) {
    fail(`restored vote for ${hs.vote}, who is not a member`);
  }
  const cs = c.restored?.confState;
  if (cs) {
    try {
      restoreConfState(cs, 0);
    } catch (err) {
      fail(`restored configuration is invalid: ${(err as Error).message}`);
    }
  }
}

