/**
 * A secret holder posing as a leader of a higher term (here the id of a stopped voter) sends
 * each running member a MsgSnap whose configuration is {forger, receiver}. Each member adopts
 * it (raft trusts a leader's snapshot, as etcd does), so none can be elected without the
 * forger's vote: the group stays leaderless after the forger is gone, and the configuration
 * is persisted, so restarts do not help. Five real RaftMembers on the in-memory bus, fake timers.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { makeMessage } from '../../raft/index.js';
import { startFakeTimeGroup } from './fake-time-group.js';

const Ids = ['a', 'b', 'c', 'd', 'e'];
const Running = ['b', 'c', 'd', 'e'];
const seed = Number(process.env.HOSTILE_CONFSTATE_SEED ?? 7);

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
    const { bus, members, claimers } = await startFakeTimeGroup(Ids, Running, seed);
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
