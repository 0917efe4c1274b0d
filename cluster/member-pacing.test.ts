import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { seededRandom } from '../raft/index.js';
import { Bus, MemoryStore } from '../test/harness/member-bus.js';
import { RaftMember, type MemberTimers } from './member.js';

const Ids = ['a', 'b', 'c'];
const TickMs = 100;
const ElectionTicks = 10;
const silent = pino({ level: 'silent' });

/** Three members on the in-memory bus; each member's timer wake-ups and tick times are counted. */
function makeGroup(seed: number, delayMs: () => number) {
  const bus = new Bus();
  bus.delayMs = delayMs;
  const members = new Map<string, RaftMember>();
  const wakeups = new Map<string, number>(Ids.map((id) => [id, 0]));
  const ticksAt = new Map<string, number[]>(Ids.map((id) => [id, []]));
  Ids.forEach((id, index) => {
    const timers: MemberTimers = {
      setTimeout: (callback, ms) =>
        setTimeout(() => {
          wakeups.set(id, wakeups.get(id)! + 1);
          callback();
        }, ms),
      clearTimeout: (handle) => clearTimeout(handle),
    };
    const member = new RaftMember({
      id,
      bootstrap: { voters: Ids },
      tickMs: TickMs,
      electionTicks: ElectionTicks,
      heartbeatTicks: 1,
      maxClockDriftMs: 100,
      store: new MemoryStore(id, bus),
      logger: silent,
      random: seededRandom(seed * 100 + index),
      monotonicNowMs: () => Date.now(),
      timers,
      createTransport: (events) => bus.transport(id, Ids.filter((p) => p !== id), events),
    });
    member.onTick(() => ticksAt.get(id)!.push(Date.now()));
    members.set(id, member);
  });
  return { bus, members, wakeups, ticksAt };
}

async function runUntil(done: () => boolean, limitMs: number): Promise<void> {
  for (let elapsed = 0; !done(); elapsed += 10) {
    if (elapsed >= limitMs) throw new Error(`condition not reached within ${limitMs} ms of simulated time`);
    await vi.advanceTimersByTimeAsync(10);
  }
}

function gaps(times: number[]): number[] {
  return times.slice(1).map((t, i) => t - times[i]!);
}

describe('a follower ticks with its leader’s heartbeats', () => {
  const seed = Number(process.env.MEMBER_TEST_SEED ?? 7);
  beforeEach(() => {
    console.log(`member pacing test seed ${seed} (replay: MEMBER_TEST_SEED=${seed})`);
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  for (const [name, delay, jittery] of [
    ['instant delivery', (): number => 0, false],
    // Seeded, so a failure replays: heartbeats 1–5 ms in flight, within the leader's margin ...
    ['1–5 ms of delivery jitter', ((r) => () => 1 + r.nextInt(5))(seededRandom(seed)), false],
    // ... and 1–20 ms, beyond it: some heartbeats arrive less than a tick after the last.
    ['1–20 ms of delivery jitter', ((r) => () => 1 + r.nextInt(20))(seededRandom(seed)), true],
  ] as const) {
    it(`${name}: one wake-up per tick, ticks never less than a tick apart, failover still on time`, async () => {
      const { bus, members, wakeups, ticksAt } = makeGroup(seed, delay);
      for (const m of members.values()) await m.start();
      await runUntil(() => [...members.values()].some((m) => m.view().isLeader), 5_000);
      const leader = [...members.values()].find((m) => m.view().isLeader)!.id;
      const followers = Ids.filter((id) => id !== leader);
      await vi.advanceTimersByTimeAsync(1_000);

      for (const id of Ids) {
        wakeups.set(id, 0);
        ticksAt.set(id, []);
      }
      await vi.advanceTimersByTimeAsync(5_000);
      for (const id of followers) {
        const ticks = ticksAt.get(id)!;
        console.log(`${name}, follower ${id}: ${ticks.length} ticks, ${wakeups.get(id)} tick timer wake-ups in 5 s`);
        // Still a tick per heartbeat (the leader's come 105 ms apart); a heartbeat that came early
        // makes the tick wait for the next one ...
        expect(ticks.length, `${id} ticks in 5 s`).toBeGreaterThanOrEqual(jittery ? 30 : 47);
        for (const gap of gaps(ticks)) expect(gap, `${id}: a tick less than tickMs after the last`).toBeGreaterThanOrEqual(TickMs);
        // ... rather than wake the loop on its own.
        expect(wakeups.get(id)!, `${id} timer wake-ups in 5 s`).toBeLessThanOrEqual(jittery ? 5 : 1);
      }
      expect(ticksAt.get(leader)!.length).toBeGreaterThanOrEqual(47);
      for (const gap of gaps(ticksAt.get(leader)!)) expect(gap, 'the leader: ticks 105 ms apart').toBeGreaterThanOrEqual(TickMs * 1.05);

      // The leader goes silent: the followers' ticks go back to their timer, and one of them
      // campaigns within its randomized election timeout, plus at most one tick waited for.
      const lostAt = Date.now();
      bus.isolate(leader, Ids);
      await runUntil(() => followers.some((id) => members.get(id)!.view().isLeader), 5_000);
      const first = Math.min(...followers.map((id) => ticksAt.get(id)!.find((t) => t > lostAt)!));
      expect(first - lostAt).toBeLessThanOrEqual(TickMs + TickMs / 2 + 5);
      for (const id of followers) {
        const after = ticksAt.get(id)!.filter((t) => t > lostAt);
        for (const gap of gaps(after).slice(1)) expect(gap, `${id}: ticks on the timer once the leader is silent`).toBeLessThanOrEqual(TickMs + 5);
      }
      for (const m of members.values()) await m.stop();
    });
  }
});
