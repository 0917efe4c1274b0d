import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { makeMessage, seededRandom } from '../raft/index.js';
import { Bus, MemoryStore } from '../test/harness/member-bus.js';
import type { LeadershipView, TickTiming } from './interfaces.js';
import { RaftMember, validateMemberOptions, type MemberOptions } from './member.js';

const Ids = ['a', 'b', 'c'];
const TickMs = 100;
const ElectionTicks = 10;
const silent = pino({ level: 'silent' });

function makeGroup(seed: number) {
  const bus = new Bus();
  const stores = new Map(Ids.map((id) => [id, new MemoryStore(id, bus)]));
  const members = new Map<string, RaftMember>();
  const create = (id: string, index: number, restart = 0): RaftMember => {
    const options: MemberOptions = {
      id,
      bootstrap: { voters: Ids },
      tickMs: TickMs,
      electionTicks: ElectionTicks,
      heartbeatTicks: 1,
      maxClockDriftMs: 100,
      store: stores.get(id)!,
      logger: silent,
      random: seededRandom(seed * 100 + index * 10 + restart),
      monotonicNowMs: () => Date.now(),
      createTransport: (events) => bus.transport(id, Ids.filter((p) => p !== id), events),
    };
    const member = new RaftMember(options);
    members.set(id, member);
    return member;
  };
  Ids.forEach((id, i) => create(id, i));
  return { bus, stores, members, create };
}

async function advance(ms: number): Promise<void> {
  await vi.advanceTimersByTimeAsync(ms);
}

/** Advances fake time in 10 ms steps until `done` holds, sampling `check` at every step. */
async function runUntil(
  done: () => boolean,
  limitMs: number,
  check: () => void = () => undefined,
): Promise<number> {
  let elapsed = 0;
  while (!done()) {
    if (elapsed >= limitMs) throw new Error(`condition not reached within ${limitMs} ms of simulated time`);
    await advance(10);
    elapsed += 10;
    check();
  }
  return elapsed;
}

function views(members: Map<string, RaftMember>): LeadershipView[] {
  return [...members.values()].map((m) => m.view());
}

function assertAtMostOneClaims(members: Map<string, RaftMember>): void {
  const claiming = views(members).filter((v) => v.isLeader);
  expect(claiming.map((v) => v.self), 'two members claim isLeader at once').toHaveLength(Math.min(claiming.length, 1));
}

describe('RaftMember', () => {
  const seed = Number(process.env.MEMBER_TEST_SEED ?? 7);
  beforeEach(() => {
    console.log(`member test seed ${seed}`);
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('elects one leader that all members name, and only it claims isLeader with a lease', async () => {
    const { members } = makeGroup(seed);
    for (const m of members.values()) await m.start();
    await runUntil(() => views(members).filter((v) => v.isLeader).length === 1, 3_000, () => assertAtMostOneClaims(members));
    const leader = views(members).find((v) => v.isLeader)!;
    for (const v of views(members)) {
      expect(v.leader).toBe(leader.self);
      expect(v.term).toBe(leader.term);
    }
    expect(leader.leaseExpiresInMs).toBeGreaterThan(0);
    expect(leader.leaseExpiresInMs).toBeLessThanOrEqual((ElectionTicks - 1) * TickMs - 100);
    expect(leader.since).not.toBeNull();
    for (const m of members.values()) await m.stop();
  });

  it('a partitioned leader drops isLeader when its lease runs out, before anyone else claims', async () => {
    const { bus, members } = makeGroup(seed);
    for (const m of members.values()) await m.start();
    await runUntil(() => views(members).some((v) => v.isLeader), 3_000);
    const old = views(members).find((v) => v.isLeader)!;
    bus.isolate(old.self, Ids);
    const lostAfterMs = await runUntil(() => !members.get(old.self)!.view().isLeader, 2_000, () => assertAtMostOneClaims(members));
    // The lease (800 ms) ends well before CheckQuorum (one election timeout) would step it down.
    expect(lostAfterMs).toBeLessThanOrEqual(800);
    expect(members.get(old.self)!.view().role).toBe('Leader');
    await runUntil(
      () => views(members).some((v) => v.isLeader && v.self !== old.self),
      5_000,
      () => assertAtMostOneClaims(members),
    );
    const next = views(members).find((v) => v.isLeader)!;
    expect(next.term).toBeGreaterThan(old.term);
    for (const m of members.values()) await m.stop();
  });

  it('a transfer stops the old leader claiming at once and hands over to the target', async () => {
    const { members } = makeGroup(seed);
    for (const m of members.values()) await m.start();
    await runUntil(() => views(members).some((v) => v.isLeader), 3_000);
    const old = views(members).find((v) => v.isLeader)!;
    const target = Ids.filter((id) => id !== old.self).sort()[0]!;
    const result = members.get(old.self)!.transferLeadership(target);
    expect(members.get(old.self)!.view().isLeader).toBe(false);
    await runUntil(() => members.get(target)!.view().isLeader, 2_000, () => assertAtMostOneClaims(members));
    await expect(result).resolves.toEqual({ leader: target, transferred: true });
    for (const m of members.values()) await m.stop();
  });

  it('a graceful shutdown during a transfer joins it: the transfer\'s target leads, whichever follower it is', async () => {
    for (const pick of [0, 1]) {
      const { bus, members } = makeGroup(seed + pick);
      for (const m of members.values()) await m.start();
      await runUntil(() => views(members).some((v) => v.isLeader), 3_000);
      const old = views(members).find((v) => v.isLeader)!;
      const target = Ids.filter((id) => id !== old.self).sort()[pick]!;
      const traced = bus.trace.length;
      const transfer = members.get(old.self)!.transferLeadership(target);
      const shutdown = members.get(old.self)!.shutdown();
      await runUntil(() => members.get(target)!.view().isLeader, 2_000, () => assertAtMostOneClaims(members));
      await expect(shutdown).resolves.toEqual({ leader: target, transferred: true });
      await expect(transfer).resolves.toEqual({ leader: target, transferred: true });
      // One handover: the old leader woke only the target (a second MsgTimeoutNow would start a rival campaign).
      expect(bus.trace.slice(traced).filter((t) => t.detail.startsWith('MsgTimeoutNow')).map((t) => t.detail.split('@')[0])).toEqual([`MsgTimeoutNow->${target}`]);
      for (const m of members.values()) await m.stop();
    }
  });

  it('one transfer at a time: a second without a target, or to the same one, joins it; to another is refused', async () => {
    const { bus, members } = makeGroup(seed);
    for (const m of members.values()) await m.start();
    await runUntil(() => views(members).some((v) => v.isLeader), 3_000);
    const old = views(members).find((v) => v.isLeader)!;
    const [target, other] = Ids.filter((id) => id !== old.self).sort() as [string, string];
    const traced = bus.trace.length;
    const leader = members.get(old.self)!;
    const first = leader.transferLeadership(target);
    const joined = [leader.transferLeadership(), leader.transferLeadership(target)];
    await expect(leader.transferLeadership(other)).rejects.toMatchObject({ code: 'TRANSFER_IN_PROGRESS' });
    await runUntil(() => members.get(target)!.view().isLeader, 2_000, () => assertAtMostOneClaims(members));
    for (const p of [first, ...joined]) await expect(p).resolves.toEqual({ leader: target, transferred: true });
    expect(bus.trace.slice(traced).filter((t) => t.detail.startsWith('MsgTimeoutNow')).map((t) => t.detail.split('@')[0])).toEqual([`MsgTimeoutNow->${target}`]);
    for (const m of members.values()) await m.stop();
  });

  it('refuses a transfer on a follower and to a non-member, with typed errors', async () => {
    const { members } = makeGroup(seed);
    for (const m of members.values()) await m.start();
    await runUntil(() => views(members).some((v) => v.isLeader), 3_000);
    const leader = views(members).find((v) => v.isLeader)!.self;
    const follower = Ids.find((id) => id !== leader)!;
    await expect(members.get(follower)!.transferLeadership()).rejects.toMatchObject({ code: 'NOT_LEADER' });
    await expect(members.get(leader)!.transferLeadership('zz')).rejects.toMatchObject({ code: 'INVALID_TRANSFER_TARGET' });
    // A stopped leader registers nothing that would wait for ticks that never come.
    const stopped = members.get(leader)!;
    await stopped.stop();
    await expect(stopped.transferLeadership(follower)).rejects.toMatchObject({ code: 'MEMBER_STOPPED' });
    await expect(stopped.transferLeadership()).rejects.toMatchObject({ code: 'MEMBER_STOPPED' });
    for (const m of members.values()) await m.stop();
  });

  it('persists term and vote before any vote response leaves', async () => {
    const { bus, members } = makeGroup(seed);
    for (const m of members.values()) await m.start();
    await runUntil(() => views(members).some((v) => v.isLeader), 3_000);
    const responses = bus.trace.filter((t) => t.event === 'send' && /^MsgVoteResp/.test(t.detail));
    expect(responses.length).toBeGreaterThan(0);
    for (const r of responses) {
      const at = bus.trace.indexOf(r);
      const term = Number(/@(\d+)$/.exec(r.detail)![1]);
      const saved = bus.trace
        .slice(0, at)
        .some((t) => t.event === 'save' && t.member === r.member && t.detail.startsWith(`term=${term} `));
      expect(saved, `${r.member} sent ${r.detail} before persisting term ${term}`).toBe(true);
    }
    for (const m of members.values()) await m.stop();
  });

  it('a handover: MsgTimeoutNow leaves before the write of the next term, the vote given with it only after', async () => {
    const { bus, members } = makeGroup(seed);
    for (const m of members.values()) await m.start();
    await runUntil(() => views(members).some((v) => v.isLeader), 3_000);
    const old = views(members).find((v) => v.isLeader)!;
    const target = Ids.filter((id) => id !== old.self).sort()[0]!;
    const traced = bus.trace.length;
    const transfer = members.get(old.self)!.transferLeadership(target);
    // Synchronous: the old leader's Ready (RaftConfig.transferGrantsVote, on in the member).
    const handover = bus.trace.slice(traced).filter((t) => t.member === old.self);
    expect(handover.map((t) => `${t.event} ${t.detail}`)).toEqual([
      `send MsgTimeoutNow->${target}@${old.term}`,
      `save term=${old.term + 1} vote=${target}`,
      `send MsgVoteResp->${target}@${old.term + 1}`,
    ]);
    expect(members.get(old.self)!.view()).toMatchObject({ role: 'Follower', term: old.term + 1, leader: null, isLeader: false });
    await runUntil(() => members.get(target)!.view().isLeader, 2_000, () => assertAtMostOneClaims(members));
    await expect(transfer).resolves.toEqual({ leader: target, transferred: true });
    for (const m of members.values()) await m.stop();
  });

  it('a handover on a network that reorders: the vote overtaking the MsgTimeoutNow costs a round trip, not an election', async () => {
    const { bus, members } = makeGroup(seed);
    for (const m of members.values()) await m.start();
    await runUntil(() => views(members).some((v) => v.isLeader), 3_000);
    const old = views(members).find((v) => v.isLeader)!;
    const target = Ids.filter((id) => id !== old.self).sort()[0]!;
    bus.delayMs = (m) => (m.type === 'MsgTimeoutNow' ? 15 : 1);
    const transfer = members.get(old.self)!.transferLeadership(target);
    const tookMs = await runUntil(() => members.get(target)!.view().isLeader, 2_000, () => assertAtMostOneClaims(members));
    expect(tookMs).toBeLessThan(200);
    await expect(transfer).resolves.toEqual({ leader: target, transferred: true });
    for (const m of members.values()) await m.stop();
  });

  it('a new leader sends its first appends before its own write, and followers name it before writing them', async () => {
    const { bus, stores, members } = makeGroup(seed);
    // What each member had published, and what had left, at the moment of each write.
    const writes: { member: string; term: number; lastEntryTerm: number; named: string | null; sentBefore: number }[] = [];
    for (const [id, store] of stores) {
      const save = store.save.bind(store);
      store.save = (state) => {
        const last = state.entries[state.entries.length - 1];
        writes.push({ member: id, term: state.hardState.term, lastEntryTerm: last?.term ?? 0, named: members.get(id)!.view().leader, sentBefore: bus.trace.length });
        save(state);
      };
    }
    for (const m of members.values()) await m.start();
    await runUntil(() => views(members).some((v) => v.isLeader), 3_000);
    const leader = views(members).find((v) => v.isLeader)!;
    // The leader's write of its first entry in its term: its MsgApps were already sent.
    const own = writes.find((w) => w.member === leader.self && w.lastEntryTerm === leader.term)!;
    const appsBefore = bus.trace.slice(0, own.sentBefore).filter((t) => t.member === leader.self && t.detail.startsWith('MsgApp->') && t.detail.endsWith(`@${leader.term}`));
    expect(appsBefore.length, 'MsgApp left before the leader wrote its entry').toBeGreaterThan(0);
    for (const id of Ids.filter((x) => x !== leader.self)) {
      const first = writes.find((w) => w.member === id && w.lastEntryTerm === leader.term)!;
      expect(first.named, `${id} named the leader before writing its entries`).toBe(leader.self);
    }
    for (const m of members.values()) await m.stop();
  });

  it("a new leader's first heartbeat round leaves with its first appends, ahead of them and before its own write", async () => {
    const { bus, stores, members } = makeGroup(seed);
    const writes: { member: string; lastEntryTerm: number; sentBefore: number }[] = [];
    for (const [id, store] of stores) {
      const save = store.save.bind(store);
      store.save = (state) => {
        writes.push({ member: id, lastEntryTerm: state.entries[state.entries.length - 1]?.term ?? 0, sentBefore: bus.trace.length });
        save(state);
      };
    }
    for (const m of members.values()) await m.start();
    await runUntil(() => views(members).some((v) => v.isLeader), 3_000);
    const leader = views(members).find((v) => v.isLeader)!;
    const own = writes.find((w) => w.member === leader.self && w.lastEntryTerm === leader.term)!;
    const sent = bus.trace.slice(0, own.sentBefore).filter((t) => t.member === leader.self && t.detail.endsWith(`@${leader.term}`));
    for (const id of Ids.filter((x) => x !== leader.self)) {
      const beat = sent.findIndex((t) => t.detail.startsWith(`MsgHeartbeat->${id}@`));
      const app = sent.findIndex((t) => t.detail.startsWith(`MsgApp->${id}@`));
      // The lease counts heartbeat acks only; a follower acks a heartbeat without a write first.
      expect(beat, `a heartbeat to ${id} left before the leader's write`).toBeGreaterThanOrEqual(0);
      expect(beat, `the heartbeat to ${id} left ahead of the append`).toBeLessThan(app);
    }
    for (const m of members.values()) await m.stop();
  });

  it('a candidate sends its vote requests before it writes its new term and self-vote', async () => {
    const { bus, stores, members } = makeGroup(seed);
    const writes: { member: string; term: number; vote: string; sentBefore: number }[] = [];
    for (const [id, store] of stores) {
      const save = store.save.bind(store);
      store.save = (state) => {
        writes.push({ member: id, term: state.hardState.term, vote: state.hardState.vote, sentBefore: bus.trace.length });
        save(state);
      };
    }
    for (const m of members.values()) await m.start();
    await runUntil(() => views(members).some((v) => v.isLeader), 3_000);
    const leader = views(members).find((v) => v.isLeader)!;
    const selfVote = writes.find((w) => w.member === leader.self && w.term === leader.term && w.vote === leader.self)!;
    const requestsBefore = bus.trace
      .slice(0, selfVote.sentBefore)
      .filter((t) => t.member === leader.self && t.detail.startsWith('MsgVote->') && t.detail.endsWith(`@${leader.term}`));
    expect(requestsBefore.length, 'MsgVote left before the candidate wrote its vote').toBe(Ids.length - 1);
    for (const m of members.values()) await m.stop();
  });

  it('a leader elected by members that forgot the old one waits a lease window before claiming', async () => {
    const { bus, members } = makeGroup(seed);
    for (const m of members.values()) await m.start();
    await runUntil(() => views(members).some((v) => v.isLeader), 3_000);
    // Fresh members refuse votes for two election timeouts once they see the group ran (an
    // empty disk may hide an earlier vote); let that window pass first.
    await advance(2 * ElectionTicks * TickMs);
    const old = views(members).find((v) => v.isLeader)!;
    const [first, second] = Ids.filter((id) => id !== old.self).sort() as [string, string];
    // The old leader keeps running but is cut off: the pod watch said it is terminating.
    bus.isolate(old.self, Ids);
    members.get(first)!.forgetLeader();
    members.get(second)!.forgetLeader();
    members.get(first)!.campaign();
    const electedAfterMs = await runUntil(() => members.get(first)!.view().role === 'Leader', 1_000);
    expect(electedAfterMs).toBeLessThan(TickMs);
    expect(members.get(second)!.view().leader).toBe(first);
    expect(members.get(first)!.view().isLeader).toBe(false);
    const claimedAfterMs = await runUntil(() => members.get(first)!.view().isLeader, 2_000, () => assertAtMostOneClaims(members));
    expect(electedAfterMs + claimedAfterMs).toBeGreaterThanOrEqual((ElectionTicks - 1) * TickMs - 100);
    for (const m of members.values()) await m.stop();
  });

  it('a failed state write stops the member before the vote it would have promised leaves', async () => {
    const { bus, stores, members } = makeGroup(seed);
    const fatal: unknown[] = [];
    for (const m of members.values()) await m.start();
    stores.get('b')!.failWrites = true;
    stores.get('c')!.failWrites = true;
    (members.get('b') as unknown as { options: MemberOptions }).options.onFatal = (err) => fatal.push(err);
    members.get('a')!.campaign();
    await runUntil(() => fatal.length > 0, 3_000);
    expect(fatal[0]).toMatchObject({ code: 'STATE_FILE_WRITE_FAILED' });
    expect(bus.trace.some((t) => t.member === 'b' && t.event === 'send' && t.detail.startsWith('MsgPreVoteResp'))).toBe(true);
    expect(bus.trace.some((t) => t.member === 'b' && t.event === 'send' && t.detail.startsWith('MsgVoteResp'))).toBe(false);
    // A stopped member ignores late calls (the pod watch's timers may outlive it).
    members.get('b')!.campaign();
    expect(members.get('b')!.view()).toMatchObject({ isLeader: false });
    for (const m of members.values()) await m.stop();
  });

  it('when the link to the leader closes, followers forget it and the lowest-id survivor is elected at once', async () => {
    const { bus, members } = makeGroup(seed);
    for (const m of members.values()) await m.start();
    await runUntil(() => views(members).some((v) => v.isLeader), 3_000);
    await advance(2 * ElectionTicks * TickMs);
    const old = views(members).find((v) => v.isLeader)!;
    const successor = Ids.filter((id) => id !== old.self).sort()[0]!;
    const dead = members.get(old.self)!;
    members.delete(old.self);
    await dead.stop();
    bus.crash(old.self);
    const electedAfterMs = await runUntil(() => members.get(successor)!.view().role === 'Leader', 1_000);
    expect(electedAfterMs).toBeLessThanOrEqual(TickMs);
    // The followers skipped the old leader's lease: the successor waits a lease window to claim.
    const claimAfterMs = await runUntil(() => members.get(successor)!.view().isLeader, 2_000);
    expect(electedAfterMs + claimAfterMs).toBeGreaterThanOrEqual((ElectionTicks - 1) * TickMs - 100);
    for (const m of members.values()) expect(m.view().leader).toBe(successor);
    for (const m of members.values()) await m.stop();
  });

  it('ticks stay at least tickMs apart after a late timer, so a follower never counts its lease down faster', async () => {
    const bus = new Bus();
    let stallMs = 0;
    const member = new RaftMember({
      id: 'a',
      bootstrap: { voters: Ids },
      tickMs: TickMs,
      electionTicks: ElectionTicks,
      heartbeatTicks: 1,
      maxClockDriftMs: 100,
      store: new MemoryStore('a', bus),
      logger: silent,
      random: seededRandom(seed),
      // The member's clock runs ahead of the timers by stallMs: its timer fired that late.
      monotonicNowMs: () => Date.now() + stallMs,
      createTransport: (events) => bus.transport('a', ['b', 'c'], events),
    });
    await member.start();
    const ticks: TickTiming[] = [];
    member.onTick((t) => ticks.push(t));
    await advance(TickMs);
    const before = member.status().ticksSinceStart;
    stallMs = 450;
    await advance(TickMs); // one overdue tick
    expect(member.status().ticksSinceStart).toBe(before + 1);
    // The tick reports how late it ran and when the next is due: the API's event-loop probe reads it.
    expect(ticks.at(-1)!.lateMs).toBeGreaterThanOrEqual(450);
    expect(ticks.at(-1)!.nextInMs).toBe(TickMs);
    await advance(TickMs - 1); // no catch-up tick right behind it
    expect(member.status().ticksSinceStart).toBe(before + 1);
    await advance(1);
    expect(member.status().ticksSinceStart).toBe(before + 2);
    expect(member.worstTickLatenessMs()).toBeGreaterThanOrEqual(450);
    await member.stop();
    expect(ticks.at(-1)!.nextInMs).toBe(Infinity); // stopped: no tick is ever overdue
  });

  it('a peer message raft refuses is dropped, logged once per interval, and the member keeps running', async () => {
    const { bus, members } = makeGroup(seed);
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    (members.get('a') as unknown as { log: typeof logger }).log = logger;
    for (const m of members.values()) await m.start();
    const events = bus.endpoints.get('a')!;
    for (let i = 0; i < 50; i++) events.onMessage(makeMessage({ type: 'MsgBeat', from: 'b', to: 'a', term: 1 }));
    const refused = lines.filter((l) => l.msg === 'peer message refused by raft');
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ peer: 'b', type: 'MsgBeat', code: 'INVALID_MESSAGE', reason: 'misaddressed' });
    await runUntil(() => views(members).some((v) => v.isLeader), 3_000);
    for (const m of members.values()) await m.stop();
  });

  it('a corrupt state file stops the start with an error naming the file', async () => {
    const { stores, members } = makeGroup(seed);
    stores.get('a')!.corrupt = true;
    await expect(members.get('a')!.start()).rejects.toMatchObject({
      code: 'STATE_FILE_CORRUPT',
      message: expect.stringContaining('/data/a/raft-state.json'),
    });
  });

  it('a restarted member rejoins at the same term without disrupting the leader (PreVote)', async () => {
    const { members, create } = makeGroup(seed);
    for (const m of members.values()) await m.start();
    await runUntil(() => views(members).some((v) => v.isLeader), 3_000);
    const leader = views(members).find((v) => v.isLeader)!;
    const follower = Ids.find((id) => id !== leader.self)!;
    await members.get(follower)!.stop();
    await advance(3_000);
    const restarted = create(follower, Ids.indexOf(follower), 1);
    await restarted.start();
    await runUntil(() => restarted.view().leader === leader.self, 2_000);
    expect(restarted.view().term).toBe(leader.term);
    expect(members.get(leader.self)!.view().term).toBe(leader.term);
    for (const m of members.values()) await m.stop();
  });
});

describe('validateMemberOptions', () => {
  const base = {
    id: 'a',
    bootstrap: { voters: ['a', 'b', 'c'] },
    tickMs: 100,
    electionTicks: 10,
    heartbeatTicks: 1,
    maxClockDriftMs: 100,
  } as unknown as MemberOptions;
  it.each([
    [{ bootstrap: { voters: [] } }, 'bootstrap.voters must name at least one member'],
    [{ bootstrap: { voters: ['a', 'b'], learners: ['b'] } }, 'bootstrap voters and learners must be distinct'],
    [{ bootstrap: { voters: ['a', ''] } }, 'bootstrap member ids must be non-empty strings'],
    [{ tickMs: 0 }, 'tickMs must be a positive integer'],
    [{ electionTicks: 1 }, 'must be an integer greater than heartbeatTicks'],
    [{ heartbeatTicks: 0 }, 'heartbeatTicks must be a positive integer'],
    [{ maxClockDriftMs: 900 }, 'the lease window'],
    [{ maxClockDriftMs: -1 }, 'maxClockDriftMs must be a non-negative'],
  ])('rejects %o', (change, message) => {
    expect(() => validateMemberOptions({ ...base, ...change })).toThrow(message);
  });
  it('accepts a member outside its bootstrap configuration, and a joiner with none', () => {
    expect(() => validateMemberOptions({ ...base, id: 'x' })).not.toThrow();
    const { bootstrap: _unused, ...joiner } = base;
    expect(() => validateMemberOptions(joiner)).not.toThrow();
  });
  it('derives the lease window from the election timeout and the drift', () => {
    expect(validateMemberOptions(base).leaseWindowMs).toBe(800);
  });
});
