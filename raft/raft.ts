import { restoreConfState } from './confchange.js';
import {
  becomeProbe,
  becomeReplicate,
  canBumpCommit,
  maybeDecrTo,
  maybeUpdate,
  ProgressTracker,
} from './tracker.js';
import {
  CampaignTransferContext,
  LeaseSkippedContext,
  makeMessage,
  NoConfStateContext,
  None,
  RaftError,
  voteResponseType,
  confChangeLeavesJoint,
  copyConfState,
  type ConfChangeV2,
  type ConfState,
  type EntryId,
  type Message,
  type MessageType,
} from './types.js';
import type { CampaignType } from './config.js';
import { RaftBase } from './raft-base.js';
export type { BasicStatus, CampaignType, ProgressStatus, RaftConfig, Status } from './config.js';

/** The election state machine (etcd's `raft` struct): message handling per role. Drive it through RawNode. */
export class Raft extends RaftBase {
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

  step(m: Message): void {
    if (m.term !== 0) this.noteGroupRan(m);
    let transferSkipTicks = 0;
    /** A grant that itself skips a lease this member still honours (not its own leader's transfer). */
    let skipsLeaseNow = false;
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
        if (force && inLease && this.state === 'Follower' && m.type === 'MsgVote') {
          transferSkipTicks = this.electionTimeout - this.electionElapsed;
          // Our leader's target campaigns at the next term. A later term's transfer comes from a
          // leader we never followed, so it skips our leader's lease, which may still be claimed.
          skipsLeaseNow = m.term > this.term + 1;
        }
      }
      if (m.type === 'MsgVoteResp' && !m.reject) {
        // A grant carries the term asked for, which the candidate had already taken: one above
        // ours comes from a leader that gave its vote with MsgTimeoutNow (transferGrantsVote)
        // and overtook that MsgTimeoutNow. Following its term with no leader would make us drop
        // the MsgTimeoutNow (an older term) and leave the group leaderless for an election
        // timeout; dropped instead, like a lost message: our transfer campaign asks again.
        return;
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
        // A member that lost its disk may have voted in this very term: no vote, whatever the term
        // (a stray higher-term message, such as a MsgTimeoutNow, can set its term without a leader).
        if (this.inFreshVoteDelay() && m.from !== this.id) return;
        const canVote =
          this.vote === m.from ||
          (this.vote === None && this.lead === None) ||
          (m.type === 'MsgPreVote' && m.term > this.term);
        if (canVote && this.log.isUpToDate({ index: m.index, term: m.logTerm })) {
          // Granted: answer with the request's term so the candidate counts it.
          const context = this.leaseSkipTicksLeft > 0 || skipsLeaseNow ? LeaseSkippedContext : '';
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
            this.handOver(m.from);
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
        if (pr.match === this.log.lastIndex()) this.handOver(transferee);
        else this.sendAppend(transferee);
        return;
      }
      default:
        return;
    }
  }

  /** MsgTimeoutNow to a caught-up target; with transferGrantsVote, this leader's vote for it too. */
  private handOver(to: string): void {
    this.sendTimeoutNow(to);
    if (!this.transferGrantsVote) return;
    // The target's log matches ours (its match is our last index): this is the request its
    // transfer campaign will send, stepped now with every rule a real one meets.
    const last = this.log.lastEntryId();
    this.step(
      makeMessage({
        type: 'MsgVote',
        from: to,
        to: this.id,
        term: this.term + 1,
        index: last.index,
        logTerm: last.term,
        context: CampaignTransferContext,
      }),
    );
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
        // Never shorter than marks already running (a restart's cover the old incarnation's acks).
        if (this.checkQuorum && this.electionElapsed < this.electionTimeout) {
          this.leaseSkipTicksLeft = Math.max(this.leaseSkipTicksLeft, this.electionTimeout - this.electionElapsed);
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
}
