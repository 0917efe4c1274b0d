/**
 * Real RaftMembers on the in-memory bus under vitest's fake timers: the set-up the seeded
 * attack and regression schedules share. Deterministic for a given seed.
 */
import { pino } from 'pino';
import { vi } from 'vitest';
import { RaftMember } from '../../cluster/member.js';
import { MemoryTimingRecord } from '../../cluster/timing-record.js';
import { seededRandom } from '../../raft/index.js';
import { Bus, MemoryStore } from '../harness/member-bus.js';

export const GroupTiming = { tickMs: 100, electionTicks: 10, maxClockDriftMs: 100 };
const silent = pino({ level: 'silent' });

export interface FakeTimeGroup {
  bus: Bus;
  members: Map<string, RaftMember>;
  /** Ids of the members answering isLeader now. */
  claimers(): string[];
}

/** Starts `running` (a subset of `voters`, the bootstrap configuration) and waits for one claimer. */
export async function startFakeTimeGroup(voters: readonly string[], running: readonly string[], seed: number): Promise<FakeTimeGroup> {
  const bus = new Bus();
  bus.tracing = false;
  const members = new Map<string, RaftMember>();
  for (const [i, id] of running.entries()) {
    const member = new RaftMember({
      id,
      bootstrap: { voters: [...voters] },
      ...GroupTiming,
      heartbeatTicks: 1,
      store: new MemoryStore(id, bus),
      timingRecord: new MemoryTimingRecord(),
      logger: silent,
      random: seededRandom(seed * 100 + i),
      monotonicNowMs: () => Date.now(),
      createTransport: (events) => bus.transport(id, voters.filter((p) => p !== id), events, GroupTiming),
    });
    members.set(id, member);
    await member.start();
  }
  const claimers = (): string[] => [...members.values()].filter((m) => m.view().isLeader).map((m) => m.id);
  for (let t = 0; claimers().length !== 1; t += 5) {
    if (t > 10_000) throw new Error('no leader within 10 s of simulated time');
    await vi.advanceTimersByTimeAsync(5);
  }
  return { bus, members, claimers };
}
