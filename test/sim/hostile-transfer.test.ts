/**
 * A MsgTimeoutNow that does not come from the receiver's leader. A transfer campaign's votes
 * skip the voters' lease (raft.ts: only a leader that gave its lease up starts one), so a
 * follower that campaigns on a MsgTimeoutNow from anyone lets one secret holder (here the id
 * of a stopped voter) get the target elected by honest voters while the leader, cut from the
 * target and slow to reach the others, still holds its lease. Five real RaftMembers on the
 * in-memory bus, fake timers: deterministic.
 */
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RaftMember } from '../../cluster/member.js';
import { MemoryTimingRecord } from '../../cluster/timing-record.js';
import { makeMessage, seededRandom } from '../../raft/index.js';
import { Bus, MemoryStore } from '../harness/member-bus.js';

const Ids = ['a', 'b', 'c', 'd', 'e'];
const Running = ['b', 'c', 'd', 'e'];
const Timing = { tickMs: 100, electionTicks: 10, maxClockDriftMs: 100 };
const seed = Number(process.env.HOSTILE_TRANSFER_SEED ?? 7);
const silent = pino({ level: 'silent' });

describe('a MsgTimeoutNow from a member that is not the leader', () => {
  beforeEach(() => {
    console.log(`hostile transfer seed ${seed} (replay: HOSTILE_TRANSFER_SEED=${seed} npx vitest run test/sim/hostile-transfer.test.ts)`);
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => vi.useRealTimers());

  it('starts no election, so the leader cut from the target is never joined by a second isLeader', async () => {
    const bus = new Bus();
    bus.tracing = false;
    const members = new Map<string, RaftMember>();
    for (const [i, id] of Running.entries()) {
      const member = new RaftMember({
        id,
        voters: Ids,
        ...Timing,
        heartbeatTicks: 1,
        store: new MemoryStore(id, bus),
        timingRecord: new MemoryTimingRecord(),
        logger: silent,
        random: seededRandom(seed * 100 + i),
        monotonicNowMs: () => Date.now(),
        createTransport: (events) => bus.transport(id, Ids.filter((p) => p !== id), events, Timing),
      });
      members.set(id, member);
      await member.start();
    }
    const claimers = () => [...members.values()].filter((m) => m.view().isLeader).map((m) => m.id);
    for (let t = 0; claimers().length !== 1; t += 5) {
      if (t > 10_000) throw new Error('no leader within 10 s of simulated time');
      await vi.advanceTimersByTimeAsync(5);
    }
    const leader = claimers()[0]!;
    const target = Running.find((id) => id !== leader)!;
    const term = members.get(leader)!.view().term;
    // The leader's link to the target is cut; its messages to the others take 60 ms (a slow link).
    bus.isolate(leader, [target]);
    bus.delayMs = (m) => (m.from === leader ? 60 : 0);
    await vi.advanceTimersByTimeAsync(5);
    // The forger proved the secret as "a" (a voter that is not running).
    bus.endpoints.get(target)!.onMessage(makeMessage({ type: 'MsgTimeoutNow', from: 'a', to: target, term }));
    const seen: string[] = [];
    for (let t = 0; t < 1_000; t += 5) {
      await vi.advanceTimersByTimeAsync(5);
      const c = claimers();
      if (c.length > 1) seen.push(`${Date.now() - 1_000_000} ms: ${c.join(' and ')}`);
    }
    for (const m of members.values()) await m.stop();
    expect(seen, 'two members answered isLeader at once').toEqual([]);
    expect(members.get(target)!.view()).toMatchObject({ term, leader });
  });
});
