import { Changer, restoreConfState, type TrackerState } from './confchange.js';
import { RaftLog } from './log.js';
import type { RandomSource } from './random.js';
import {
  becomeProbe,
  becomeReplicate,
  becomeSnapshot,
  canBumpCommit,
  isPaused,
  maybeDecrTo,
  maybeUpdate,
  newProgress,
  ProgressTracker,
  sentCommit,
  confStateOf,
  simpleConfig,
  type Progress,
} from './tracker.js';
import {
  CampaignTransferContext,
  LeaseSkippedContext,
  LocalMessageTypes,
  makeMessage,
  NoConfStateContext,
  None,
  RaftError,
  voteResponseType,
  confChangeEntersJoint,
  confChangeLeavesJoint,
  copyConfState,
  copyEntry,
  type ConfChangeV2,
  type ConfState,
  type DurableState,
  type Entry,
  type EntryId,
  type HardState,
  type Message,
  type MessageType,
  type SoftState,
  type StateType,
} from './types.js';

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
   * transfer skips it. Not an etcd rule (Raft thesis §6.4.1).
   */
  restartVoteDelayTicks?: number;
  /**
   * The same delay (no campaign either, and nothing skips it) for a member that started
   * without state, applied only when the first message it gets shows the group ran before it
   * started (a term above 1, a candidate with a non-empty log, or a leader).
   */
  freshVoteDelayTicks?: number;
  /** Committed entries kept before older ones fold into the compaction marker. */
  maxLogEntries?: number;
}

export type CampaignType = 'CampaignPreElection' | 'CampaignElection' | 'CampaignTransfer';

export interface ProgressStatus {
  match: number;
  next: number;
  state: string;
  recentActive: boolean;
  isLearner: boolean;
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
  /** For a leader: each member's replication progress, in sorted id order. */
  progress: Record<string, ProgressStatus>;
  /** The configuration in force (applied). */
  confState: ConfState;
  /** The last entry whose configuration change (if any) is applied. */
  applied: number;
}

const DefaultMaxLogEntries = 64;

function validateConfig(c: RaftConfig): void {
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

/** The election state machine (etcd's `raft` struct). Drive it through RawNode. */
export class Raft {
  readonly id: string;
  term = 0;
  vote = None;
  lead = None;
  state: StateType = 'Follower';
  readonly log: RaftLog;
  readonly trk: ProgressTracker;

  /** Messages to send now. */
  msgs: Message[] = [];
  /** Messages to send only once the current unstable state is persisted. */
  msgsAfterAppend: Message[] = [];

  private readonly electionTimeout: number;
  private readonly heartbeatTimeout: number;
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  private readonly random: RandomSource;
  private readonly maxLogEntries: number;

  electionElapsed = 0;
  private heartbeatElapsed = 0;
  randomizedElectionTimeout = 0;
  leadTransferee = None;

  private readonly restarted: boolean;
  private readonly restartVoteDelayTicks: number;
  private readonly freshVoteDelayTicks: number;
  private groupRanSeen: boolean;
  /** The first peer message settles whether the group ran before this member started. */
  private groupRanDecided: boolean;
  ticksSinceStart = 0;

  /** Ticks for which this follower's granted votes must carry LeaseSkipped. */
  private leaseSkipTicksLeft = 0;
  /** Collected from granted votes while a candidate; kept by the leader it becomes. */
  private leaseSkippedVotes = false;
  leaseSkipped = false;

  private heartbeatSeq = 0;

  /** The last entry handed to the driver as committed and applied (etcd's raftLog.applied). */
  applied = 0;
  /**
   * On a leader: the index of the latest conf change it may have appended; a new one is
   * refused until that index is applied (etcd: one change at a time).
   */
  pendingConfIndex = 0;
  /** The membership at the log's compaction marker, persisted and sent with MsgSnap. */
  markerConfState: ConfState;
  /** Configurations applied after the marker, by entry index, to know the marker's one after compaction. */
  private confHistory: { index: number; confState: ConfState }[] = [];
  /** Indexes of conf-change entries handed out in a Ready and not yet applied, in order. */
  private confIndexesToApply: number[] = [];

  constructor(config: RaftConfig) {
    validateConfig(config);
    this.id = config.id;
    this.electionTimeout = config.electionTick;
    this.heartbeatTimeout = config.heartbeatTick;
    this.preVote = config.preVote;
    this.checkQuorum = config.checkQuorum;
    this.random = config.random;
    this.maxLogEntries = config.maxLogEntries ?? DefaultMaxLogEntries;
    this.log = new RaftLog(config.restored);
    this.trk = new ProgressTracker(config.voters, config.learners ?? []);
    const restoredCs = config.restored?.confState;
    if (restoredCs) this.setTracker(restoreConfState(restoredCs, this.log.lastIndex()));
    this.markerConfState = copyConfState(restoredCs ?? confStateOf(simpleConfig(config.voters, config.learners ?? [])));
    this.applied = this.log.snapshot().index;
    // Committed changes after the marker were applied before the stop (or are committed and
    // due): the core re-applies them itself, so no moment runs on a stale configuration.
    for (let i = this.applied + 1; i <= this.log.committed; i++) {
      const cc = this.log.entry(i)?.confChange;
      if (cc) this.applyConfChangeAt(cc, i);
    }
    this.applied = this.log.committed;
    const hs = config.restored?.hardState;
    this.restarted = hs !== undefined && hs.term > 0;
    this.restartVoteDelayTicks = config.restartVoteDelayTicks ?? 0;
    this.freshVoteDelayTicks = config.freshVoteDelayTicks ?? 0;
    this.groupRanSeen = this.restarted;
    this.groupRanDecided = this.restarted;
    if (hs) {
      this.term = hs.term;
      this.vote = hs.vote;
    }
    // Restart: follower at the persisted term, no leader; the vote survives because the term is unchanged.
    this.becomeFollower(this.term, None);
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  softState(): SoftState {
    return { lead: this.lead, state: this.state };
  }

  /**
   * etcd's promotable(): a voter (of either half) with no received compaction marker still
   * to persist. A learner or a node outside the configuration never campaigns.
   */
  promotable(): boolean {
    const pr = this.trk.progress.get(this.id);
    return pr !== undefined && !pr.isLearner && this.trk.isVoter(this.id) && this.log.pendingSnapshotId() === undefined;
  }

  /** Committed conf changes not yet applied: campaigning on a stale configuration is unsafe. */
  hasUnappliedConfChanges(): boolean {
    for (let i = this.applied + 1; i <= this.log.committed; i++) {
      if (this.log.entry(i)?.confChange) return true;
    }
    return false;
  }

  // ---- configuration ----

  private setTracker(t: TrackerState): void {
    this.trk.config = t.config;
    this.trk.progress = new Map(t.progress);
  }

  /** Applies a committed conf change (etcd's applyConfChange); returns the new membership. */
  applyConfChange(cc: ConfChangeV2): ConfState {
    // Normally the next entry handed out in a Ready; a direct call (tests) counts as the log's end.
    const queued = this.confIndexesToApply.shift();
    // A snapshot restored between ready() and this call already holds the change.
    if (queued !== undefined && queued <= this.applied) return this.trk.confState();
    return this.applyConfChangeAt(cc, queued ?? this.log.lastIndex());
  }

  private applyConfChangeAt(cc: ConfChangeV2, index: number): ConfState {
    const changer = new Changer(this.trk, this.log.lastIndex());
    let next: TrackerState;
    if (confChangeLeavesJoint(cc)) next = changer.leaveJoint();
    else {
      const { joint, autoLeave } = confChangeEntersJoint(cc);
      next = joint ? changer.enterJoint(autoLeave, cc.changes) : changer.simple(cc.changes);
    }
    const cs = this.switchToConfig(next);
    this.confHistory.push({ index, confState: cs });
    return copyConfState(cs);
  }

  /** etcd's switchToConfig, with stepDownOnRemoval: a removed or demoted leader steps down. */
  private switchToConfig(t: TrackerState): ConfState {
    this.setTracker(t);
    const cs = this.trk.confState();
    const pr = this.trk.progress.get(this.id);
    if ((!pr || pr.isLearner) && this.state === 'Leader') {
      // The member-side policy (transfer leadership before removing oneself) is the driver's:
      // this is the safety net when a leader applies its own removal.
      this.becomeFollower(this.term, None);
      return cs;
    }
    if (this.state !== 'Leader' || cs.voters.length === 0) return cs;
    // The quorum may have shrunk: entries may commit now, and new members need appends.
    if (this.maybeCommit()) this.bcastAppend();
    else for (const id of this.trk.ids()) if (id !== this.id) this.sendAppend(id, false);
    if (this.leadTransferee !== None && !this.trk.isVoter(this.leadTransferee)) this.abortLeaderTransfer();
    return cs;
  }

  /** The membership at `index`, for a compaction marker at that index. */
  private confStateAt(index: number): ConfState {
    let cs = this.markerConfState;
    for (const h of this.confHistory) if (h.index <= index) cs = h.confState;
    return cs;
  }

  /** Called on advance with the last committed entry the driver was handed (etcd's appliedTo). */
  appliedTo(index: number): void {
    if (index <= this.applied) return;
    this.applied = index;
    this.confIndexesToApply = [];
    if (this.trk.config.autoLeave && index >= this.pendingConfIndex && this.state === 'Leader') {
      // Leave the joint configuration with an empty change. A transfer in progress drops the
      // proposal; the next applied entry retries, or the next leader leaves it.
      try {
        this.step(makeMessage({ type: 'MsgProp', from: this.id, entries: [{ index: 0, term: 0, confChange: { transition: 'Auto', changes: [] } }] }));
      } catch (err) {
        if (!(err instanceof RaftError) || err.code !== 'PROPOSAL_DROPPED') throw err;
      }
    }
  }

  /** Entries committed and not yet handed out; notes their conf changes for applyConfChange. */
  takeCommittedEntries(): Entry[] {
    const out: Entry[] = [];
    for (let i = this.applied + 1; i <= this.log.committed; i++) {
      const e = this.log.entry(i);
      if (!e) continue;
      out.push(copyEntry(e));
      if (e.confChange) this.confIndexesToApply.push(i);
    }
    return out;
  }

  // ---- time ----

  tick(): void {
    this.ticksSinceStart++;
    if (this.leaseSkipTicksLeft > 0) this.leaseSkipTicksLeft--;
    if (this.state === 'Leader') this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    // Held, not reset, during a start-up vote delay: the member campaigns on the first tick after it.
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout && !this.inStartupVoteDelay()) {
      this.electionElapsed = 0;
      this.step(makeMessage({ type: 'MsgHup', from: this.id }));
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum) this.step(makeMessage({ type: 'MsgCheckQuorum', from: this.id }));
      // A transfer that did not finish within one election timeout is abandoned.
      if (this.state === 'Leader' && this.leadTransferee !== None) this.abortLeaderTransfer();
    }
    if (this.state !== 'Leader') return;
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.step(makeMessage({ type: 'MsgBeat', from: this.id }));
    }
  }

  // ---- state changes ----

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = None;
    }
    this.lead = None;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.electionTimeout + this.random.nextInt(this.electionTimeout);
    this.abortLeaderTransfer();
    this.trk.resetVotes();
    this.leaseSkippedVotes = false;
    this.leaseSkipped = false;
    const last = this.log.lastIndex();
    for (const [id, pr] of this.trk.progress) {
      const fresh = newProgress(id === this.id ? last : 0, last + 1, pr.isLearner);
      Object.assign(pr, fresh);
    }
  }

  becomeFollower(term: number, lead: string): void {
    this.reset(term);
    this.lead = lead;
    this.state = 'Follower';
  }

  becomePreCandidate(): void {
    if (this.state === 'Leader') throw new RaftError('INVALID_STATE', 'leader cannot become pre-candidate');
    // Term, vote and the election clock stay; only the leader and the tally clear.
    this.trk.resetVotes();
    this.leaseSkippedVotes = false;
    this.lead = None;
    this.state = 'PreCandidate';
  }

  becomeCandidate(): void {
    if (this.state === 'Leader') throw new RaftError('INVALID_STATE', 'leader cannot become candidate');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.state = 'Candidate';
  }

  becomeLeader(): void {
    if (this.state === 'Follower') throw new RaftError('INVALID_STATE', 'follower cannot become leader');
    const leaseSkippedVotes = this.leaseSkippedVotes;
    this.reset(this.term);
    this.leaseSkipped = leaseSkippedVotes;
    this.lead = this.id;
    this.state = 'Leader';
    const self = this.trk.progress.get(this.id)!;
    becomeReplicate(self);
    self.recentActive = true;
    // There may be an unapplied conf change in the log: refuse new ones until all is applied.
    this.pendingConfIndex = this.log.lastIndex();
    // Entries of earlier terms commit only once an entry of this term reaches a quorum.
    this.appendEntry({ index: this.log.lastIndex() + 1, term: this.term });
  }

  /** The leader's side of MsgProp: no entries means one empty entry (the elector's only payload). */
  private propose(m: Message): void {
    if (!this.trk.progress.has(this.id)) throw new RaftError('PROPOSAL_DROPPED', 'this leader was removed from the configuration');
    if (this.leadTransferee !== None) throw new RaftError('PROPOSAL_DROPPED', 'leadership transfer in progress');
    const proposed = m.entries.length > 0 ? m.entries : [{ index: 0, term: 0 }];
    // Refuse the whole proposal before appending anything (etcd would blank the entry instead).
    let pending = this.pendingConfIndex;
    proposed.forEach((e, i) => {
      if (!e.confChange) return;
      const refusal = this.confChangeRefusal(e.confChange, pending);
      if (refusal) throw new RaftError('PROPOSAL_DROPPED', refusal);
      pending = this.log.lastIndex() + i + 1;
    });
    let index = this.log.lastIndex();
    const entries = proposed.map((e) => {
      index++;
      return e.confChange ? { index, term: this.term, confChange: e.confChange } : { index, term: this.term };
    });
    this.pendingConfIndex = pending;
    this.appendEntries(entries);
    this.bcastAppend();
  }

  /** etcd's checks on a proposed conf change: one at a time, and joint only left by the empty change. */
  private confChangeRefusal(cc: ConfChangeV2, pending: number): string | undefined {
    const alreadyJoint = this.trk.isJoint();
    const wantsLeaveJoint = confChangeLeavesJoint(cc);
    if (pending > this.applied) return `possible unapplied conf change at index ${pending} (applied to ${this.applied})`;
    if (alreadyJoint && !wantsLeaveJoint) return 'must transition out of joint config first';
    if (!alreadyJoint && wantsLeaveJoint) return 'not in joint state; refusing empty conf change';
    return undefined;
  }

  private appendEntries(entries: Entry[]): void {
    const last = this.log.append(entries);
    this.send(makeMessage({ type: 'MsgAppResp', to: this.id, index: last }));
  }

  private appendEntry(entry: Entry): void {
    const last = this.log.append([entry]);
    // The leader counts its own copy only once it is persisted: an append response to itself.
    this.send(makeMessage({ type: 'MsgAppResp', to: this.id, index: last }));
  }

  // ---- campaigning ----

  private hup(t: CampaignType): void {
    if (this.state === 'Leader') return;
    if (!this.promotable()) return;
    // Campaigning is a vote for itself: the start-up delay that refuses others' (pre-)votes
    // refuses its own too, or an ack its old incarnation gave would not hold. A transfer may skip
    // the restart delay (the leader gave its lease up), as for votes; nothing skips the fresh one.
    if (this.inFreshVoteDelay() || (t !== 'CampaignTransfer' && this.inRestartVoteDelay())) return;
    if (this.hasUnappliedConfChanges()) return;
    this.campaign(t);
  }

  campaign(t: CampaignType): void {
    if (!this.promotable()) return;
    let term: number;
    let voteMsg: MessageType;
    if (t === 'CampaignPreElection') {
      this.becomePreCandidate();
      voteMsg = 'MsgPreVote';
      // A pre-vote asks for the next term without taking it.
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteMsg = 'MsgVote';
      term = this.term;
    }
    const last = this.log.lastEntryId();
    for (const id of this.trk.voters) {
      if (id === this.id) {
        // Our own vote counts once the state it depends on is persisted. A candidate that itself
        // forgot a leader still in its lease marks its own vote too: otherwise votes from members
        // that were out of that lease could elect it with no wait.
        const context = this.leaseSkipTicksLeft > 0 ? LeaseSkippedContext : '';
        this.send(makeMessage({ type: voteResponseType(voteMsg), to: id, term, context }));
        continue;
      }
      this.send(
        makeMessage({
          type: voteMsg,
          to: id,
          term,
          index: last.index,
          logTerm: last.term,
          context: t === 'CampaignTransfer' ? CampaignTransferContext : '',
        }),
      );
    }
  }

  private poll(from: string, granted: boolean, context: string): ReturnType<ProgressTracker['tallyVotes']> {
    if (granted && context === LeaseSkippedContext && this.state === 'Candidate' && this.trk.isVoter(from)) {
      this.leaseSkippedVotes = true;
    }
    this.trk.recordVote(from, granted);
    return this.trk.tallyVotes();
  }

  // ---- messages ----

  send(m: Message): void {
    if (m.from === None) m.from = this.id;
    if (m.type === 'MsgVote' || m.type === 'MsgVoteResp' || m.type === 'MsgPreVote' || m.type === 'MsgPreVoteResp') {
      if (m.term === 0) throw new RaftError('INVALID_STATE', `${m.type} must carry a term`);
    } else {
      if (m.term !== 0) throw new RaftError('INVALID_STATE', `${m.type} must not set its term (${m.term})`);
      if (m.type !== 'MsgProp') m.term = this.term;
    }
    if (m.type === 'MsgAppResp' || m.type === 'MsgVoteResp' || m.type === 'MsgPreVoteResp') {
      // Durability: these answers promise state that must reach disk first.
      this.msgsAfterAppend.push(m);
    } else {
      if (m.to === this.id) throw new RaftError('INVALID_STATE', `${m.type} addressed to self`);
      this.msgs.push(m);
    }
  }

  /** The restart delay protects a lease; a transfer (the leader gave its lease up) may skip it. */
  private inRestartVoteDelay(): boolean {
    return this.restarted && this.ticksSinceStart < this.restartVoteDelayTicks;
  }

  private inStartupVoteDelay(): boolean {
    return this.inRestartVoteDelay() || this.inFreshVoteDelay();
  }

  /** The fresh delay guards against a second vote in a term after disk loss: nothing skips it. */
  private inFreshVoteDelay(): boolean {
    return !this.restarted && this.groupRanSeen && this.ticksSinceStart < this.freshVoteDelayTicks;
  }

  /**
   * Judged on the first peer message only: history this member then watches being made
   * (a brand-new group electing its first leader) is no reason to distrust its own empty disk.
   */
  private noteGroupRan(m: Message): void {
    // Our own vote, stepped on advance, says nothing about whether the group ran before us.
    if (this.groupRanDecided || m.from === this.id) return;
    this.groupRanDecided = true;
    const fromLeader = m.type === 'MsgApp' || m.type === 'MsgHeartbeat' || m.type === 'MsgSnap';
    const voteWithHistory = (m.type === 'MsgVote' || m.type === 'MsgPreVote') && m.logTerm > 0;
    this.groupRanSeen = m.term > 1 || fromLeader || voteWithHistory;
  }

  step(m: Message): void {
    if (m.term !== 0) this.noteGroupRan(m);
    let transferSkipTicks = 0;
    if (m.term === 0) {
      // Local message: no term checks.
    } else if (m.term > this.term) {
      if (m.type === 'MsgVote' || m.type === 'MsgPreVote') {
        const force = m.context === CampaignTransferContext;
        const inLease = this.checkQuorum && this.lead !== None && this.electionElapsed < this.electionTimeout;
        // Within the lease (or a startup vote delay) a request is dropped: no answer, no term change.
        if (!force && (inLease || this.inRestartVoteDelay())) return;
        if (this.inFreshVoteDelay()) return;
        // The transfer's own candidate is trusted (its leader gave the lease up); any other vote
        // granted in the rest of this lease is marked: the "transfer" may have been forged.
        if (force && inLease && this.state === 'Follower' && m.type === 'MsgVote') transferSkipTicks = this.electionTimeout - this.electionElapsed;
      }
      if (m.type === 'MsgPreVote') {
        // A pre-vote never changes the voter's term.
      } else if (m.type === 'MsgPreVoteResp' && !m.reject) {
        // A granted pre-vote echoes the future term; we take it only when we win.
      } else if (m.type === 'MsgApp' || m.type === 'MsgHeartbeat' || m.type === 'MsgSnap') {
        this.noteLeaderSwitch(m.from);
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, None);
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === 'MsgHeartbeat' || m.type === 'MsgApp')) {
        // Tell a stale leader the current term, so a partitioned leader steps down
        // instead of pushing a disruptive candidate to raise terms forever.
        this.send(makeMessage({ type: 'MsgAppResp', to: m.from }));
      } else if (m.type === 'MsgPreVote') {
        this.send(makeMessage({ type: 'MsgPreVoteResp', to: m.from, term: this.term, reject: true }));
      }
      return;
    }

    switch (m.type) {
      case 'MsgHup':
        this.hup(this.preVote ? 'CampaignPreElection' : 'CampaignElection');
        return;
      case 'MsgVote':
      case 'MsgPreVote': {
        const canVote =
          this.vote === m.from ||
          (this.vote === None && this.lead === None) ||
          (m.type === 'MsgPreVote' && m.term > this.term);
        if (canVote && this.log.isUpToDate({ index: m.index, term: m.logTerm })) {
          // Granted: answer with the request's term so the candidate counts it.
          const context = this.leaseSkipTicksLeft > 0 ? LeaseSkippedContext : '';
          this.send(makeMessage({ type: voteResponseType(m.type), to: m.from, term: m.term, context }));
          if (m.type === 'MsgVote') {
            this.electionElapsed = 0;
            this.vote = m.from;
            this.leaseSkipTicksLeft = Math.max(this.leaseSkipTicksLeft, transferSkipTicks);
          }
        } else {
          this.send(makeMessage({ type: voteResponseType(m.type), to: m.from, term: this.term, reject: true }));
        }
        return;
      }
      default:
        if (this.state === 'Leader') this.stepLeader(m);
        else if (this.state === 'Follower') this.stepFollower(m);
        else this.stepCandidate(m);
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case 'MsgBeat':
        this.bcastHeartbeat();
        return;
      case 'MsgCheckQuorum':
        if (!this.trk.quorumActive()) this.becomeFollower(this.term, None);
        for (const [id, pr] of this.trk.progress) if (id !== this.id) pr.recentActive = false;
        return;
      case 'MsgProp':
        this.propose(m);
        return;
      case 'MsgForgetLeader':
        return;
      default:
        break;
    }
    const pr = this.trk.progress.get(m.from);
    if (!pr) return;
    switch (m.type) {
      case 'MsgAppResp':
        pr.recentActive = true;
        if (m.reject && m.context === NoConfStateContext) {
          this.sendConfSnapshot(m.from, pr);
          return;
        }
        if (m.reject) {
          let nextProbeIdx = m.rejectHint;
          if (m.logTerm > 0) nextProbeIdx = this.log.findConflictByTerm(m.rejectHint, m.logTerm).index;
          if (maybeDecrTo(pr, m.index, nextProbeIdx)) {
            if (pr.state === 'Replicate') becomeProbe(pr);
            this.sendAppend(m.from);
          }
          return;
        }
        // An ack that repeats the match still moves a probing peer back to Replicate
        // (etcd: MaybeUpdate || Match == Index && StateProbe), e.g. after reportUnreachable.
        if (maybeUpdate(pr, m.index) || (pr.match === m.index && pr.state === 'Probe')) {
          if (pr.state === 'Probe') becomeReplicate(pr);
          else if (pr.state === 'Snapshot' && pr.match + 1 >= this.log.firstIndex()) {
            becomeProbe(pr);
            becomeReplicate(pr);
          }
          if (this.maybeCommit()) this.bcastAppend();
          else if (m.from !== this.id) {
            // The peer may lack our commit index: tell it now rather than at the next heartbeat.
            if (canBumpCommit(pr, this.log.committed)) this.sendAppend(m.from);
            // Then whatever entries it still lacks, without empty appends (etcd maybeSendAppend(to, false)).
            else this.sendAppend(m.from, false);
          }
          if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
            this.sendTimeoutNow(m.from);
          }
        }
        return;
      case 'MsgHeartbeatResp':
        pr.recentActive = true;
        pr.probeSent = false;
        if (pr.match < this.log.lastIndex() || pr.state === 'Probe') this.sendAppend(m.from);
        return;
      case 'MsgUnreachable':
        if (pr.state === 'Replicate') becomeProbe(pr);
        return;
      case 'MsgTransferLeader': {
        if (pr.isLearner) return;
        const transferee = m.from;
        if (this.leadTransferee !== None) {
          // A repeat for the same target keeps the running timer.
          if (this.leadTransferee === transferee) return;
          this.abortLeaderTransfer();
        }
        if (transferee === this.id) return;
        this.electionElapsed = 0;
        this.leadTransferee = transferee;
        if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(transferee);
        else this.sendAppend(transferee);
        return;
      }
      default:
        return;
    }
  }

  private stepCandidate(m: Message): void {
    const myVoteResp: MessageType = this.state === 'PreCandidate' ? 'MsgPreVoteResp' : 'MsgVoteResp';
    switch (m.type) {
      case 'MsgProp':
        throw new RaftError('PROPOSAL_DROPPED', 'no leader');
      case 'MsgApp':
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return;
      case 'MsgHeartbeat':
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case 'MsgSnap':
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      default:
        if (m.type !== myVoteResp) return;
    }
    const { result } = this.poll(m.from, !m.reject, m.context);
    if (result === 'VoteWon') {
      if (this.state === 'PreCandidate') {
        this.campaign('CampaignElection');
      } else {
        this.becomeLeader();
        this.bcastAppend();
      }
    } else if (result === 'VoteLost') {
      // Back to follower in the same term; a higher term was already adopted in step().
      this.becomeFollower(this.term, None);
    }
  }

  /**
   * Following another leader while the current one's lease runs skips that lease, as forgetting it
   * does: mark the votes granted until it would have run out. Otherwise a forged leader could make
   * followers grant a transfer vote, which skips the lease, while the real leader still claims.
   */
  private noteLeaderSwitch(next: string): void {
    if (this.state !== 'Follower' || !this.checkQuorum || this.lead === None || this.lead === next) return;
    if (this.electionElapsed < this.electionTimeout) {
      this.leaseSkipTicksLeft = Math.max(this.leaseSkipTicksLeft, this.electionTimeout - this.electionElapsed);
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'MsgProp':
        if (this.lead === None) throw new RaftError('PROPOSAL_DROPPED', 'no leader');
        m.to = this.lead;
        this.send(m);
        return;
      case 'MsgApp':
        this.noteLeaderSwitch(m.from);
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case 'MsgHeartbeat':
        this.noteLeaderSwitch(m.from);
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case 'MsgSnap':
        this.noteLeaderSwitch(m.from);
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case 'MsgTransferLeader':
        if (this.lead === None) return;
        m.to = this.lead;
        m.term = 0;
        this.send(m);
        return;
      case 'MsgForgetLeader':
        if (this.lead === None) return;
        // Forgetting a leader we still honoured skips its lease: say so in the votes we grant
        // until that lease would have run out anyway.
        if (this.checkQuorum && this.electionElapsed < this.electionTimeout) {
          this.leaseSkipTicksLeft = this.electionTimeout - this.electionElapsed;
        }
        this.lead = None;
        return;
      case 'MsgTimeoutNow':
        // A transfer campaign's votes skip the voters' lease: only the leader that gave its lease up may start one.
        if (m.from !== this.lead) return;
        this.hup('CampaignTransfer');
        return;
      default:
        return;
    }
  }

  /** Never configured: no voters, no learners, not even itself (a joining member). */
  private unconfigured(): boolean {
    return this.trk.progress.size === 0;
  }

  private handleAppendEntries(m: Message): void {
    if (this.unconfigured()) {
      // Conf changes in the log are relative to a configuration we do not know: ask for it.
      this.send(makeMessage({ type: 'MsgAppResp', to: m.from, index: m.index, reject: true, context: NoConfStateContext }));
      return;
    }
    if (m.index < this.log.committed) {
      this.send(makeMessage({ type: 'MsgAppResp', to: m.from, index: this.log.committed }));
      return;
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      this.send(makeMessage({ type: 'MsgAppResp', to: m.from, index: lastNew }));
      return;
    }
    const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    this.send(
      makeMessage({
        type: 'MsgAppResp',
        to: m.from,
        index: m.index,
        reject: true,
        rejectHint: hint.index,
        logTerm: hint.term,
      }),
    );
  }

  private handleHeartbeat(m: Message): void {
    // The leader sends min(its commit, our match), so this never passes our log.
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.send(makeMessage({ type: 'MsgHeartbeatResp', to: m.from, context: m.context }));
  }

  private handleSnapshot(m: Message): void {
    const s = m.snapshot;
    if (!s) return;
    if (this.unconfigured() && m.confState) {
      // A joining member takes the leader's marker and its configuration as its base, even one
      // that does not list it yet: the entries after the marker add it.
      this.restoreSnapshot(m.from, s, m.confState);
      return;
    }
    if (s.index <= this.log.committed) {
      this.send(makeMessage({ type: 'MsgAppResp', to: m.from, index: this.log.committed }));
      return;
    }
    if (this.log.matchTerm(s.index, s.term)) {
      // Our log already holds the marker's entry: fast-forward the commit, but vouch
      // only for what is committed, not for a tail the leader may not share (etcd's restore() == false).
      this.log.commitTo(s.index);
      this.send(makeMessage({ type: 'MsgAppResp', to: m.from, index: this.log.committed }));
      return;
    }
    const cs = m.confState;
    if (cs && ![...cs.voters, ...cs.votersOutgoing, ...cs.learners].includes(this.id)) {
      // etcd's defence in depth: a snapshot whose configuration lacks us is not ours to restore.
      this.send(makeMessage({ type: 'MsgAppResp', to: m.from, index: this.log.committed }));
      return;
    }
    this.restoreSnapshot(m.from, s, cs);
  }

  private restoreSnapshot(from: string, s: EntryId, cs: ConfState | undefined): void {
    this.log.restore(s);
    if (cs) {
      // A snapshot from an older peer carries no configuration: ours stays.
      this.switchToConfig(restoreConfState(cs, this.log.lastIndex()));
      this.markerConfState = copyConfState(cs);
    } else {
      this.markerConfState = this.trk.confState();
    }
    this.confHistory = [];
    this.applied = s.index;
    this.send(makeMessage({ type: 'MsgAppResp', to: from, index: this.log.lastIndex() }));
  }

  // ---- leader helpers ----

  private maybeCommit(): boolean {
    return this.log.maybeCommit(this.trk.committedIndex(), this.term);
  }

  private sendAppend(to: string, sendIfEmpty = true): boolean {
    const pr = this.trk.progress.get(to);
    if (!pr || to === this.id || isPaused(pr)) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined) return this.sendSnapshot(to, pr);
    const entries = pr.next <= this.log.lastIndex() ? this.log.entriesFrom(pr.next) : [];
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send(
      makeMessage({ type: 'MsgApp', to, index: prevIndex, logTerm: prevTerm, entries, commit: this.log.committed }),
    );
    if (pr.state === 'Replicate' && entries.length > 0) pr.next = entries[entries.length - 1]!.index + 1;
    else if (pr.state === 'Probe') pr.probeSent = true;
    sentCommit(pr, this.log.committed);
    return true;
  }

  private sendSnapshot(to: string, pr: Progress): boolean {
    if (!pr.recentActive) return false;
    const snapshot = this.log.snapshot();
    this.send(
      makeMessage({
        type: 'MsgSnap',
        to,
        snapshot: { index: snapshot.index, term: snapshot.term },
        confState: copyConfState(this.markerConfState),
      }),
    );
    becomeSnapshot(pr, snapshot.index);
    return true;
  }

  /** A joining member asked for a base configuration: send the marker and its ConfState. */
  private sendConfSnapshot(to: string, pr: Progress): void {
    const snapshot = this.log.snapshot();
    this.send(
      makeMessage({
        type: 'MsgSnap',
        to,
        snapshot: { index: snapshot.index, term: snapshot.term },
        confState: copyConfState(this.markerConfState),
      }),
    );
    // A marker at 0 is the initial configuration: the answer (index 0) moves the peer to
    // Replicate from Probe, so there is no snapshot to wait for.
    if (snapshot.index > pr.match) becomeSnapshot(pr, snapshot.index);
    else pr.probeSent = false;
  }

  bcastAppend(): void {
    for (const id of this.trk.ids()) if (id !== this.id) this.sendAppend(id);
  }

  private bcastHeartbeat(): void {
    // The sequence lets the driver match acknowledgements to send times for the lease.
    this.heartbeatSeq++;
    const context = String(this.heartbeatSeq);
    for (const id of this.trk.ids()) {
      if (id === this.id) continue;
      const pr = this.trk.progress.get(id)!;
      const commit = Math.min(pr.match, this.log.committed);
      this.send(makeMessage({ type: 'MsgHeartbeat', to: id, commit, context }));
      sentCommit(pr, commit);
    }
  }

  private sendTimeoutNow(to: string): void {
    this.send(makeMessage({ type: 'MsgTimeoutNow', to }));
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = None;
  }

  /** Called by RawNode once a Ready's state is on disk. */
  compactLog(): void {
    // Only applied entries fold away, so the marker's configuration is known.
    const marker = this.log.compact(this.maxLogEntries, this.applied);
    if (!marker) return;
    this.markerConfState = this.confStateAt(marker.index);
    this.confHistory = this.confHistory.filter((h) => h.index > marker.index);
  }

  isLocalMessage(type: MessageType): boolean {
    return LocalMessageTypes.has(type);
  }

  status(): Status {
    const progress: Record<string, ProgressStatus> = {};
    if (this.state === 'Leader') {
      for (const id of this.trk.ids()) {
        const pr = this.trk.progress.get(id)!;
        progress[id] = {
          match: pr.match,
          next: pr.next,
          state: pr.state,
          recentActive: pr.recentActive,
          isLearner: pr.isLearner,
        };
      }
    }
    return {
      id: this.id,
      term: this.term,
      vote: this.vote,
      commit: this.log.committed,
      lead: this.lead,
      state: this.state,
      lastIndex: this.log.lastIndex(),
      lastTerm: this.log.lastTerm(),
      electionElapsed: this.electionElapsed,
      randomizedElectionTimeout: this.randomizedElectionTimeout,
      leadTransferee: this.leadTransferee,
      leaseSkipped: this.leaseSkipped,
      ticksSinceStart: this.ticksSinceStart,
      progress,
      confState: this.trk.confState(),
      applied: this.applied,
    };
  }
}
