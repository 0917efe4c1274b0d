import {
  copyConfState,
  copyEntry,
  None,
  RawNode,
  seededRandom,
  type ConfChangeV2,
  type DurableState,
  type Message,
  type RandomSource,
  type Ready,
  type Status,
} from '../../raft/index.js';
import { DiskLedger, type DoubleVoteWitness } from './disk-ledger.js';
import { MembershipInvariants } from './membership.js';
import { InFlightQueue, type InFlight } from './in-flight-queue.js';

/**
 * A deterministic discrete-event network for RawNodes.
 *
 * Virtual time runs in slots; a tick of the members' logical clocks happens every
 * SLOTS_PER_TICK slots, and messages are delivered in the slots between ticks, in
 * (delivery slot, send order) order. Every random choice (drop, delay, duplicate,
 * crash point, restart delay, the members' own election timeouts) comes from sources
 * seeded by `seed`, so the same seed and the same calls give the same trace.
 *
 * Members are driven exactly as a real driver does: after every input, while the node
 * has a Ready, persist its durable state, then send its messages, then advance. A crash
 * may fall before the write or between the write and the send, so a member can come
 * back having persisted a vote whose response never left.
 *
 * The invariants are checked after every event (each tick, each delivery, each Ready,
 * each message sent) and a breach throws a SimViolation naming the tick and the member.
 *
 * Disk loss (a pod recreated on an emptyDir) is a fault too: a wiped member restarts with
 * no state and begins a new disk identity. The per-member invariants that rest on the disk
 * (one vote per term, terms and commits never go back) hold per identity, not across a
 * wipe: the design accepts that a wiped member may vote twice in one term. So a second
 * leader of a term is a breach unless `allowWipedDoubleVotes` is set AND a member voted
 * for each of the two leaders in that term under two disk identities; then it is recorded
 * in `doubleLeaders` for the caller to count, never silently ignored. Committed entries
 * are only as durable as the disks holding them: once a wipe has erased a log entry (which
 * a leader may have counted towards a commit, even one the wiped member never learned) or a
 * vote (which lets two leaders share a term and write different logs), logs may rightly fork (and a follower acks a leader's append up to its own commit index,
 * trusting that committed prefixes agree), so under `allowLostCommittedEntries` the
 * committed-entries check stops at the first such wipe and later forks are only counted.
 * This product's entries carry no payload: only leadership is user-visible.
 */

export const SLOTS_PER_TICK = 4;
/** Clock rates are given in eighths of the global tick rate: 8 is an undrifted clock. */
export const CLOCK_EIGHTHS_NOMINAL = 8;
export const CLOCK_EIGHTHS_MIN = 4;

export interface FaultRates {
  /** Chance, in percent, that a message is lost on the wire. */
  dropPercent: number;
  /** Chance, in percent, that a message arrives twice (each copy with its own delay). */
  duplicatePercent: number;
  /** Extra delay drawn uniformly from [0, maxDelaySlots]; different delays reorder messages. */
  maxDelaySlots: number;
  /** Chance, in per mille, that the member crashes while it handles one Ready. */
  crashPerMille: number;
  /** Ticks a crashed member stays down, drawn from [1, maxDownTicks]; 0 means it stays down until restarted. */
  maxDownTicks: number;
  /** Chance, in percent, that a random crash also loses the member's disk (default 0). */
  wipePercent?: number;
}

export const NO_FAULTS: FaultRates = {
  dropPercent: 0,
  duplicatePercent: 0,
  maxDelaySlots: 0,
  crashPerMille: 0,
  maxDownTicks: 0,
};

export interface SimOptions {
  ids: readonly string[];
  /**
   * Membership mode: members without a disk start with these voters, and the others start
   * outside any configuration (pods joining); committed conf changes are applied. Default:
   * every id is a voter.
   */
  initialVoters?: readonly string[];
  electionTick: number;
  heartbeatTick: number;
  preVote: boolean;
  checkQuorum: boolean;
  restartVoteDelayTicks: number;
  /** RaftConfig.freshVoteDelayTicks (the real member sets 2 × electionTick); default 0. */
  freshVoteDelayTicks?: number;
  /** RaftConfig.successorCampaign (the real member sets it); default false. */
  successorCampaign?: boolean;
  /** RaftConfig.transferGrantsVote (the real member sets it); default false. */
  transferGrantsVote?: boolean;
  /**
   * Accept a second leader in a term when, and only when, a wiped member's double vote
   * explains it (see the class comment); every other double leader still throws.
   */
  allowWipedDoubleVotes?: boolean;
  /** Stop checking that committed entries agree once a wipe has erased a written state (see above). */
  allowLostCommittedEntries?: boolean;
  seed: number;
  faults?: FaultRates;
  /** Per-member clock rate in eighths of a global tick, within [CLOCK_EIGHTHS_MIN, 8]. */
  clockEighths?: Readonly<Record<string, number>>;
  /** Record a human-readable line per event (for determinism tests and failure reports). */
  trace?: boolean;
  /**
   * A broken driver, to prove the checks can fail: it sends a Ready's messages before
   * writing its state, and a crash may fall between the two.
   */
  unsafeSendBeforePersist?: boolean;
  /** Check that a granted vote is on disk before it leaves (default true). */
  checkVoteDurability?: boolean;
}

export type CrashPoint = 'idle' | 'beforePersist' | 'afterPersist';

/** In-flight messages above which a run is failed as a storm (a healthy 5-member run holds a few dozen). */
const MaxInFlightMessages = 50_000;

export class SimViolation extends Error {
  constructor(
    readonly invariant: string,
    message: string,
  ) {
    super(`[${invariant}] ${message}`);
    this.name = 'SimViolation';
  }
}

export interface SimStats {
  ticks: number;
  delivered: number;
  dropped: number;
  duplicated: number;
  /** Messages that arrived later than the slot after they were sent. */
  delayed: number;
  /** Deliveries that overtook an earlier message on the same link. */
  reordered: number;
  /** Messages lost to a partition or to a down receiver. */
  cutOff: number;
  crashes: number;
  /** Crashes that fell between writing a Ready's state and sending its messages. */
  crashesAfterPersist: number;
  crashesBeforePersist: number;
  restarts: number;
  /** Crashes that lost the disk (the member restarts as a new disk identity). */
  wipes: number;
  partitions: number;
  /** Terms that had a leader. */
  leaders: number;
  /** Terms anyone reached (each is one election attempt that got past pre-vote). */
  maxTerm: number;
  /** Persisted votes recorded (member disk identity, term) pairs. */
  votesPersisted: number;
  /** Terms with a second leader, each explained by a wiped member's double vote. */
  doubleLeaderTerms: number;
  /** Committed entries that disagreed after a wipe had erased a written state (not checked then). */
  forkedCommittedEntries: number;
}

/** A second leader of a term, and the wiped member whose two votes made both quorums. */
export interface DoubleLeader extends DoubleVoteWitness {
  term: number;
  first: string;
  second: string;
  tick: number;
}

interface Member {
  readonly id: string;
  readonly index: number;
  node: RawNode | undefined;
  incarnation: number;
  /** Bumped by each wipe: the disk identity that the per-disk invariants are kept for. */
  diskIdentity: number;
  disk: DurableState | undefined;
  /** Highest term and commit ever written to the current disk identity. */
  diskTerm: number;
  diskCommit: number;
  /** Highest term and commit seen in the running incarnation. */
  seenTerm: number;
  seenCommit: number;
  clockEighths: number;
  clockAccumulator: number;
  restartAtTick: number | undefined;
  armedCrash: { point: Exclude<CrashPoint, 'idle'>; downTicks: number } | undefined;
}

/** Each member incarnation gets its own seed: identical sources would draw identical timeouts. */
function memberSeed(seed: number, index: number, incarnation: number): number {
  return (Math.imul(seed ^ 0x5bd1e995, 31) + index * 7919 + incarnation * 104729) >>> 0;
}

function describe(m: Message): string {
  let s = `${m.type} ${m.from}->${m.to} t${m.term}`;
  if (m.type === 'MsgApp') s += ` i${m.index}/${m.logTerm} n${m.entries.length} c${m.commit}`;
  else if (m.type === 'MsgAppResp') s += ` i${m.index}${m.reject ? ' reject' : ''}`;
  else if (m.type === 'MsgVote' || m.type === 'MsgPreVote') s += ` last${m.index}/${m.logTerm}`;
  else if (m.type === 'MsgVoteResp' || m.type === 'MsgPreVoteResp') s += m.reject ? ' reject' : ' grant';
  else if (m.type === 'MsgHeartbeat') s += ` c${m.commit}`;
  if (m.context !== '') s += ` ctx=${m.context}`;
  return s;
}

export class Simulation {
  readonly ids: readonly string[];
  readonly stats: SimStats = {
    ticks: 0,
    delivered: 0,
    dropped: 0,
    duplicated: 0,
    delayed: 0,
    reordered: 0,
    cutOff: 0,
    crashes: 0,
    crashesAfterPersist: 0,
    crashesBeforePersist: 0,
    restarts: 0,
    wipes: 0,
    partitions: 0,
    leaders: 0,
    maxTerm: 0,
    votesPersisted: 0,
    doubleLeaderTerms: 0,
    forkedCommittedEntries: 0,
  };
  /** One line per event when `trace` is on. */
  readonly trace: string[] = [];
  /** Every term that had a leader, and who it was (election safety's witness). */
  readonly leaderByTerm = new Map<number, string>();
  /** Second leaders of a term accepted under `allowWipedDoubleVotes`, with their witness. */
  readonly doubleLeaders: DoubleLeader[] = [];

  private readonly options: SimOptions;
  private faults: FaultRates;
  private readonly members = new Map<string, Member>();
  private readonly net: RandomSource;
  private readonly queue = new InFlightQueue();
  private seq = 0;
  private readonly linkSendSeq = new Map<string, number>();
  private readonly linkDeliveredSeq = new Map<string, number>();
  /** Side of the partition each member is on; members on different sides cannot talk. */
  private side = new Map<string, number>();
  /** Every vote and committed entry each disk identity wrote, and the invariants on them. */
  private readonly ledger: DiskLedger;
  private tickNow = 0;
  private slotNow = 0;

  /** Configurations never diverge; a leader won with members' votes (see membership.ts). */
  readonly membership = new MembershipInvariants((invariant, text) => this.violation(invariant, text));

  constructor(options: SimOptions) {
    this.options = options;
    this.ids = [...options.ids].sort();
    this.faults = { ...(options.faults ?? NO_FAULTS) };
    this.net = seededRandom(options.seed);
    this.ledger = new DiskLedger(options.allowLostCommittedEntries === true, (invariant, text) => this.violation(invariant, text), this.stats);
    this.ids.forEach((id, index) => {
      const clockEighths = options.clockEighths?.[id] ?? CLOCK_EIGHTHS_NOMINAL;
      if (clockEighths < CLOCK_EIGHTHS_MIN || clockEighths > CLOCK_EIGHTHS_NOMINAL) {
        throw new RangeError(`clock rate of ${id} must be within [${CLOCK_EIGHTHS_MIN}, 8] eighths, got ${clockEighths}`);
      }
      this.members.set(id, {
        id,
        index,
        node: undefined,
        incarnation: 0,
        diskIdentity: 0,
        disk: undefined,
        diskTerm: 0,
        diskCommit: 0,
        seenTerm: 0,
        seenCommit: 0,
        clockEighths,
        clockAccumulator: 0,
        restartAtTick: undefined,
        armedCrash: undefined,
      });
      this.ledger.newDisk(id, 0, false);
    });
    for (const id of this.ids) this.start(id);
  }

  get tick(): number {
    return this.tickNow;
  }

  /** Virtual time in slots (SLOTS_PER_TICK per tick). */
  get slot(): number {
    return this.slotNow;
  }

  /** Messages still on the wire that were sent before `slot`. */
  inFlightSentBefore(slot: number): number {
    return this.queue.countSentBefore(slot);
  }

  /** Changes a member's clock rate, in eighths of the global tick rate. */
  setClockEighths(id: string, eighths: number): void {
    if (eighths < CLOCK_EIGHTHS_MIN || eighths > CLOCK_EIGHTHS_NOMINAL) {
      throw new RangeError(`clock rate of ${id} must be within [${CLOCK_EIGHTHS_MIN}, 8] eighths, got ${eighths}`);
    }
    this.member(id).clockEighths = eighths;
    this.log(`${id} clock ${eighths}/8`);
  }

  setFaults(faults: FaultRates): void {
    this.faults = { ...faults };
  }

  // ---- observation ----

  isUp(id: string): boolean {
    return this.member(id).node !== undefined;
  }

  status(id: string): Status {
    const node = this.member(id).node;
    if (!node) throw new Error(`member ${id} is down`);
    return node.status();
  }

  /** What the member has on disk (what would survive a crash now). */
  disk(id: string): DurableState | undefined {
    return this.member(id).disk;
  }

  upIds(): string[] {
    return this.ids.filter((id) => this.isUp(id));
  }

  /** Running members that believe they lead, with their terms. */
  leaders(): { id: string; term: number }[] {
    const out: { id: string; term: number }[] = [];
    for (const id of this.upIds()) {
      const s = this.status(id);
      if (s.state === 'Leader') out.push({ id, term: s.term });
    }
    return out;
  }

  /** The leader every member is up and follows in its term, if there is one. */
  agreedLeader(): string | undefined {
    let leader: string | undefined;
    let term = -1;
    for (const id of this.ids) {
      const node = this.member(id).node;
      if (!node) return undefined;
      const s = node.status();
      if (s.lead === None) return undefined;
      if (leader === undefined) {
        leader = s.lead;
        term = s.term;
      } else if (s.lead !== leader || s.term !== term) {
        return undefined;
      }
    }
    if (leader === undefined) return undefined;
    const ls = this.member(leader).node?.status();
    return ls && ls.state === 'Leader' && ls.term === term ? leader : undefined;
  }

  // ---- faults and actions ----

  /** Splits the members into sides; a member not named stays on side 0. */
  partition(...groups: readonly string[][]): void {
    this.side = new Map();
    groups.forEach((g, i) => g.forEach((id) => this.side.set(id, i + 1)));
    this.stats.partitions++;
    this.log(`partition ${groups.map((g) => `[${[...g].sort().join(',')}]`).join(' ')}`);
  }

  heal(): void {
    this.side = new Map();
    this.log('heal');
  }

  /** Crashes a member now (idle), or at its next Ready at the given point. */
  crash(id: string, point: CrashPoint = 'idle', downTicks = 0): void {
    const m = this.member(id);
    if (!m.node) return;
    if (point === 'idle') this.crashNow(m, 'idle', downTicks);
    else m.armedCrash = { point, downTicks };
  }

  /**
   * Disk loss: the member stops now (if it runs) and its disk is erased, as when its pod is
   * recreated on an emptyDir. It comes back after `downTicks` (0: when restarted) as a fresh
   * member with a new disk identity.
   */
  wipe(id: string, downTicks = 0): void {
    const m = this.member(id);
    if (m.node) this.crashNow(m, 'idle', downTicks);
    else if (downTicks > 0) m.restartAtTick = this.tickNow + downTicks;
    this.eraseDisk(m);
  }

  private eraseDisk(m: Member): void {
    const hadState = m.disk !== undefined;
    m.disk = undefined;
    m.diskTerm = 0;
    m.diskCommit = 0;
    m.diskIdentity++;
    this.ledger.newDisk(m.id, m.diskIdentity, hadState);
    this.stats.wipes++;
    this.log(`${m.id} disk wiped (identity #${m.diskIdentity})`);
  }

  /** Cancels a crash armed for the member's next Ready. */
  disarmCrash(id: string): void {
    this.member(id).armedCrash = undefined;
  }

  restart(id: string): void {
    const m = this.member(id);
    if (m.node) return;
    this.start(id);
    this.stats.restarts++;
    this.drainReady(m);
  }

  campaign(id: string): void {
    this.act(id, 'campaign', (n) => n.campaign());
  }

  forgetLeader(id: string): void {
    this.act(id, 'forgetLeader', (n) => n.forgetLeader());
  }

  transferLeader(id: string, to: string): void {
    this.act(id, `transferLeader ${to}`, (n) => n.transferLeader(to));
  }

  /** Throws PROPOSAL_DROPPED as RawNode does when `id` cannot take the change now. */
  proposeConfChange(id: string, cc: ConfChangeV2): void {
    this.act(id, `confChange ${JSON.stringify(cc)}`, (n) => n.proposeConfChange(cc));
  }

  private act(id: string, what: string, action: (n: RawNode) => void): void {
    const m = this.member(id);
    if (!m.node) return;
    this.log(`${id} ${what}`);
    action(m.node);
    this.afterInput(m);
  }

  // ---- time ----

  /** Runs `n` global ticks: each running member ticks at its clock rate, then the slots until the next tick deliver. */
  runTicks(n: number): void {
    for (let i = 0; i < n; i++) this.step();
  }

  /** Runs until `done()` holds after a tick, or `limit` ticks pass; returns the ticks used or undefined. */
  runUntil(done: () => boolean, limit: number): number | undefined {
    for (let i = 1; i <= limit; i++) {
      this.step();
      if (done()) return i;
    }
    return undefined;
  }

  private step(): void {
    this.tickNow++;
    this.stats.ticks++;
    this.slotNow = this.tickNow * SLOTS_PER_TICK;
    for (const id of this.ids) {
      const m = this.member(id);
      if (!m.node && m.restartAtTick !== undefined && m.restartAtTick <= this.tickNow) this.restart(id);
    }
    for (const id of this.ids) {
      const m = this.member(id);
      if (!m.node) continue;
      // Drifted clocks: a member ticks only when its accumulated rate reaches a whole tick.
      m.clockAccumulator += m.clockEighths;
      if (m.clockAccumulator < CLOCK_EIGHTHS_NOMINAL) continue;
      m.clockAccumulator -= CLOCK_EIGHTHS_NOMINAL;
      if (this.options.trace) this.log(`${id} tick`);
      m.node.tick();
      this.afterInput(m);
    }
    const nextTickSlot = (this.tickNow + 1) * SLOTS_PER_TICK;
    for (;;) {
      const head = this.queue.peek();
      if (!head || head.slot >= nextTickSlot) break;
      this.queue.pop();
      this.slotNow = head.slot;
      this.deliver(head);
    }
  }

  // ---- the driver ----

  private start(id: string): void {
    const m = this.member(id);
    m.incarnation++;
    m.restartAtTick = undefined;
    m.armedCrash = undefined;
    m.clockAccumulator = 0;
    const config = {
      id,
      voters: this.options.initialVoters ? (this.options.initialVoters.includes(id) ? this.options.initialVoters : []) : this.ids,
      electionTick: this.options.electionTick,
      heartbeatTick: this.options.heartbeatTick,
      preVote: this.options.preVote,
      checkQuorum: this.options.checkQuorum,
      restartVoteDelayTicks: this.options.restartVoteDelayTicks,
      freshVoteDelayTicks: this.options.freshVoteDelayTicks ?? 0,
      successorCampaign: this.options.successorCampaign ?? false,
      transferGrantsVote: this.options.transferGrantsVote ?? false,
      random: seededRandom(memberSeed(this.options.seed, m.index, m.incarnation)),
      ...(m.disk ? { restored: cloneDurable(m.disk) } : {}),
    };
    m.node = new RawNode(config);
    m.seenTerm = 0;
    m.seenCommit = 0;
    this.log(`${id} start #${m.incarnation}${m.disk ? ` from t${m.disk.hardState.term} v${m.disk.hardState.vote || '-'} c${m.disk.hardState.commit}` : ''}`);
    this.checkMember(m);
  }

  private crashNow(m: Member, point: CrashPoint, downTicks: number): void {
    m.node = undefined;
    m.armedCrash = undefined;
    this.stats.crashes++;
    if (point === 'afterPersist') this.stats.crashesAfterPersist++;
    if (point === 'beforePersist') this.stats.crashesBeforePersist++;
    m.restartAtTick = downTicks > 0 ? this.tickNow + downTicks : undefined;
    this.log(`${m.id} crash ${point}${downTicks > 0 ? ` down ${downTicks}` : ''}`);
  }

  private afterInput(m: Member): void {
    this.checkMember(m);
    this.drainReady(m);
  }

  /** Persist, then send, then advance, for every Ready; a crash may cut in before or after the write. */
  private drainReady(m: Member): void {
    while (m.node && m.node.hasReady()) {
      const rd: Ready = m.node.ready();
      let crash = m.armedCrash;
      let wipe = false;
      if (crash === undefined && this.faults.crashPerMille > 0 && this.net.nextInt(1000) < this.faults.crashPerMille) {
        const point = this.net.nextInt(2) === 0 ? 'beforePersist' : 'afterPersist';
        crash = { point, downTicks: this.drawDownTicks() };
        // Drawn only when wipes are on, so runs without them keep their random stream.
        const wipePercent = this.faults.wipePercent ?? 0;
        wipe = wipePercent > 0 && this.net.nextInt(100) < wipePercent;
      }
      if (wipe && crash) {
        // The disk is lost with the pod, so where the crash fell in the Ready does not matter.
        this.crashNow(m, 'idle', crash.downTicks);
        this.eraseDisk(m);
        return;
      }
      if (this.options.unsafeSendBeforePersist) {
        for (const msg of rd.messages) this.send(msg);
        if (crash) {
          this.crashNow(m, crash.point, crash.downTicks);
          return;
        }
        if (rd.durableState) this.persist(m, rd.durableState);
        this.applyConfChanges(m, rd);
        m.node.advance(rd);
        this.checkMember(m);
        continue;
      }
      if (crash?.point === 'beforePersist') {
        this.crashNow(m, crash.point, crash.downTicks);
        return;
      }
      if (rd.durableState) this.persist(m, rd.durableState);
      if (crash?.point === 'afterPersist') {
        this.crashNow(m, crash.point, crash.downTicks);
        return;
      }
      for (const msg of rd.messages) this.send(msg);
      this.applyConfChanges(m, rd);
      m.node.advance(rd);
      this.checkMember(m);
    }
  }

  /** The driver applies committed configuration changes in log order, before advance. */
  private applyConfChanges(m: Member, rd: Ready): void {
    for (const e of rd.committedEntries) {
      if (!e.confChange || !m.node) continue;
      this.membership.onApplied(m.id, e.index, m.node.applyConfChange(e.confChange));
    }
  }

  private drawDownTicks(): number {
    return this.faults.maxDownTicks > 0 ? 1 + this.net.nextInt(this.faults.maxDownTicks) : 0;
  }

  private persist(m: Member, ds: DurableState): void {
    const hs = ds.hardState;
    if (hs.term < m.diskTerm) {
      throw this.violation('term-monotonic', `${m.id} wrote term ${hs.term} after it had written ${m.diskTerm}`);
    }
    if (hs.commit < m.diskCommit) {
      throw this.violation('commit-monotonic', `${m.id} wrote commit ${hs.commit} after it had written ${m.diskCommit}`);
    }
    this.ledger.recordWrite(m.id, m.diskIdentity, ds, m.node?.status().ticksSinceStart ?? 0);
    m.disk = cloneDurable(ds);
    m.diskTerm = hs.term;
    m.diskCommit = hs.commit;
    if (this.options.trace) this.log(`${m.id} persist t${hs.term} v${hs.vote || '-'} c${hs.commit} last${ds.entries.length > 0 ? ds.entries[ds.entries.length - 1]!.index : ds.snapshot.index}`);
  }

  private send(msg: Message): void {
    const from = this.member(msg.from);
    if (msg.type === 'MsgVoteResp' && !msg.reject && this.options.checkVoteDurability !== false) {
      // Durability: the granted vote (or a later term) is on disk before the answer leaves.
      const disk = from.disk?.hardState;
      if (!disk || disk.term < msg.term || (disk.term === msg.term && disk.vote !== msg.to)) {
        throw this.violation('vote-durable-before-sent', `${msg.from} sent a vote for ${msg.to} in term ${msg.term} with t${disk?.term ?? 0} v${disk?.vote || '-'} on disk`);
      }
    }
    if (this.faults.dropPercent > 0 && this.net.nextInt(100) < this.faults.dropPercent) {
      this.stats.dropped++;
      if (this.options.trace) this.log(`drop ${describe(msg)}`);
      return;
    }
    // A storm (messages begetting messages faster than they drain) would grow without bound
    // and hang the run; fail it with its seed instead. Healthy schedules stay far below.
    if (this.queue.size > MaxInFlightMessages) {
      throw this.violation('bounded-traffic', `${this.queue.size} messages in flight: a message storm`);
    }
    const copies = this.faults.duplicatePercent > 0 && this.net.nextInt(100) < this.faults.duplicatePercent ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    const link = `${msg.from}>${msg.to}`;
    for (let c = 0; c < copies; c++) {
      const delay = this.faults.maxDelaySlots > 0 ? this.net.nextInt(this.faults.maxDelaySlots + 1) : 0;
      const linkSeq = (this.linkSendSeq.get(link) ?? 0) + 1;
      this.linkSendSeq.set(link, linkSeq);
      // A copy is its own object: the receiver may not share state with the sender.
      this.queue.push({ slot: this.slotNow + 1 + delay, seq: this.seq++, sentSlot: this.slotNow, linkSeq, message: cloneMessage(msg) });
    }
  }

  private deliver(f: InFlight): void {
    const msg = f.message;
    const to = this.members.get(msg.to);
    if (!to) throw this.violation('addressing', `message to unknown member ${msg.to}`);
    if (!to.node || (this.side.get(msg.from) ?? 0) !== (this.side.get(msg.to) ?? 0)) {
      this.stats.cutOff++;
      if (this.options.trace) this.log(`lost ${describe(msg)}${to.node ? ' (partition)' : ' (down)'}`);
      return;
    }
    this.stats.delivered++;
    if (f.slot > f.sentSlot + 1) this.stats.delayed++;
    const link = `${msg.from}>${msg.to}`;
    const lastDelivered = this.linkDeliveredSeq.get(link) ?? 0;
    if (f.linkSeq < lastDelivered) this.stats.reordered++;
    else this.linkDeliveredSeq.set(link, f.linkSeq);
    if (this.options.trace) this.log(`deliver ${describe(msg)} sent@${f.sentSlot}`);
    this.membership.onDelivered(msg);
    to.node.step(msg);
    this.afterInput(to);
  }

  // ---- invariants ----

  private checkMember(m: Member): void {
    const node = m.node;
    if (!node) return;
    const s = node.status();
    if (s.term < m.seenTerm || s.term < m.diskTerm) {
      throw this.violation('term-monotonic', `${m.id} is at term ${s.term} after term ${Math.max(m.seenTerm, m.diskTerm)} (persisted ${m.diskTerm})`);
    }
    if (s.commit < m.seenCommit || s.commit < m.diskCommit) {
      throw this.violation('commit-monotonic', `${m.id} has commit ${s.commit} after ${Math.max(m.seenCommit, m.diskCommit)} (persisted ${m.diskCommit})`);
    }
    m.seenTerm = s.term;
    m.seenCommit = s.commit;
    if (s.term > this.stats.maxTerm) this.stats.maxTerm = s.term;
    if (s.state === 'Leader') {
      const leader = this.leaderByTerm.get(s.term);
      if (leader === undefined) {
        this.leaderByTerm.set(s.term, m.id);
        this.stats.leaders++;
        this.membership.onLeader(m.id, s.term, s.confState);
        this.log(`${m.id} leads term ${s.term}`);
      } else if (leader !== m.id) {
        this.secondLeader(s.term, leader, m.id);
      }
    }
  }

  /** A second leader of `term`: a breach, unless a wiped member's double vote explains it and that is allowed. */
  private secondLeader(term: number, first: string, second: string): void {
    if (this.doubleLeaders.some((d) => d.term === term && d.second === second)) return;
    const witness = this.options.allowWipedDoubleVotes ? this.ledger.doubleVoteWitness(term, first, second, this.ids.map((id) => this.member(id))) : undefined;
    if (!witness) {
      const why = this.options.allowWipedDoubleVotes ? ' (no member voted for both under two disk identities)' : '';
      throw this.violation('one-leader-per-term', `${second} became leader of term ${term}, which ${first} already led${why}`);
    }
    this.doubleLeaders.push({ term, first, second, ...witness, tick: this.tickNow });
    this.stats.doubleLeaderTerms++;
    this.log(`${second} leads term ${term} too (${witness.voter} voted for ${first} on disk #${witness.firstDisk}, for ${second} on disk #${witness.secondDisk})`);
  }

  private violation(invariant: string, text: string): SimViolation {
    return new SimViolation(invariant, `tick ${this.tickNow} (slot ${this.slotNow}), seed ${this.options.seed}: ${text}`);
  }

  private log(line: string): void {
    if (this.options.trace) this.trace.push(`${this.slotNow}: ${line}`);
  }

  private member(id: string): Member {
    const m = this.members.get(id);
    if (!m) throw new Error(`unknown member ${id}`);
    return m;
  }
}

function cloneDurable(ds: DurableState): DurableState {
  return {
    hardState: { ...ds.hardState },
    snapshot: { ...ds.snapshot },
    ...(ds.confState ? { confState: copyConfState(ds.confState) } : {}),
    entries: ds.entries.map(copyEntry),
  };
}

function cloneMessage(m: Message): Message {
  const copy: Message = { ...m, entries: m.entries.map(copyEntry) };
  if (m.confState) copy.confState = copyConfState(m.confState);
  if (m.snapshot) copy.snapshot = { ...m.snapshot };
  return copy;
}
