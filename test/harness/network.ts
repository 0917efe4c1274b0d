import {
  RawNode,
  seededRandom,
  type ConfState,
  type DurableState,
  type Entry,
  type Message,
  type MessageType,
  type RaftConfig,
  type RandomSource,
  type Status,
} from '../../raft/index.js';
import { Raft } from '../../raft/raft.js';

/**
 * A random source that always draws `offset` (capped below the bound), so the
 * randomized election timeout is exactly `electionTick + offset`: etcd's
 * setRandomizedElectionTimeout, expressed as an input instead of a poke.
 */
export function fixedRandom(offset: number): RandomSource {
  return { nextInt: (maxExclusive: number) => Math.min(offset, maxExclusive - 1) };
}

/** A persisted state with the given hard state and a log whose entry i+1 has term `entryTerms[i]`. */
export function durableState(term: number, vote: string, entryTerms: number[] = [], commit = 0): DurableState {
  const entries: Entry[] = entryTerms.map((t, i) => ({ index: i + 1, term: t }));
  return { hardState: { term, vote, commit }, snapshot: { index: 0, term: 0 }, entries };
}

/** A bare state machine for unit scenarios (etcd's newTestRaft): electionTick 10, heartbeatTick 1. */
/** etcd's newTestConfig: 10-tick elections, 1-tick heartbeats, no PreVote or CheckQuorum. */
export function testConfig(id: string, voters: string[], overrides: Partial<RaftConfig> = {}): RaftConfig {
  return {
    id,
    voters,
    electionTick: 10,
    heartbeatTick: 1,
    preVote: false,
    checkQuorum: false,
    random: fixedRandom(0),
    ...overrides,
  };
}

export function newTestRaft(id: string, voters: string[], overrides: Partial<RaftConfig> = {}): Raft {
  return new Raft(testConfig(id, voters, overrides));
}

/**
 * Steps the self-addressed responses held for persistence, then returns and
 * clears every message to peers (etcd's readMessages: storage is taken as synced).
 */
export function readMessages(r: Raft): Message[] {
  for (;;) {
    const held = r.msgsAfterAppend;
    if (held.length === 0) break;
    r.msgsAfterAppend = [];
    for (const m of held) {
      if (m.to === r.id) r.step(m);
      else r.msgs.push(m);
    }
  }
  const out = r.msgs;
  r.msgs = [];
  return out;
}

export interface NetworkOptions {
  electionTick?: number;
  heartbeatTick?: number;
  preVote?: boolean;
  checkQuorum?: boolean;
  learners?: string[];
  /** Seed of the per-member random sources (each member gets seed + its position). */
  seed?: number;
  /** Members that exist in the configuration but never run (etcd's nil peers). */
  down?: string[];
  /** Extra per-member config (vote delays, ...). */
  configure?: (id: string) => Partial<RaftConfig>;
}

/**
 * A synchronous in-process network in the style of etcd-raft's test `network`:
 * `send` delivers messages, and every message they cause, until the queue is empty.
 * Members persist into `storage` exactly as a driver would (state, then send, then advance).
 */
export class TestNetwork {
  readonly ids: string[];
  readonly voters: string[];
  readonly learners: string[];
  readonly nodes = new Map<string, RawNode>();
  readonly storage = new Map<string, DurableState>();
  /** Every message that was delivered, in order, for assertions on traffic. */
  readonly delivered: Message[] = [];
  /** Every configuration change applied, by member and entry index, in order. */
  readonly applied: { id: string; index: number; confState: ConfState }[] = [];
  private readonly dropped = new Set<string>();
  private readonly ignored = new Set<MessageType>();
  private readonly options: Required<Omit<NetworkOptions, 'configure' | 'down' | 'learners'>> & NetworkOptions;
  private readonly starts = new Map<string, number>();
  /** Members started outside the configuration: they learn it from the leader. */
  private readonly joiners = new Set<string>();

  constructor(voters: string[], options: NetworkOptions = {}) {
    this.voters = [...voters].sort();
    this.learners = [...(options.learners ?? [])].sort();
    this.ids = [...this.voters, ...this.learners].sort();
    this.options = {
      electionTick: 10,
      heartbeatTick: 1,
      preVote: false,
      checkQuorum: false,
      seed: 1,
      ...options,
    };
    for (const id of this.ids) {
      if (options.down?.includes(id)) continue;
      this.start(id);
    }
  }

  private configFor(id: string, restored: DurableState | undefined): RaftConfig {
    const n = (this.starts.get(id) ?? 0) + 1;
    this.starts.set(id, n);
    const position = this.ids.indexOf(id);
    const config: RaftConfig = {
      id,
      voters: this.joiners.has(id) ? [] : this.voters,
      learners: this.joiners.has(id) ? [] : this.learners,
      electionTick: this.options.electionTick,
      heartbeatTick: this.options.heartbeatTick,
      preVote: this.options.preVote,
      checkQuorum: this.options.checkQuorum,
      random: seededRandom(this.options.seed * 1000 + position * 17 + n * 7919),
      ...this.options.configure?.(id),
    };
    if (restored) config.restored = structuredClone(restored);
    return config;
  }

  /** Starts (or restarts) a member from whatever it persisted. */
  start(id: string): RawNode {
    const node = new RawNode(this.configFor(id, this.storage.get(id)));
    this.nodes.set(id, node);
    return node;
  }

  /**
   * Starts a new member with an empty configuration (a pod joining a running group): it is
   * not promotable until a committed conf change, or a snapshot, makes it a voter.
   */
  join(id: string): RawNode {
    if (!this.ids.includes(id)) {
      this.ids.push(id);
      this.ids.sort();
    }
    this.joiners.add(id);
    return this.start(id);
  }

  /** Stops a member abruptly: only what it persisted survives. */
  crash(id: string): void {
    this.nodes.delete(id);
  }

  /** Stops a member and forgets its disk too (a pod on an emptyDir). */
  wipe(id: string): void {
    this.nodes.delete(id);
    this.storage.delete(id);
  }

  restart(id: string): RawNode {
    this.crash(id);
    return this.start(id);
  }

  node(id: string): RawNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`member ${id} is not running`);
    return n;
  }

  status(id: string): Status {
    return this.node(id).status();
  }

  /** Persist, collect the messages, advance: the driver contract. */
  drain(id: string): Message[] {
    const node = this.nodes.get(id);
    if (!node) return [];
    const out: Message[] = [];
    while (node.hasReady()) {
      const rd = node.ready();
      if (rd.durableState) this.storage.set(id, structuredClone(rd.durableState));
      out.push(...rd.messages);
      // The driver applies committed configuration changes, in log order, before advancing.
      for (const e of rd.committedEntries) {
        if (e.confChange) {
          const cs = node.applyConfChange(e.confChange);
          this.applied.push({ id, index: e.index, confState: cs });
        }
      }
      node.advance(rd);
    }
    return out;
  }

  /** Delivers the messages and everything they cause until the network is quiet. */
  send(...msgs: Message[]): void {
    const queue = [...msgs];
    let budget = 100_000;
    while (queue.length > 0) {
      if (--budget === 0) throw new Error('message storm: network did not settle');
      const m = queue.shift()!;
      if (this.isDropped(m)) continue;
      const node = this.nodes.get(m.to);
      if (!node) continue;
      this.delivered.push(m);
      node.step(m);
      queue.push(...this.drain(m.to));
    }
  }

  /** Runs an action on a member and delivers what it causes. */
  act(id: string, action: (node: RawNode) => void): void {
    action(this.node(id));
    this.send(...this.drain(id));
  }

  campaign(id: string): void {
    this.act(id, (n) => n.campaign());
  }

  tick(id: string, times = 1): void {
    for (let i = 0; i < times; i++) this.act(id, (n) => n.tick());
  }

  /** Ticks every running member once per round, in sorted order, delivering after each. */
  tickAll(rounds = 1): void {
    for (let r = 0; r < rounds; r++) {
      for (const id of this.ids) if (this.nodes.has(id)) this.tick(id);
    }
  }

  private isDropped(m: Message): boolean {
    return this.ignored.has(m.type) || this.dropped.has(`${m.from}->${m.to}`);
  }

  cut(a: string, b: string): void {
    this.dropped.add(`${a}->${b}`);
    this.dropped.add(`${b}->${a}`);
  }

  /** Cuts one member off from everyone else. */
  isolate(id: string): void {
    for (const other of this.ids) if (other !== id) this.cut(id, other);
  }

  /** Splits the members into groups that cannot reach each other. */
  partition(...groups: string[][]): void {
    for (const g of groups) for (const h of groups) if (g !== h) for (const a of g) for (const b of h) this.cut(a, b);
  }

  dropOneWay(from: string, to: string): void {
    this.dropped.add(`${from}->${to}`);
  }

  ignore(type: MessageType): void {
    this.ignored.add(type);
  }

  recover(): void {
    this.dropped.clear();
    this.ignored.clear();
  }

  /** The members that believe they lead, with their terms. */
  leaders(): { id: string; term: number }[] {
    const out: { id: string; term: number }[] = [];
    for (const id of this.ids) {
      const n = this.nodes.get(id);
      if (!n) continue;
      const s = n.status();
      if (s.state === 'Leader') out.push({ id, term: s.term });
    }
    return out;
  }
}
