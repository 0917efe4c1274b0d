import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import { performance } from 'node:perf_hooks';
import {
  InvalidMessageError,
  MaxRestoredTerm,
  None,
  RaftError,
  validatePeerMessage,
  RawNode,
  type ConfChangeV2,
  type ConfState,
  type Message,
  type RandomSource,
  type Ready,
  type StateType,
  type Status,
} from '../raft/index.js';
import { ClusterError } from './errors.js';
import type {
  LeadershipView,
  Member,
  MemberInfo,
  MemberMetrics,
  MembershipStatus,
  PeerTiming,
  PeerTransport,
  TickTiming,
  TransferResult,
} from './interfaces.js';
import { LeaderLease } from './lease.js';
import { confChangeKind, MembershipBook, membershipStatus, vetConfChange } from './member-membership.js';
import { realTimers, validateMemberOptions, type MemberOptions, type MemberTimers, type Timing } from './member-options.js';
import { PeerRefusals } from './member-refusals.js';
import { RoleTracker } from './member-role.js';
import { MemberTiming } from './member-timing.js';
import { TransferGate } from './member-transfer.js';
import { ViewPublisher } from './member-view.js';
import type { TimingRecord } from './timing-record.js';

export { validateMemberOptions, type MemberOptions, type MemberTimers } from './member-options.js';

/** How long the successor waits after the leader's link closed, for the others to notice too. */
const DisconnectCampaignDelayMs = 30;

const cryptoRandom: RandomSource = { nextInt: (max) => randomInt(max) };

/**
 * What leaves before this member's own write whatever its role: vote requests (a candidate's own
 * vote is a message to itself, counted after the write) and MsgTimeoutNow (it promises nothing
 * about the sender's disk; with transferGrantsVote the same Ready moves the leader to the next
 * term and holds its grant until the write).
 */
const SentBeforeWrite: ReadonlySet<Message['type']> = new Set(['MsgVote', 'MsgPreVote', 'MsgTimeoutNow']);

/** What a leader may send before its own write (a prefix of the Ready's messages). */
const LeaderSendsFirst: ReadonlySet<Message['type']> = new Set(['MsgApp', 'MsgHeartbeat', 'MsgSnap']);

/**
 * One running member: owns the RawNode, its tick loop, and the Ready cycle
 * (persist, then send, then advance). Everything runs on the event loop; a synced
 * write runs off it when the store can (saveInBackground), and what depends on the write
 * leaves only once it is done, so no message can overtake the write it depends on. What it answers (member-view.ts), the transfer gate (member-transfer.ts) and
 * the role bookkeeping (member-role.ts) are its helpers: they act on raft only through it.
 */
export class RaftMember implements Member {
  readonly id: string;
  private readonly options: MemberOptions;
  private readonly timing: Timing;
  private readonly log: Logger;
  private readonly metrics: MemberMetrics | undefined;
  private readonly nowMs: () => number;
  private readonly timers: MemberTimers;
  private readonly wallClock: () => Date;
  private readonly lease: LeaderLease;
  private readonly timingGuard: MemberTiming;
  private readonly book: MembershipBook;
  private node: RawNode | undefined;
  private transport: PeerTransport | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  private readonly role: RoleTracker;
  private readonly transfers: TransferGate;
  private readonly views: ViewPublisher;
  /** MemberOptions.transferGrantsVote (default on); syncTransferGrant turns it off in the fresh-vote window. */
  private readonly grantsTransferVote: boolean;
  /** Raft's fresh-vote delay of this start (0 with a state file: raft applies none then). */
  private freshVoteDelayTicks = 0;
  private running = false;

  private readonly tickListeners = new Set<(tick: TickTiming) => void>();
  private term = 0;
  private failed = false;
  /** A synced write under way (StateStore.saveInBackground); settles once it is done, either way. */
  private writeInFlight: Promise<void> | undefined;
  /** The last stop(), until the next start(). */
  private stopping: Promise<void> | undefined;
  private readonly refusals: PeerRefusals;

  private nextTickAtMs = 0;
  private worstLatenessMs = 0;

  constructor(options: MemberOptions) {
    this.timing = validateMemberOptions(options);
    this.options = options;
    this.id = options.id;
    this.grantsTransferVote = options.transferGrantsVote ?? true;
    this.log = options.logger.child({ component: 'member', id: options.id });
    this.metrics = options.metrics;
    this.nowMs = options.monotonicNowMs ?? (() => performance.now());
    this.timers = options.timers ?? realTimers;
    this.wallClock = options.wallClock ?? (() => new Date());
    this.lease = new LeaderLease(options.id, this.announcedTiming());
    this.book = new MembershipBook(options.id, this.log, options.metrics);
    // A getter: tests swap the logger after construction.
    this.refusals = new PeerRefusals(() => this.log);
    this.timingGuard = new MemberTiming(this.announcedTiming(), this.lease, options.timingRecord, this.log);
    this.role = new RoleTracker({
      metrics: this.metrics,
      lease: this.lease,
      otherLeaseCoverMs: () => this.timingGuard.otherLeaseCoverMs(),
      log: () => this.log,
    });
    this.transfers = new TransferGate({
      self: this.id,
      log: () => this.log,
      nowMs: () => this.nowMs(),
      running: () => this.running,
      term: () => this.term,
      leader: () => this.leaderOrNull(),
      connected: () => new Set((this.transport?.peers() ?? []).filter((p) => p.connected).map((p) => p.id)),
      withNode: (what, action) => this.withNode(what, action),
      electionTimeoutMs: this.timing.electionTimeoutMs,
      tickMs: this.timing.tickMs,
      otherLeaseCoverMs: () => this.timingGuard.otherLeaseCoverMs(),
    });
    this.views = new ViewPublisher({
      self: this.id,
      lease: this.lease,
      timers: this.timers,
      nowMs: () => this.nowMs(),
      wallClock: () => this.wallClock(),
      log: () => this.log,
      state: () => ({
        leading: this.node !== undefined && this.running && this.role.state === 'Leader',
        leader: this.leaderOrNull(),
        term: this.term,
        role: this.role.state,
        confState: this.book.current,
        claimNotBeforeMs: this.role.claimNotBeforeMs,
        transferring: this.transfers.transferredInTerm === this.term,
      }),
      beforeListeners: (view) => this.transfers.viewChanged(view),
    });
  }

  /** What this member announces to its peers in the handshake. */
  announcedTiming(): PeerTiming {
    return { tickMs: this.timing.tickMs, electionTicks: this.timing.electionTicks, maxClockDriftMs: this.timing.maxClockDriftMs };
  }

  /** The longest windows this member ever announced (its timing record), for the handshake; 0s before start. */
  announcedTimingRecord(): TimingRecord {
    return this.timingGuard.announcedRecord();
  }

  get leaseWindowMs(): number {
    return this.timing.leaseWindowMs;
  }

  get electionTimeoutMs(): number {
    return this.timing.electionTimeoutMs;
  }

  /** Loads the state file (a corrupt one throws, naming the file), starts the transport and the ticks. */
  async start(): Promise<void> {
    if (this.running) return;
    const restored = this.options.store.load();
    const t = this.timing;
    if (restored && restored.hardState.term > MaxRestoredTerm) {
      throw new ClusterError(
        'STATE_TERM_NO_HEADROOM',
        `the state file holds term ${restored.hardState.term}, too close to 2^53 for this member ever to campaign ` +
          `(the largest it starts from is ${MaxRestoredTerm}); this member cannot take part again. Recover by stopping every member of the group, deleting every ` +
          `member's state file, and starting them all (a new group: the term, the fencing token, restarts from 1)`,
      );
    }
    const { restartVoteDelayTicks } = this.timingGuard.start(this.nowMs(), restored === undefined);
    // Raft's own test (raft-base.ts: restarted): a state file at term 0 is no history.
    this.freshVoteDelayTicks = (restored?.hardState.term ?? 0) === 0 ? 2 * restartVoteDelayTicks : 0;
    this.node = new RawNode({
      id: this.id,
      voters: this.options.bootstrap?.voters ?? [],
      learners: this.options.bootstrap?.learners ?? [],
      electionTick: t.electionTicks,
      heartbeatTick: t.heartbeatTicks,
      preVote: this.options.preVote ?? true,
      checkQuorum: this.options.checkQuorum ?? true,
      random: this.options.random ?? cryptoRandom,
      ...(restored ? { restored } : {}),
      // A restarted member may have acknowledged a heartbeat just before it stopped; a leader's
      // lease counts on that, so it grants no vote, its own included, for one election timeout. A member with no
      // state may even have voted before its disk was lost: it waits two, once it sees the group ran.
      restartVoteDelayTicks,
      freshVoteDelayTicks: 2 * restartVoteDelayTicks,
      // A silent leader (a partition, a hung process) is replaced after one election timeout.
      successorCampaign: this.options.successorCampaign ?? true,
      // A handover saves the target a round trip: the leader's own vote comes with MsgTimeoutNow
      // (off while this member refuses fresh votes: syncTransferGrant).
      transferGrantsVote: this.grantsTransferVote,
    });
    const status = this.node.status();
    this.term = status.term;
    this.log.info(
      { term: status.term, vote: status.vote || null, commit: status.commit, restored: restored !== undefined },
      restored ? 'member starting from its state file' : 'member starting fresh (no state file)',
    );
    this.transport = this.options.createTransport({
      onMessage: (m) => this.onPeerMessage(m),
      onUnreachable: (peer) => this.onUnreachable(peer),
      onPeerConnectionChange: (peer, connected) => {
        this.metrics?.peerConnected(peer, connected);
        if (!connected) this.onPeerDisconnected(peer);
      },
      onDrop: (reason) => this.metrics?.messageDropped(reason),
      onPeerTiming: (peer, timing, record) => this.timingGuard.peerTiming(peer, timing, record),
    });
    this.book.update(status.confState, this.transport, true);
    await this.transport.start();
    this.running = true;
    this.stopping = undefined;
    this.nextTickAtMs = this.nowMs() + t.tickMs;
    this.scheduleTick();
    this.views.publish();
  }

  /** Stops ticking and closes the transport; the state file already holds everything durable. */
  stop(): Promise<void> {
    // A second call (fail() then the caller's) waits for the same stop, write under way included.
    if (!this.running) return this.stopping ?? Promise.resolve();
    this.running = false;
    this.stopping = this.finishStop();
    return this.stopping;
  }

  private async finishStop(): Promise<void> {
    if (this.tickTimer) this.timers.clearTimeout(this.tickTimer);
    this.views.clearTimer();
    this.tickTimer = undefined;
    // No next tick: a probe reading the ticks must not count a stopped member as a stuck loop.
    this.notifyTick({ lateMs: 0, nextInMs: Infinity });
    this.transfers.abandonAll();
    // Watchers must hear that this member no longer claims anything.
    this.views.publish();
    await this.transport?.close();
    // The caller closes the state file next: a write under way must be done with it first.
    await this.writeInFlight;
    this.log.info({ term: this.term }, 'member stopped');
  }

  /**
   * Graceful stop: a leader first hands over to the most up-to-date connected follower and
   * waits for it (bounded by one election timeout), so the group does not wait for a timeout.
   */
  async shutdown(): Promise<TransferResult | undefined> {
    let result: TransferResult | undefined;
    if (this.running && (this.raftRole().state === 'Leader' || this.transfers.underWay)) {
      try {
        // A transfer under way (the reconciler's handover ran out of time) is joined.
        result = await this.transferLeadership();
        this.log.info({ ...result }, result.transferred ? 'handed leadership over' : 'leadership handover timed out');
      } catch (err) {
        this.log.warn({ err }, 'no follower to hand leadership to');
      }
    }
    await this.stop();
    return result;
  }

  /** Peer messages refused at the raft boundary since start, by reason (sorted). */
  invalidMessageCounts(): Record<string, number> {
    return this.refusals.counts();
  }

  // ---- the Member interface ----

  view(): LeadershipView {
    return this.views.current();
  }

  members(): MemberInfo[] {
    const leader = this.leaderOrNull();
    const peers = new Map((this.transport?.peers() ?? []).map((p) => [p.id, p]));
    return this.book.ids([...peers.keys(), this.id]).map((id) => {
      const peer = peers.get(id);
      const role: MemberInfo['role'] = leader === null ? 'unknown' : id === leader ? 'leader' : 'follower';
      const membership = this.book.roleOf(id);
      if (id === this.id) return { id, address: this.options.selfAddress ?? null, connected: true, role, membership };
      return { id, address: peer?.address ?? null, connected: peer?.connected ?? false, role, membership };
    });
  }

  membership(): MembershipStatus {
    return membershipStatus(this.requireNode().status());
  }

  /** Refuses a change that removes this leader: see vetConfChange (transfer first). */
  proposeConfChange(cc: ConfChangeV2): void {
    const node = this.requireNode();
    if (!this.running) throw new ClusterError('MEMBER_STOPPED', `member ${this.id} is stopped; cannot change the configuration`);
    vetConfChange(node.status(), cc, this.transfers.transferredInTerm, this.leaderOrNull());
    this.log.info({ change: cc }, 'proposing configuration change');
    this.withNode('change the configuration', (n) => n.proposeConfChange(cc));
  }

  onMembershipChange(listener: (cs: ConfState) => void): () => void {
    return this.book.onChange(listener);
  }

  /**
   * Ms of the fresh-vote delay this member would still serve if the group ran before it (what
   * its handshake announces). Raft applies the delay only once a message shows the group ran,
   * which comes after the first handshakes, so this does not wait for that.
   */
  freshVoteDelayBoundMs(): number {
    if (!this.node || this.freshVoteDelayTicks === 0) return 0;
    return Math.max(0, this.freshVoteDelayTicks - this.node.status().ticksSinceStart) * this.timing.tickMs;
  }

  freshVoteDelayMsLeft(): number {
    if (!this.node || !this.running) return 0;
    return this.node.status().freshVoteDelayTicksLeft * this.timing.tickMs;
  }

  onChange(listener: (view: LeadershipView) => void): () => void {
    return this.views.onChange(listener);
  }

  /** No-op once stopped: the pod watch's timers may fire after a graceful stop. */
  forgetLeader(): void {
    if (!this.running) return;
    this.withNode('forgetLeader', (n) => n.forgetLeader());
  }

  /**
   * Campaign now; only a follower that knows no leader does (a candidate already campaigning,
   * or one that re-learned a leader, would only restart an election and risk a split vote).
   */
  campaign(): void {
    if (!this.running) return;
    const raft = this.raftRole();
    if (raft.state !== 'Follower' || raft.lead !== None) {
      this.log.debug({ role: raft.state, leader: raft.lead || null }, 'campaign skipped');
      return;
    }
    this.withNode('campaign', (n) => n.campaign());
  }

  lastLogId(): { index: number; term: number } {
    const s = this.requireNode().status();
    return { index: s.lastIndex, term: s.lastTerm };
  }

  worstTickLatenessMs(): number {
    return this.worstLatenessMs;
  }

  onTick(listener: (tick: TickTiming) => void): () => void {
    this.tickListeners.add(listener);
    return () => this.tickListeners.delete(listener);
  }

  status(): Status {
    return this.requireNode().status();
  }

  /** One transfer at a time: see TransferGate (TRANSFER_IN_PROGRESS, MEMBER_STOPPED, NOT_LEADER). */
  transferLeadership(to?: string): Promise<TransferResult> {
    return this.transfers.request(this.requireNode(), to);
  }

  // ---- driving the node ----

  private requireNode(): RawNode {
    if (!this.node) throw new ClusterError('MEMBER_STOPPED', `member ${this.id} has not started`);
    return this.node;
  }

  private withNode(what: string, action: (n: RawNode) => void): void {
    const node = this.requireNode();
    if (!this.running) throw new ClusterError('MEMBER_STOPPED', `member ${this.id} is stopped; cannot ${what}`);
    this.syncTransferGrant(node);
    action(node);
    this.processReady();
  }

  /**
   * The vote a leader gives with MsgTimeoutNow (RaftConfig.transferGrantsVote) is stepped inside
   * raft, past onPeerMessage: while this member would drop the target's real request (its
   * fresh-vote window, longer than raft's own delay when peers announce longer timing), raft
   * gives none. Set before every step that may hand over (a local transfer, a peer's message);
   * only raft's leader hands over, whatever role this member shows (it lags a write under way).
   */
  private syncTransferGrant(node: RawNode): void {
    const refuses = this.timingGuard.refusesFreshVotes(this.nowMs());
    node.setTransferGrantsVote(this.grantsTransferVote && !refuses);
  }

  private scheduleTick(): void {
    if (!this.running) return;
    const delay = Math.max(0, this.nextTickAtMs - this.nowMs());
    this.tickTimer = this.timers.setTimeout(() => this.runTick(), delay);
  }

  private runTick(): void {
    if (!this.running) return;
    const now = this.nowMs();
    const lateness = now - this.nextTickAtMs;
    if (lateness > this.worstLatenessMs) this.worstLatenessMs = lateness;
    // Ticks are at least tickMs apart, whatever the timer did: raft's clock must never run faster
    // than real time. A late tick followed by a catch-up tick would shorten a follower's vote lease
    // below (electionTicks - 1) * tickMs, which the leader's lease window assumes.
    this.nextTickAtMs = Math.max(this.nextTickAtMs, now) + this.timing.tickMs;
    this.notifyTick({ lateMs: Math.max(0, lateness), nextInMs: this.nextTickAtMs - now });
    try {
      this.node!.tick();
      this.processReady();
      this.transfers.afterTick(now, this.node!);
    } catch (err) {
      this.log.error({ err }, 'tick failed');
    }
    this.scheduleTick();
  }

  private notifyTick(tick: TickTiming): void {
    for (const listener of this.tickListeners) {
      try {
        listener(tick);
      } catch (err) {
        this.log.error({ err }, 'tick listener failed');
      }
    }
  }

  private onPeerMessage(m: Message): void {
    if (!this.running || !this.node) return;
    this.metrics?.messageReceived(m.type);
    try {
      // Before anything reads it: the lease must not count an ack raft would refuse.
      validatePeerMessage(m, this.id, this.term);
      if (this.timingGuard.refusesFreshVote(m, this.term, this.nowMs())) return;
      if (m.type === 'MsgHeartbeatResp' && m.term === this.term) this.lease.heartbeatAcked(m.from, m.context);
      this.syncTransferGrant(this.node);
      this.node.step(m);
    } catch (err) {
      if (err instanceof RaftError) {
        this.metrics?.messageDropped(err instanceof InvalidMessageError ? 'frame_invalid' : 'decode');
        this.refusals.refused(m, err, this.nowMs());
        return;
      }
      throw err;
    }
    this.processReady();
  }

  private onPeerDisconnected(peer: string): void {
    if (!this.running || !this.node || this.options.forgetLeaderOnDisconnect === false) return;
    const raft = this.raftRole();
    if (raft.state !== 'Follower' || raft.lead !== peer) return;
    const cs = this.book.current;
    const successor = [...new Set([...cs.voters, ...cs.votersOutgoing])].sort().find((id) => id !== peer);
    this.log.info({ leader: peer, term: this.term, campaign: successor === this.id }, 'link to the leader closed; forgetting it');
    this.node.forgetLeader();
    this.processReady();
    if (successor !== this.id) return;
    // The other followers see the same link close within a moment; until they do, they still
    // honour the old leader's lease and would drop the pre-vote, costing an election timeout.
    this.timers.setTimeout(() => {
      if (!this.running) return;
      this.log.info({ term: this.term }, 'campaigning: the leader is gone');
      this.campaign();
    }, DisconnectCampaignDelayMs);
  }

  private onUnreachable(peer: string): void {
    if (!this.running || !this.node) return;
    this.node.reportUnreachable(peer);
    this.processReady();
  }

  /** The driver contract: persist, then send, then advance; repeat while there is work. */
  private processReady(): void {
    try {
      this.drainReady();
    } catch (err) {
      // Between ready() and advance() nothing can be retried: a wedged node would sit silent.
      this.fail(err);
    }
  }

  private drainReady(): void {
    const node = this.node;
    if (!node) return;
    // One write in flight at a time: the next Ready waits for this one's advance (raft's rule).
    while (this.writeInFlight === undefined && node.hasReady()) {
      // A new leader's lease starts with its first heartbeat round: put that round in the Ready that
      // makes it leader, so it leaves before this member's write (not one fsync later). A no-op
      // unless raft leads and this member has not seen it yet.
      if (this.role.state !== 'Leader') node.heartbeat();
      const rd = node.ready();
      const left = this.sendBeforeWrite(rd);
      if (rd.durableState && rd.mustSync && this.options.store.saveInBackground) {
        this.writeInBackground(node, rd, left);
        break;
      }
      if (rd.durableState) {
        const started = performance.now();
        // If the write throws, nothing else of this Ready may leave (a vote would be promised but not
        // kept): processReady stops the member.
        // A commit-only Ready is written without a sync (etcd's MustSync): nothing sent promises it.
        this.options.store.save(rd.durableState, { sync: rd.mustSync });
        this.metrics?.statePersistDuration((performance.now() - started) / 1000);
      }
      this.finishReady(node, rd, left);
    }
    // After every message: the basic status (no progress records, a shared ConfState) is enough here.
    const status = node.basicStatus();
    // Even with a write in flight: a transfer raft started must mark its term before any claim.
    this.transfers.noteStatus(status);
    // Applied changes and a joiner's snapshot both move the configuration; the view below uses it.
    // Not from a snapshot whose write is still to come or under way: it is not on disk yet.
    if (this.writeInFlight === undefined || !node.hasUnsavedSnapshot()) this.book.update(status.confState, this.transport);
    this.views.publish();
  }

  /**
   * The part of a Ready that may leave before this member's write: vote requests and MsgTimeoutNow
   * always, and a leader's appends and heartbeats. Returns what must wait for the write.
   */
  private sendBeforeWrite(rd: Ready): Message[] {
    // Nothing of this Ready's term is new: the term (and a leader's self-vote) is already on disk.
    const termDurable = rd.hardState === undefined || rd.hardState.term === this.term;
    // Vote requests promise nothing about this member's disk: its own vote is a message to itself,
    // counted only after this member's write, and any grant is stepped after it too (etcd-raft's
    // msgs vs msgsAfterAppend). So the peers' writes overlap with ours.
    const early = rd.messages.filter((m) => SentBeforeWrite.has(m.type));
    for (const m of early) {
      if (m.type === 'MsgTimeoutNow') this.transfers.timeoutNowSent(m.term);
      this.sendOne(m);
    }
    const rest = early.length === 0 ? rd.messages : rd.messages.filter((m) => !SentBeforeWrite.has(m.type));
    if (!termDurable) return rest;
    if (rd.softState) this.onSoftState(rd);
    let sent = 0;
    // A leader's appends and heartbeats promise nothing about its own disk, so
    // they leave before the write (etcd's leader rule, raft thesis 10.2.1); responses are
    // stepped only after the write, so the leader never counts an unwritten entry.
    if (this.role.state === 'Leader') {
      while (sent < rest.length && LeaderSendsFirst.has(rest[sent]!.type)) sent++;
      // Heartbeats first: a follower answers one without writing, but an append only after its
      // own fsync, and both share the link. Raft takes them in any order (etcd: two streams).
      for (let i = 0; i < sent; i++) if (rest[i]!.type === 'MsgHeartbeat') this.sendOne(rest[i]!);
      for (let i = 0; i < sent; i++) if (rest[i]!.type !== 'MsgHeartbeat') this.sendOne(rest[i]!);
    }
    // A follower names the leader it just heard from before writing that leader's entries.
    if (rd.softState) this.views.publish();
    return rest.slice(sent);
  }

  /**
   * The synced write off the event loop (StateStore.saveInBackground): peers' messages, ticks and
   * GET /leader go on meanwhile. Raft takes steps between ready() and advance() (etcd's run loop
   * does the same); whatever they produce waits for the next Ready, after this write's advance.
   */
  private writeInBackground(node: RawNode, rd: Ready, left: Message[]): void {
    const started = performance.now();
    let settle!: () => void;
    this.writeInFlight = new Promise<void>((resolve) => (settle = resolve));
    const done = (err: Error | undefined): void => {
      this.writeInFlight = undefined;
      settle();
      // Nothing of this Ready may leave on an error: a vote would be promised but not kept.
      if (err !== undefined) return this.fail(err);
      // Stopped meanwhile: the transport is closed and the node is dropped at the next start.
      if (!this.running || this.node !== node || this.failed) return;
      try {
        this.metrics?.statePersistDuration((performance.now() - started) / 1000);
        this.finishReady(node, rd, left);
      } catch (finishErr) {
        return this.fail(finishErr);
      }
      this.processReady();
    };
    try {
      this.options.store.saveInBackground!(rd.durableState!, done);
    } catch (err) {
      done(err as Error);
    }
  }

  /** After the Ready's state is durable: the new term, what waited for the write, then advance. */
  private finishReady(node: RawNode, rd: Ready, left: Message[]): void {
    const termDurable = rd.hardState === undefined || rd.hardState.term === this.term;
    if (rd.hardState) this.term = rd.hardState.term;
    if (rd.softState && !termDurable) this.onSoftState(rd);
    for (const m of left) this.sendOne(m);
    // Committed membership changes take effect in log order, before advance (etcd's driver rule).
    for (const e of rd.committedEntries) {
      if (!e.confChange) continue;
      node.applyConfChange(e.confChange);
      this.metrics?.confChangeApplied?.(confChangeKind(e.confChange));
    }
    node.advance(rd);
  }

  private sendOne(m: Message): void {
    if (m.type === 'MsgHeartbeat') this.lease.heartbeatSent(m.context, this.nowMs());
    // Written (synchronously) before the vote leaves: an audit trail that survives SIGKILL.
    if (m.type === 'MsgVoteResp' && !m.reject) this.log.info({ term: m.term, candidate: m.to }, 'vote granted');
    this.transport?.send(m);
    this.metrics?.messageSent(m.type);
  }

  private onSoftState(rd: Ready): void {
    this.role.apply(rd, this.node!.status(), this.nowMs());
  }

  private fail(err: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.log.fatal({ err }, 'the raft loop failed; stopping the member');
    void this.stop();
    this.options.onFatal?.(err);
  }

  /** Raft's role and leader now: the role shown lags it while a write is under way (not for claims). */
  private raftRole(): { state: StateType; lead: string } {
    if (this.writeInFlight === undefined || !this.node) return { state: this.role.state, lead: this.role.lead };
    const s = this.node.status();
    return { state: s.state, lead: s.lead };
  }

  private leaderOrNull(): string | null {
    return this.role.lead === None ? null : this.role.lead;
  }
}
