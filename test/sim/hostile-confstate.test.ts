/**
 * A secret holder posing as a leader of a higher term (here the id of a stopped voter) sends
 * each running member a MsgSnap whose configuration is {forger, receiver}. Each member adopts
 * it (raft trusts a leader's snapshot, as etcd does), so none can be elected without the
 * forger's vote: the group stays leaderless after the forger is gone, and the configuration
 * is persisted, so restarts do not help. Five real RaftMembers on the in-memory bus, fake timers.
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
const seed = Number(process.env.HOSTILE_CONFSTATE_SEED ?? 7);
const silent = pino({ level: 'silent' });

describe('a forged snapshot with another configuration', () => {
  beforeEach(() => {
    console.log(`hostile confstate seed ${seed} (replay: HOSTILE_CONFSTATE_SEED=${seed} npx vitest run test/sim/hostile-confstate.test.ts)`);
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => vi.useRealTimers());

  // Known limit, not fixed here: a follower cannot tell a forged snapshot from its leader's (raft
  // is not Byzantine fault tolerant). The voters are fixed by --peers today, so a member could
  // refuse any configuration other than its own; that belongs with the membership work (issue 11).
  it.fails('one frame per member from a forger leaves the group leaderless after the forger is gone', async () => {
    const bus = new Bus();
    bus.tracing = false;
    const members = new Map<string, RaftMember>();
    for (const [i, id] of Running.entries()) {
      const member = new RaftMember({
        id,
        bootstrap: { voters: Ids },
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
    const term = members.get(claimers()[0]!)!.view().term;
    for (const to of Running) {
      bus.endpoints.get(to)!.onMessage(
        makeMessage({
          type: 'MsgSnap',
          from: 'a',
          to,
          term: term + 1,
          snapshot: { index: 1_000, term: term + 1 },
          confState: { voters: ['a', to].sort(), votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false },
        }),
      );
    }
    // The forger is gone. Ten election timeouts later a leader must claim.
    let claimed = false;
    for (let t = 0; t < 20_000 && !claimed; t += 10) {
      await vi.advanceTimersByTimeAsync(10);
      claimed = claimers().length === 1;
    }
    for (const m of members.values()) await m.stop();
    expect(claimed, 'a leader claims within 20 s after the forger is gone').toBe(true);
  });
});
