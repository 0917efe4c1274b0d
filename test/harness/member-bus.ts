import type { DurableState, Message } from '../../raft/index.js';
import { ClusterError } from '../../cluster/errors.js';
import type { PeerInfo, PeerTiming, PeerTimingRecord, PeerTransport, StateStore, TransportEvents } from '../../cluster/interfaces.js';

/**
 * An in-memory network for RaftMembers under fake timers: delivery is asynchronous (a
 * microtask, or a timer when `delayMs` says so), and links can be cut.
 */
/** Three members in steady state keep a handful in flight; tens of thousands is a storm. */
const MaxInFlight = 20_000;

/** The timing the members of the unit tests run with (100 ms ticks, 10 election ticks). */
export const DefaultBusTiming: PeerTiming = { tickMs: 100, electionTicks: 10, maxClockDriftMs: 100 };

export class Bus {
  readonly endpoints = new Map<string, TransportEvents>();
  /** What each started endpoint announces, as the real transport does in its handshake. */
  readonly timings = new Map<string, PeerTiming>();
  /** What each announces of its timing record; absent: none, as an older member. */
  private readonly records = new Map<string, () => PeerTimingRecord>();
  private readonly cut = new Set<string>();
  readonly trace: { event: 'send' | 'save'; member: string; detail: string }[] = [];
  /** Per-message delivery delay in ms (0: next microtask). */
  delayMs: (m: Message) => number = () => 0;
  /** Keep the trace (unit tests read it); long simulations switch it off. */
  tracing = true;
  private inFlight = 0;

  transport(
    self: string,
    peers: string[],
    events: TransportEvents,
    timing: PeerTiming = DefaultBusTiming,
    timingRecord?: () => PeerTimingRecord,
  ): PeerTransport {
    return {
      start: async () => {
        this.endpoints.set(self, events);
        this.timings.set(self, { ...timing });
        if (timingRecord) this.records.set(self, timingRecord);
        // A new link each way: both sides learn the other's timing before any message.
        for (const peer of [...peers].sort()) {
          const theirs = this.timings.get(peer);
          const their = this.endpoints.get(peer);
          if (theirs === undefined || their === undefined) continue;
          events.onPeerTiming?.(peer, { ...theirs }, this.records.get(peer)?.());
          their.onPeerTiming?.(self, { ...timing }, timingRecord?.());
        }
      },
      send: (m: Message) => {
        if (this.tracing) this.trace.push({ event: 'send', member: self, detail: `${m.type}->${m.to}@${m.term}` });
        if (this.cut.has(`${self}->${m.to}`)) return;
        // A storm would queue microtasks without end and hang the test: fail loudly instead.
        if (this.inFlight >= MaxInFlight) throw new Error(`message storm on the in-memory bus: ${this.inFlight} in flight`);
        this.inFlight++;
        const copy = structuredClone(m);
        // A link cut while the message was in flight loses it, as a closed socket would.
        const deliver = () => {
          this.inFlight--;
          if (!this.cut.has(`${self}->${m.to}`)) this.endpoints.get(m.to)?.onMessage(copy);
        };
        const delay = this.delayMs(m);
        if (delay <= 0) queueMicrotask(deliver);
        else setTimeout(deliver, delay);
      },
      setPeerAddress: () => undefined,
      peers: (): PeerInfo[] =>
        peers.map((id) => ({ id, address: `mem:${id}`, connected: this.endpoints.has(id) && !this.cut.has(`${self}->${id}`) })),
      close: async () => {
        this.endpoints.delete(self);
        this.timings.delete(self);
        this.records.delete(self);
      },
    };
  }

  isolate(id: string, ids: string[]): void {
    for (const other of ids) {
      if (other === id) continue;
      this.cut.add(`${id}->${other}`);
      this.cut.add(`${other}->${id}`);
    }
  }

  /** Cuts both directions of one link (a partial partition); heal() restores it. */
  cutLink(x: string, y: string): void {
    this.cut.add(`${x}->${y}`);
    this.cut.add(`${y}->${x}`);
  }

  heal(): void {
    this.cut.clear();
  }

  /** What the others' transports report when a member's process dies: its links close. */
  crash(id: string): void {
    this.endpoints.delete(id);
    this.timings.delete(id);
    this.records.delete(id);
    for (const [other, events] of this.endpoints) if (other !== id) events.onPeerConnectionChange?.(id, false);
  }
}

/** How a MemoryStore's background syncs behave: how long each takes, and whether a kill keeps it. */
export interface BackgroundSync {
  delayMs(): number;
  /** The process dies mid-sync: true if the written slot survives (it reached the page cache). */
  keptOnKill(): boolean;
}

export class MemoryStore implements StateStore {
  state: DurableState | undefined;
  corrupt = false;
  failWrites = false;
  /** Present only with a BackgroundSync: members then sync off the event loop, as with the state file. */
  readonly saveInBackground?: (state: DurableState, done: (err: Error | undefined) => void) => void;
  private pending: { timer: ReturnType<typeof setTimeout>; state: DurableState; done: (err: Error | undefined) => void } | undefined;
  constructor(
    private readonly id: string,
    private readonly bus: Bus,
    private readonly sync?: BackgroundSync,
  ) {
    if (sync) this.saveInBackground = (state, done) => this.startSync(state, done, sync);
  }
  load(): DurableState | undefined {
    if (this.corrupt) throw new ClusterError('STATE_FILE_CORRUPT', `/data/${this.id}/raft-state.json: checksum mismatch`);
    return this.state ? structuredClone(this.state) : undefined;
  }
  save(state: DurableState): void {
    if (this.failWrites) throw new ClusterError('STATE_FILE_WRITE_FAILED', `/data/${this.id}/raft-state.json: ENOSPC`);
    if (this.bus.tracing) this.bus.trace.push({ event: 'save', member: this.id, detail: `term=${state.hardState.term} vote=${state.hardState.vote}` });
    this.state = structuredClone(state);
  }

  /** The process dies: a sync under way ends with an error (nothing of its Ready leaves), its state kept or lost. */
  kill(): void {
    const p = this.pending;
    if (!p) return;
    clearTimeout(p.timer);
    this.pending = undefined;
    // A failing disk keeps nothing.
    if (this.sync!.keptOnKill() && !this.failWrites) this.save(p.state);
    p.done(new ClusterError('STATE_FILE_WRITE_FAILED', `/data/${this.id}/raft-state.json: the process was killed during the sync`));
  }

  private startSync(state: DurableState, done: (err: Error | undefined) => void, sync: BackgroundSync): void {
    // The contract members keep: one at a time.
    if (this.pending) throw new Error(`${this.id}: a second background save before the first was done`);
    if (this.failWrites) {
      const err = new ClusterError('STATE_FILE_WRITE_FAILED', `/data/${this.id}/raft-state.json: ENOSPC`);
      queueMicrotask(() => done(err));
      return;
    }
    // Lands when the sync is done: a kill before that may lose it.
    const copy = structuredClone(state);
    const timer = setTimeout(() => this.finishSync(), sync.delayMs());
    this.pending = { timer, state: copy, done };
  }

  get syncPending(): boolean {
    return this.pending !== undefined;
  }

  /** The sync under way completes now (the state lands, then `done`). */
  finishSync(): void {
    const p = this.pending;
    if (!p) throw new Error(`${this.id}: no sync under way`);
    clearTimeout(p.timer);
    this.pending = undefined;
    try {
      this.save(p.state);
    } catch (err) {
      p.done(err as Error);
      return;
    }
    p.done(undefined);
  }
}
