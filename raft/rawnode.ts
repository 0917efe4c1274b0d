import { validatePeerMessage } from './validate.js';
import { Raft, type BasicStatus, type RaftConfig, type Status } from './raft.js';
import {
  copyConfChange,
  copyConfState,
  hardStateEqual,
  makeMessage,
  None,
  RaftError,
  type ConfChangeV2,
  type ConfState,
  type EntryId,
  type HardState,
  type Message,
  type Ready,
  type SoftState,
} from './types.js';

/**
 * The driver's handle on one member (etcd's RawNode, synchronous-storage mode).
 *
 * Driver loop: `if (node.hasReady()) { const rd = node.ready(); persist(rd.durableState);
 * send(rd.messages); node.advance(rd); }`. Steps may happen between ready() and
 * advance(); a second ready() before advance() is a bug and throws.
 */
export class RawNode {
  private readonly raft: Raft;
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  /** What the outstanding Ready promised to persist, settled by advance(). */
  private pending:
    | { stable: EntryId; snapshot: EntryId | undefined; selfSteps: Message[]; appliedTo: number }
    | undefined;

  constructor(config: RaftConfig) {
    this.raft = new Raft(config);
    this.prevSoftState = this.raft.softState();
    this.prevHardState = this.raft.hardState();
  }

  get id(): string {
    return this.raft.id;
  }

  tick(): void {
    this.raft.tick();
  }

  /** Feeds a message from a peer. Local-only message types from the network are refused. */
  step(m: Message): void {
    if (this.raft.isLocalMessage(m.type)) {
      throw new RaftError('INVALID_ARGUMENT', `${m.type} is local and cannot arrive from a peer`);
    }
    // Refused whole, before it changes anything: raft's invariants hold for every peer message.
    validatePeerMessage(m, this.raft.id, this.raft.term);
    if (!this.raft.trk.progress.has(m.from) && isResponseType(m.type)) {
      // A response from a non-member carries nothing we can use.
      return;
    }
    this.raft.step(m);
  }

  campaign(): void {
    this.raft.step(makeMessage({ type: 'MsgHup', from: this.raft.id }));
  }

  /** Forget the current leader (it is known to be going away) without waiting for a timeout. */
  forgetLeader(): void {
    this.raft.step(makeMessage({ type: 'MsgForgetLeader', from: this.raft.id }));
  }

  /** Ask the leader (this node or the one it follows) to hand leadership to `transferee`. */
  transferLeader(transferee: string): void {
    this.raft.step(makeMessage({ type: 'MsgTransferLeader', from: transferee }));
  }

  /**
   * Turns RaftConfig.transferGrantsVote on or off from the next step on (not an etcd API). The
   * vote a handing-over leader gives with MsgTimeoutNow is stepped inside raft, so it never meets
   * the rules a driver applies to the target's real request before stepping it: a driver that
   * refuses vote requests raft cannot see (the member's fresh-vote window) turns this off meanwhile.
   */
  setTransferGrantsVote(on: boolean): void {
    this.raft.transferGrantsVote = on;
  }

  reportUnreachable(id: string): void {
    this.raft.step(makeMessage({ type: 'MsgUnreachable', from: id }));
  }

  /** Appends one empty entry through the leader (used by tests; the elector has no payloads). */
  propose(): void {
    this.raft.step(makeMessage({ type: 'MsgProp', from: this.raft.id }));
  }

  /**
   * Proposes a configuration change (etcd's ProposeConfChange with a ConfChangeV2). Only a
   * leader accepts one, and only when no earlier change is still unapplied; otherwise this
   * throws PROPOSAL_DROPPED saying why. The change takes effect when the driver applies it.
   */
  proposeConfChange(cc: ConfChangeV2): void {
    if (this.raft.state !== 'Leader') throw new RaftError('PROPOSAL_DROPPED', 'only the leader changes the configuration');
    this.raft.step(
      makeMessage({ type: 'MsgProp', from: this.raft.id, entries: [{ index: 0, term: 0, confChange: copyConfChange(cc) }] }),
    );
  }

  /**
   * Applies a committed conf change, in log order, from Ready.committedEntries (etcd's
   * ApplyConfChange); returns the configuration now in force. A leader that removed or
   * demoted itself steps down here: a driver that wants no leaderless gap transfers
   * leadership before it proposes its own removal.
   */
  applyConfChange(cc: ConfChangeV2): ConfState {
    return this.raft.applyConfChange(copyConfChange(cc));
  }

  /**
   * On a leader, broadcast a heartbeat round now instead of at the next heartbeat tick
   * (not an etcd API: the driver uses it right after an election so the lease starts one
   * round trip later instead of up to a tick later). No-op on other roles.
   */
  /**
   * A leader becomes a follower of its own term with no leader, so that the next election starts a
   * new term. Not an etcd API: the driver uses it when a leader that began a transfer (and so may
   * never claim this term again) finds no voter to hand over to. Ignored by a non-leader.
   */
  stepDown(): void {
    if (this.raft.state !== 'Leader') return;
    this.raft.becomeFollower(this.raft.term, None);
  }

  heartbeat(): void {
    if (this.raft.state !== 'Leader') return;
    this.raft.step(makeMessage({ type: 'MsgBeat', from: this.raft.id }));
  }

  status(): Status {
    return this.raft.status();
  }

  /** status() without the progress, for a driver that reads it after every Ready. */
  /** A snapshot stepped whose Ready has not been advanced yet: its configuration is not durable. */
  hasUnsavedSnapshot(): boolean {
    return this.raft.log.pendingSnapshotId() !== undefined;
  }

  basicStatus(): BasicStatus {
    return this.raft.basicStatus();
  }

  hasReady(): boolean {
    if (this.pending) return false;
    const r = this.raft;
    if (!softStateEqual(r.softState(), this.prevSoftState)) return true;
    if (!hardStateEqual(r.hardState(), this.prevHardState)) return true;
    if (r.log.hasUnstable()) return true;
    if (r.log.committed > r.applied) return true;
    return r.msgs.length > 0 || r.msgsAfterAppend.length > 0;
  }

  ready(): Ready {
    if (this.pending) throw new RaftError('READY_NOT_ADVANCED', 'ready() called again before advance()');
    const r = this.raft;
    const soft = r.softState();
    const hard = r.hardState();
    const entries = r.log.unstableEntries();
    const snapshot = r.log.pendingSnapshotId();
    const hardChanged = !hardStateEqual(hard, this.prevHardState);
    const committedEntries = r.takeCommittedEntries();
    const rd: Ready = {
      entries,
      committedEntries,
      messages: r.msgs,
      mustSync:
        hard.term !== this.prevHardState.term ||
        hard.vote !== this.prevHardState.vote ||
        entries.length > 0 ||
        snapshot !== undefined,
    };
    if (!softStateEqual(soft, this.prevSoftState)) rd.softState = soft;
    if (hardChanged) rd.hardState = hard;
    if (snapshot) rd.snapshot = snapshot;
    if (hardChanged || entries.length > 0 || snapshot) {
      const marker = r.log.snapshot();
      rd.durableState = {
        hardState: hard,
        snapshot: { index: marker.index, term: marker.term },
        confState: copyConfState(r.markerConfState),
        entries: r.log.allEntries(),
      };
    }
    const selfSteps: Message[] = [];
    for (const m of r.msgsAfterAppend) {
      if (m.to === r.id) selfSteps.push(m);
      else rd.messages.push(m);
    }
    r.msgs = [];
    r.msgsAfterAppend = [];
    this.prevSoftState = soft;
    this.prevHardState = hard;
    const appliedTo = committedEntries[committedEntries.length - 1]?.index ?? r.applied;
    this.pending = { stable: r.log.lastEntryId(), snapshot, selfSteps, appliedTo };
    return rd;
  }

  /** The Ready's state is on disk and its messages are sent. */
  advance(_rd?: Ready): void {
    const pending = this.pending;
    if (!pending) throw new RaftError('NO_READY', 'advance() without an outstanding ready()');
    this.pending = undefined;
    const r = this.raft;
    r.log.stableTo(pending.stable);
    if (pending.snapshot) r.log.stableSnapshot(pending.snapshot);
    for (const m of pending.selfSteps) r.step(m);
    r.appliedTo(pending.appliedTo);
    r.compactLog();
  }
}

function softStateEqual(a: SoftState, b: SoftState): boolean {
  return a.lead === b.lead && a.state === b.state;
}

function isResponseType(type: Message['type']): boolean {
  return type === 'MsgAppResp' || type === 'MsgHeartbeatResp' || type === 'MsgVoteResp' || type === 'MsgPreVoteResp';
}
