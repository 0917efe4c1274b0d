/**
 * A start-up warm-up of the election path. A handover runs code that an idle member never runs
 * (campaign, vote, transfer, becoming leader, the first append), so in a process that has not
 * been through one V8 runs it cold: compiled lazily on first call, with no inline-cache feedback
 * yet. That cost lands on the handover itself (docs/benchmarks.md). Before the real member
 * starts, a throwaway group of three RaftMembers in this process, on a fake clock and an
 * in-memory network that carries every message through the real codec and frame sealing (a
 * throwaway key), elects a leader and hands over a few times, the last one by shutdown().
 * It touches nothing of the real group: no sockets, no files, no shared state.
 */
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { seededRandom, type DurableState, type Message } from '../raft/index.js';
import { decodeFrame, encodeMessage } from './codec.js';
import { deriveLinkKeys, FrameOpener, FrameSealer } from './frame-auth.js';
import type { PeerInfo, PeerTiming, PeerTransport, StateStore, TransportEvents } from './interfaces.js';
import { RaftMember } from './member.js';
import type { MemberTimers } from './member-options.js';
import { encodeSlot, slotBuffer, slotBytesFor } from './state-format.js';

export interface WarmUpOptions {
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
  maxClockDriftMs: number;
  /** Handovers after the first election (default 4); the last one is a shutdown(). */
  handovers?: number;
}

export interface WarmUpResult {
  /** Leader changes the throwaway group went through (the first election counts). */
  leaderChanges: number;
  /** Messages carried through codec and sealing. */
  messages: number;
}

const Ids = ['warm-up-1', 'warm-up-2', 'warm-up-3'];
const Cluster = 'warm-up';
/** Fake time the group may take for its first election or a handover (a randomized timeout runs to 2 election timeouts), before the warm-up gives up. */
const stepLimitTicks = (electionTicks: number): number => 4 * electionTicks + 20;

/** Timers on the fake clock: fired by advance(), in deadline order. */
class FakeClock implements MemberTimers {
  nowMs = 0;
  private nextId = 1;
  private readonly pending = new Map<number, { atMs: number; callback: () => void }>();

  setTimeout(callback: () => void, delayMs: number): NodeJS.Timeout {
    const id = this.nextId++;
    this.pending.set(id, { atMs: this.nowMs + Math.max(0, delayMs), callback });
    // MemberTimers hands back Node's handle type; the member only passes it to clearTimeout.
    return id as unknown as NodeJS.Timeout;
  }

  clearTimeout(handle: NodeJS.Timeout): void {
    this.pending.delete(handle as unknown as number);
  }

  /** Fires every timer due by nowMs + ms, running `between` after each. */
  advance(ms: number, between: () => void): void {
    const until = this.nowMs + ms;
    for (;;) {
      let next: [number, { atMs: number; callback: () => void }] | undefined;
      for (const entry of this.pending) if (entry[1].atMs <= until && (!next || entry[1].atMs < next[1].atMs)) next = entry;
      if (!next) break;
      this.pending.delete(next[0]);
      this.nowMs = Math.max(this.nowMs, next[1].atMs);
      next[1].callback();
      between();
    }
    this.nowMs = until;
  }
}

/** Queued delivery (never inside the sender's Ready), through encode, seal, open and decode. */
class WarmUpNetwork {
  private readonly endpoints = new Map<string, TransportEvents>();
  private readonly queue: { from: string; frame: string; to: string }[] = [];
  private readonly sealers = new Map<string, FrameSealer>();
  private readonly openers = new Map<string, FrameOpener>();
  messages = 0;

  constructor(private readonly timing: PeerTiming) {
    const secret = randomBytes(32);
    for (const dialer of Ids) {
      for (const acceptor of Ids) {
        if (dialer >= acceptor) continue;
        const input = { cluster: Cluster, dialer, acceptor, dialerNonce: 'warm-up-d', acceptorNonce: 'warm-up-a' };
        const d = deriveLinkKeys(secret, 'dialer', input);
        const a = deriveLinkKeys(secret, 'acceptor', input);
        this.sealers.set(`${dialer}>${acceptor}`, new FrameSealer(d.send));
        this.openers.set(`${dialer}>${acceptor}`, new FrameOpener(a.receive));
        this.sealers.set(`${acceptor}>${dialer}`, new FrameSealer(a.send));
        this.openers.set(`${acceptor}>${dialer}`, new FrameOpener(d.receive));
      }
    }
  }

  transport(self: string, events: TransportEvents): PeerTransport {
    const peers = Ids.filter((id) => id !== self);
    return {
      start: async () => {
        this.endpoints.set(self, events);
        for (const peer of peers) {
          const theirs = this.endpoints.get(peer);
          if (!theirs) continue;
          events.onPeerTiming?.(peer, { ...this.timing });
          events.onPeerConnectionChange?.(peer, true);
          theirs.onPeerTiming?.(self, { ...this.timing });
          theirs.onPeerConnectionChange?.(self, true);
        }
      },
      send: (m: Message) => {
        const link = `${self}>${m.to}`;
        const sealer = this.sealers.get(link);
        if (!sealer || !this.endpoints.has(m.to)) return;
        this.queue.push({ from: self, to: m.to, frame: sealer.seal('m', encodeMessage(m, Cluster)) });
      },
      setPeerAddress: () => undefined,
      peers: (): PeerInfo[] => peers.map((id) => ({ id, address: null, connected: this.endpoints.has(id) && this.endpoints.has(self) })),
      close: async () => {
        this.endpoints.delete(self);
        for (const peer of peers) this.endpoints.get(peer)?.onPeerConnectionChange?.(self, false);
      },
    };
  }

  /** Delivers until nothing is in flight (responses included). */
  drain(): void {
    for (let item = this.queue.shift(); item; item = this.queue.shift()) {
      const to = this.endpoints.get(item.to);
      if (!to) continue;
      const { payload } = this.openers.get(`${item.from}>${item.to}`)!.open(item.frame);
      this.messages++;
      to.onMessage(decodeFrame(payload, { clusterName: Cluster, maxFrameBytes: 64 * 1024 }));
    }
  }
}

/** Synced writes of the throwaway group, done when the drive loop says (the thread pool's part). */
class WarmUpDisk {
  private readonly done: (() => void)[] = [];
  add(complete: () => void): void {
    this.done.push(complete);
  }
  get pending(): boolean {
    return this.done.length > 0;
  }
  completeAll(): void {
    for (let next = this.done.shift(); next; next = this.done.shift()) next();
  }
}

/** Keeps the state in memory, formatted as the state file would write it; syncs in the background as it does. */
class WarmUpStore implements StateStore {
  private state: DurableState | undefined;
  private seq = 0;
  constructor(
    private readonly id: string,
    private readonly disk: WarmUpDisk,
  ) {}
  load(): DurableState | undefined {
    return this.state;
  }
  save(state: DurableState): void {
    const line = encodeSlot(++this.seq, state, { memberId: this.id, group: Cluster });
    slotBuffer(line, slotBytesFor(Buffer.byteLength(line, 'utf8')));
    this.state = state;
  }
  saveInBackground(state: DurableState, done: (err: Error | undefined) => void): void {
    this.save(state);
    this.disk.add(() => done(undefined));
  }
}

/** Runs the throwaway group to completion (fake time: a few ms of real CPU). Throws if it never elects. */
export async function warmUpElectionPath(options: WarmUpOptions): Promise<WarmUpResult> {
  const clock = new FakeClock();
  const timing: PeerTiming = { tickMs: options.tickMs, electionTicks: options.electionTicks, maxClockDriftMs: options.maxClockDriftMs };
  const net = new WarmUpNetwork(timing);
  const disk = new WarmUpDisk();
  const silent = pino({ level: 'silent' });
  const members = Ids.map(
    (id, i) =>
      new RaftMember({
        id,
        bootstrap: { voters: Ids },
        tickMs: options.tickMs,
        electionTicks: options.electionTicks,
        heartbeatTicks: options.heartbeatTicks,
        maxClockDriftMs: options.maxClockDriftMs,
        store: new WarmUpStore(id, disk),
        logger: silent,
        random: seededRandom(i + 1),
        monotonicNowMs: () => clock.nowMs,
        timers: clock,
        wallClock: () => new Date(0),
        createTransport: (events) => net.transport(id, events),
      }),
  );
  let leaderChanges = 0;
  let lastLeader: string | null = null;
  const drain = (): void => {
    do {
      disk.completeAll();
      net.drain();
    } while (disk.pending);
    const leader = members.find((m) => m.view().role === 'Leader')?.id ?? null;
    if (leader !== null && leader !== lastLeader) leaderChanges++;
    lastLeader = leader ?? lastLeader;
  };
  const runUntil = async (done: () => boolean, what: string): Promise<void> => {
    const limitTicks = stepLimitTicks(options.electionTicks);
    for (let tick = 0; !done(); tick++) {
      if (tick >= limitTicks) throw new Error(`warm-up: no ${what} within ${limitTicks} ticks of fake time`);
      clock.advance(options.tickMs, drain);
      // Promise callbacks (a transfer's resolution) run between fake ticks.
      await Promise.resolve();
    }
  };
  for (const m of members) await m.start();
  drain();
  try {
    const claimed = (): RaftMember | undefined => members.find((m) => m.view().isLeader);
    await runUntil(() => claimed() !== undefined, 'leader');
    const handovers = options.handovers ?? 4;
    for (let i = 0; i < handovers; i++) {
      const leader = claimed()!;
      const last = i === handovers - 1;
      let done = false;
      // The old leader's SIGTERM path is shutdown(): transfer, wait for the successor, stop.
      void (last ? leader.shutdown() : leader.transferLeadership()).then(() => (done = true));
      drain();
      await runUntil(() => done && (last || claimed() !== undefined), 'handover');
    }
  } finally {
    // stop() waits for a write under way, which only the drive loop completes.
    const stopped = Promise.all(members.map((m) => m.stop()));
    disk.completeAll();
    await stopped;
  }
  return { leaderChanges, messages: net.messages };
}
