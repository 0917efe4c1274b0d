/**
 * A member whose synced writes run off the event loop (StateStore.saveInBackground, as the state
 * file does): what depends on a write leaves only once it lands, the member stops claiming the
 * moment it hands over, and stop() waits for the write under way.
 */
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { makeMessage, seededRandom } from '../raft/index.js';
import { type BackgroundSync, Bus, MemoryStore } from '../test/harness/member-bus.js';
import { RaftMember } from './member.js';

const Ids = ['a', 'b', 'c'];
const silent = pino({ level: 'silent' });

/** `syncs`: each member's background syncs; a member without one writes synchronously. */
function makeGroup(seed: number, syncs: Partial<Record<string, BackgroundSync>>) {
  const bus = new Bus();
  const stores = new Map(Ids.map((id) => [id, new MemoryStore(id, bus, syncs[id])]));
  const fatal: unknown[] = [];
  const members = new Map(
    Ids.map((id, i) => [
      id,
      new RaftMember({
        id,
        bootstrap: { voters: Ids },
        tickMs: 100,
        electionTicks: 10,
        heartbeatTicks: 1,
        maxClockDriftMs: 100,
        store: stores.get(id)!,
        logger: silent,
        random: seededRandom(seed * 100 + i),
        monotonicNowMs: () => Date.now(),
        onFatal: (err) => fatal.push(err),
        createTransport: (events) => bus.transport(id, Ids.filter((p) => p !== id), events),
      }),
    ]),
  );
  const claimers = () => [...members.values()].filter((m) => m.view().isLeader).map((m) => m.id);
  /** Advances fake time in 1 ms steps until `done`, failing on two claimers at any step. */
  const runUntil = async (what: string, done: () => boolean, limitMs: number): Promise<void> => {
    for (let t = 0; !done(); t++) {
      if (t >= limitMs) throw new Error(`${what}: not within ${limitMs} ms of simulated time`);
      await vi.advanceTimersByTimeAsync(1);
      expect(claimers().length, `two claim isLeader at ${Date.now()}: ${claimers().join(', ')}`).toBeLessThanOrEqual(1);
    }
  };
  const sent = (from: string, prefix: string) => bus.trace.filter((t) => t.event === 'send' && t.member === from && t.detail.startsWith(prefix));
  /** stop() waits for the syncs under way: time moves on until all are stopped. */
  const stopAll = async (): Promise<void> => {
    const stopped = Promise.all([...members.values()].map((m) => m.stop()));
    for (const s of stores.values()) if (s.syncPending) s.finishSync();
    await stopped;
  };
  return { bus, stores, members, fatal, claimers, runUntil, sent, stopAll };
}

/** Syncs of `ms`, or held until the test finishes them (MemoryStore.finishSync) while `held` is set. */
function sync(ms: number): BackgroundSync & { held: boolean } {
  const s = { held: false, delayMs: () => (s.held ? 1e9 : ms), keptOnKill: () => false };
  return s;
}

describe('a member with its synced writes off the event loop', () => {
  const seed = Number(process.env.MEMBER_TEST_SEED ?? 7);
  beforeEach(() => {
    console.log(`member background-sync test seed ${seed} (replay: MEMBER_TEST_SEED=${seed})`);
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => vi.useRealTimers());

  it('elects a leader, and no vote response leaves before the write of its term lands', async () => {
    const g = makeGroup(seed, { a: sync(4), b: sync(4), c: sync(4) });
    for (const m of g.members.values()) await m.start();
    await g.runUntil('a claimer', () => g.claimers().length === 1, 3_000);
    const responses = g.bus.trace.filter((t) => t.event === 'send' && t.detail.startsWith('MsgVoteResp'));
    expect(responses.length).toBeGreaterThan(0);
    for (const r of responses) {
      const term = Number(/@(\d+)$/.exec(r.detail)![1]);
      const savedBefore = g.bus.trace
        .slice(0, g.bus.trace.indexOf(r))
        .some((t) => t.event === 'save' && t.member === r.member && t.detail.startsWith(`term=${term} `));
      expect(savedBefore, `${r.member} sent ${r.detail} before its term ${term} landed`).toBe(true);
    }
    await g.stopAll();
  });

  it('a vote waits for its write while the member answers on; stop() waits for the write too', async () => {
    const bSync = sync(2);
    const g = makeGroup(seed, { b: bSync });
    for (const m of g.members.values()) await m.start();
    await g.runUntil('a claimer', () => g.claimers().length === 1, 3_000);
    if (g.claimers()[0] === 'b') {
      await g.members.get('b')!.transferLeadership('a');
      await g.runUntil('a claiming', () => g.members.get('a')!.view().isLeader, 3_000);
    }
    const leader = g.claimers()[0]!;
    const candidate = Ids.find((id) => id !== 'b' && id !== leader)!;
    const b = g.members.get('b')!;
    const bStore = g.stores.get('b')!;
    await g.runUntil("b's last write", () => !bStore.syncPending, 100);
    bSync.held = true;
    const before = b.view().term;
    // The candidate's transfer election asks b for its vote in the next term.
    void g.members.get(leader)!.transferLeadership(candidate);
    await g.runUntil("b's write of the new term under way", () => bStore.syncPending, 100);
    await vi.advanceTimersByTimeAsync(50);
    expect(g.sent('b', `MsgVoteResp->${candidate}@${before + 1}`)).toEqual([]);
    // The term shown is the one on disk.
    expect(b.view()).toMatchObject({ term: before, isLeader: false });
    bStore.finishSync();
    // Synchronous: the write's completion sends what waited for it.
    expect(g.sent('b', `MsgVoteResp->${candidate}@${before + 1}`)).toHaveLength(1);
    expect(b.view().term).toBe(before + 1);

    await g.runUntil('the next write of b', () => bStore.syncPending, 3_000);
    let stopped = false;
    const stopping = b.stop().then(() => (stopped = true));
    await vi.advanceTimersByTimeAsync(100);
    expect(stopped).toBe(false);
    bStore.finishSync();
    await stopping;
    expect(stopped).toBe(true);
    await g.stopAll();
  });

  it('a leader handing over on a forwarded request stops claiming as MsgTimeoutNow leaves, before its step-down lands', async () => {
    const syncs = { a: sync(3), b: sync(3), c: sync(3) };
    const g = makeGroup(seed, syncs);
    for (const m of g.members.values()) await m.start();
    await g.runUntil('a claimer', () => g.claimers().length === 1, 3_000);
    // Every follower caught up: raft hands over at once (not after an append round).
    await vi.advanceTimersByTimeAsync(500);
    const leader = g.claimers()[0]!;
    const target = Ids.find((id) => id !== leader)!;
    await g.runUntil("the leader's last write", () => !g.stores.get(leader)!.syncPending, 100);
    syncs[leader as 'a' | 'b' | 'c'].held = true;
    // As a follower forwards a transfer request (raft's MsgTransferLeader, from the transferee).
    const term = g.members.get(leader)!.view().term;
    g.bus.endpoints.get(leader)!.onMessage(makeMessage({ type: 'MsgTransferLeader', from: target, to: leader, term }));
    expect(g.sent(leader, `MsgTimeoutNow->${target}`)).toHaveLength(1);
    // Its write of the next term (with its vote for the target) is still under way.
    expect(g.stores.get(leader)!.syncPending).toBe(true);
    expect(g.members.get(leader)!.view().isLeader).toBe(false);
    await g.runUntil(`${target} claiming`, () => g.members.get(target)!.view().isLeader, 2_000);
    // Still under way: the old leader shows its old term, and claims nothing.
    expect(g.stores.get(leader)!.syncPending).toBe(true);
    expect(g.members.get(leader)!.view().isLeader).toBe(false);
    await g.stopAll();
  });

  it('a store that throws as the write starts stops the member, and stop() still returns', async () => {
    const g = makeGroup(seed, { b: sync(3) });
    for (const m of g.members.values()) await m.start();
    await g.runUntil('a claimer', () => g.claimers().length === 1, 3_000);
    const store = g.stores.get('b')! as { saveInBackground?: unknown };
    Object.defineProperty(store, 'saveInBackground', {
      value: () => {
        throw new Error('EBADF: bad file descriptor');
      },
    });
    const leader = g.claimers()[0]!;
    const candidate = Ids.find((id) => id !== 'b' && id !== leader);
    if (leader === 'b') await g.members.get('b')!.transferLeadership();
    else void g.members.get(leader)!.transferLeadership(candidate);
    await g.runUntil('b failing', () => g.fatal.length > 0, 3_000);
    expect(String(g.fatal[0])).toMatch(/EBADF/);
    await g.stopAll();
  });

  it('a failed background write stops the member before the vote it would have promised leaves', async () => {
    const g = makeGroup(seed, { b: sync(3), c: sync(3) });
    for (const m of g.members.values()) await m.start();
    await g.runUntil('a claimer', () => g.claimers().length === 1, 3_000);
    g.stores.get('b')!.failWrites = true;
    const voteRespBefore = g.sent('b', 'MsgVoteResp').length;
    const candidate = Ids.find((id) => id !== 'b' && !g.members.get(id)!.view().isLeader)!;
    g.members.get(candidate)!.campaign();
    await g.runUntil('b failing', () => g.fatal.length > 0, 3_000);
    expect(g.fatal[0]).toMatchObject({ code: 'STATE_FILE_WRITE_FAILED' });
    expect(g.sent('b', 'MsgVoteResp')).toHaveLength(voteRespBefore);
    expect(g.members.get('b')!.view().isLeader).toBe(false);
    await g.stopAll();
  });
});
