import { Changer, restoreConfState, type TrackerState } from './confchange.js';
import { RaftLog } from './log.js';
import type { RandomSource } from './random.js';
import {
  becomeReplicate,
  becomeSnapshot,
  isPaused,
  newProgress,
  ProgressTracker,
  sentCommit,
  confStateOf,
  simpleConfig,
  type Progress,
  type TrackerConfig,
} from './tracker.js';
import {
  LocalMessageTypes,
  makeMessage,
  None,
  RaftError,
  confChangeEntersJoint,
  confChangeLeavesJoint,
  copyConfState,
  copyEntry,
  type ConfChangeV2,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type MessageType,
  type SoftState,
  type StateType,
} from './types.js';
import { DefaultMaxLogEntries, validateConfig, type BasicStatus, type ProgressStatus, type RaftConfig, type Status } from './config.js';

/**
 * The election state machine's state, configuration and replication helpers (etcd's `raft`
 * struct). The message handling per role lives in raft.ts, which extends it.
 */
export abstract class RaftBase {
  readonly id: string;
  term = 0;
  vote = None;
  lead = None;
  state: StateType = 'Follower';
  readonly log: RaftLog;
  readonly trk: ProgressTracker;
  /** basicStatus()'s ConfState, rebuilt only when the tracker's configuration object changes. */
  private sharedConfState: { of: TrackerConfig; cs: ConfState } | null = null;

  /** Messages to send now. */
  msgs: Message[] = [];
  /** Messages to send only once the current unstable state is persisted. */
  msgsAfterAppend: Message[] = [];

  protected readonly electionTimeout: number;
  protected readonly heartbeatTimeout: number;
  protected readonly preVote: boolean;
  protected readonly checkQuorum: boolean;
  protected readonly random: RandomSource;
  protected readonly maxLogEntries: number;

  electionElapsed = 0;
  protected heartbeatElapsed = 0;
  randomizedElectionTimeout = 0;
  leadTransferee = None;

  protected readonly restarted: boolean;
  protected readonly restartVoteDelayTicks: number;
  protected readonly freshVoteDelayTicks: number;
  protected readonly successorCampaign: boolean;
  /** RaftConfig.transferGrantsVote; the driver may turn it off for a while (RawNode.setTransferGrantsVote). */
  transferGrantsVote: boolean;
  /** Ticks this PreCandidate, campaigning as a silent leader's successor, still retries its pre-vote. */
  protected successorRetryTicksLeft = 0;
  protected groupRanSeen: boolean;
  /** The first peer message settles whether the group ran before this member started. */
  protected groupRanDecided: boolean;
  ticksSinceStart = 0;

  /** Ticks for which this follower's granted votes must carry LeaseSkipped. */
  protected leaseSkipTicksLeft = 0;
  /** Collected from granted votes while a candidate; kept by the leader it becomes. */
  protected leaseSkippedVotes = false;
  leaseSkipped = false;

  protected heartbeatSeq = 0;

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
  protected confHistory: { index: number; confState: ConfState }[] = [];
  /** Indexes of conf-change entries handed out in a Ready and not yet applied, in order. */
  protected confIndexesToApply: number[] = [];

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
    this.successorCampaign = (config.successorCampaign ?? false) && config.preVote;
    this.transferGrantsVote = config.transferGrantsVote ?? false;
    this.groupRanSeen = this.restarted;
    this.groupRanDecided = this.restarted;
    if (hs) {
      this.term = hs.term;
      this.vote = hs.vote;
    }
    // Restart: follower at the persisted term, no leader; the vote survives because the term is unchanged.
    this.becomeFollower(this.term, None);
    // The old incarnation may have acked another leader whose lease still runs, and the
    // in-memory marks are gone: a transfer vote granted (or cast for itself) inside the
    // restart delay skips that lease, so it is marked as after a ForgetLeader.
    if (this.restarted) this.leaseSkipTicksLeft = this.restartVoteDelayTicks;
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

  protected setTracker(t: TrackerState): void {
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

  protected applyConfChangeAt(cc: ConfChangeV2, index: number): ConfState {
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
  protected switchToConfig(t: TrackerState): ConfState {
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
  protected confStateAt(index: number): ConfState {
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

  protected tickElection(): void {
    this.electionElapsed++;
    // Held, not reset, during a start-up vote delay: the member campaigns on the first tick after it.
    if (!this.promotable() || this.inStartupVoteDelay()) return;
    if (this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.successorRetryTicksLeft = 0;
      this.step(makeMessage({ type: 'MsgHup', from: this.id }));
    } else if (this.campaignsAsSuccessor()) {
      // The election clock runs on: the randomized timeout still bounds these retries.
      this.step(makeMessage({ type: 'MsgHup', from: this.id }));
    }
  }

  /** RaftConfig.successorCampaign: is this the tick for the successor of a silent leader to ask for pre-votes? */
  private campaignsAsSuccessor(): boolean {
    if (!this.successorCampaign) return false;
    if (this.state === 'PreCandidate') {
      if (this.successorRetryTicksLeft <= 0) return false;
      this.successorRetryTicksLeft--;
      return true;
    }
    if (this.state !== 'Follower' || this.lead === None || this.electionElapsed < this.electionTimeout) return false;
    const successor = this.trk.voters.find((id) => id !== this.lead);
    if (successor !== this.id) return false;
    this.successorRetryTicksLeft = this.electionTimeout;
    return true;
  }

  protected tickHeartbeat(): void {
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

  protected reset(term: number): void {
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
    this.successorRetryTicksLeft = 0;
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

  protected appendEntries(entries: Entry[]): void {
    const last = this.log.append(entries);
    this.send(makeMessage({ type: 'MsgAppResp', to: this.id, index: last }));
  }

  protected appendEntry(entry: Entry): void {
    const last = this.log.append([entry]);
    // The leader counts its own copy only once it is persisted: an append response to itself.
    this.send(makeMessage({ type: 'MsgAppResp', to: this.id, index: last }));
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
  protected inRestartVoteDelay(): boolean {
    return this.restarted && this.ticksSinceStart < this.restartVoteDelayTicks;
  }

  protected inStartupVoteDelay(): boolean {
    return this.inRestartVoteDelay() || this.inFreshVoteDelay();
  }

  /** The fresh delay guards against a second vote in a term after disk loss: nothing skips it. */
  protected inFreshVoteDelay(): boolean {
    return !this.restarted && this.groupRanSeen && this.ticksSinceStart < this.freshVoteDelayTicks;
  }

  /**
   * Judged on the first peer message only: history this member then watches being made
   * (a brand-new group electing its first leader) is no reason to distrust its own empty disk.
   */
  protected noteGroupRan(m: Message): void {
    // Our own vote, stepped on advance, says nothing about whether the group ran before us.
    if (this.groupRanDecided || m.from === this.id) return;
    this.groupRanDecided = true;
    const fromLeader = m.type === 'MsgApp' || m.type === 'MsgHeartbeat' || m.type === 'MsgSnap';
    const voteWithHistory = (m.type === 'MsgVote' || m.type === 'MsgPreVote') && m.logTerm > 0;
    this.groupRanSeen = m.term > 1 || fromLeader || voteWithHistory;
  }

  // ---- leader helpers ----

  protected maybeCommit(): boolean {
    return this.log.maybeCommit(this.trk.committedIndex(), this.term);
  }

  protected sendAppend(to: string, sendIfEmpty = true): boolean {
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

  protected sendSnapshot(to: string, pr: Progress): boolean {
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
  protected sendConfSnapshot(to: string, pr: Progress): void {
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

  protected bcastHeartbeat(): void {
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

  protected sendTimeoutNow(to: string): void {
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

  basicStatus(): BasicStatus {
    const config = this.trk.config;
    if (this.sharedConfState?.of !== config) {
      const cs = this.trk.confState();
      for (const list of [cs.voters, cs.votersOutgoing, cs.learners, cs.learnersNext]) Object.freeze(list);
      this.sharedConfState = { of: config, cs: Object.freeze(cs) };
    }
    return { term: this.term, state: this.state, leadTransferee: this.leadTransferee, confState: this.sharedConfState.cs };
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
      freshVoteDelayTicksLeft: this.inFreshVoteDelay() ? this.freshVoteDelayTicks - this.ticksSinceStart : 0,
      progress,
      confState: this.trk.confState(),
      applied: this.applied,
      pendingConfIndex: this.pendingConfIndex,
    };
  }

  abstract step(m: Message): void;
}
