/**
 * A MsgTimeoutNow that does not come from the receiver's leader. A transfer campaign's votes
 * skip the voters' lease (raft.ts: only a leader that gave its lease up starts one), so a
 * follower that campaigns on a MsgTimeoutNow from anyone lets one secret holder (here the id
 * of a stopped voter) get the target elected by honest voters while the leader, cut from the
 * target and slow to reach the others, still holds its lease. Five real RaftMembers on the
 * in-memory bus, fake timers: deterministic.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CampaignTransferContext, makeMessage } from '../../raft/index.js';
import { startFakeTimeGroup } from './fake-time-group.js';

const Ids = ['a', 'b', 'c', 'd', 'e'];
const Running = ['b', 'c', 'd', 'e'];
const seed = Number(process.env.HOSTILE_TRANSFER_SEED ?? 7);

describe('a MsgTimeoutNow from a member that is not the leader', () => {
  beforeEach(() => {
    console.log(`hostile transfer seed ${seed} (replay: HOSTILE_TRANSFER_SEED=${seed} npx vitest run test/sim/hostile-transfer.test.ts)`);
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => vi.useRealTimers());

  type Attack = 'timeout-now' | 'same-term-heartbeat' | 'higher-term-heartbeat-to-all' | 'forged-transfer-vote-then-handover';
  const attacks: Attack[] = ['timeout-now', 'same-term-heartbeat', 'higher-term-heartbeat-to-all', 'forged-transfer-vote-then-handover'];

  it.each(attacks)('%s: never a second isLeader while the leader cut from the target still claims', async (attack) => {
    const { bus, members, claimers } = await startFakeTimeGroup(Ids, Running, seed);
    const leader = claimers()[0]!;
    const target = Running.find((id) => id !== leader)!;
    const others = Running.filter((id) => id !== leader && id !== target);
    const term = members.get(leader)!.view().term;
    // The leader's link to the target is cut; its messages to the others take 60 ms (a slow link).
    bus.isolate(leader, [target]);
    bus.delayMs = (m) => (m.from === leader ? 60 : 0);
    await vi.advanceTimersByTimeAsync(5);
    // The forger proved the secret as "a" (a voter that is not running).
    const forge = (to: string, type: 'MsgTimeoutNow' | 'MsgHeartbeat', t: number) => bus.endpoints.get(to)!.onMessage(makeMessage({ type, from: 'a', to, term: t }));
    if (attack === 'timeout-now') {
      forge(target, 'MsgTimeoutNow', term);
    } else if (attack === 'same-term-heartbeat') {
      // A current-term heartbeat makes its sender the follower's leader (raft.go), then hands over.
      forge(target, 'MsgHeartbeat', term);
      forge(target, 'MsgTimeoutNow', term);
    } else if (attack === 'forged-transfer-vote-then-handover') {
      // The forger wins a transfer election of its own (its votes skip the lease too), then hands over.
      for (const id of [target, ...others]) {
        bus.endpoints.get(id)!.onMessage(
          makeMessage({ type: 'MsgVote', from: 'a', to: id, term: term + 1, index: 1_000, logTerm: term, context: CampaignTransferContext }),
        );
      }
      await vi.advanceTimersByTimeAsync(1);
      for (const id of [target, ...others]) forge(id, 'MsgHeartbeat', term + 1);
      await vi.advanceTimersByTimeAsync(1);
      forge(target, 'MsgTimeoutNow', term + 1);
    } else {
      // A leader of a higher term for everyone but the real one, which then hands over.
      for (const id of [target, ...others]) forge(id, 'MsgHeartbeat', term + 1);
      await vi.advanceTimersByTimeAsync(1);
      forge(target, 'MsgTimeoutNow', term + 1);
    }
    const seen: string[] = [];
    let soon: { term: number; leader: string | null } | undefined;
    for (let t = 0; t < 2_000; t += 5) {
      await vi.advanceTimersByTimeAsync(5);
      if (t === 300) soon = members.get(target)!.view();
      const c = claimers();
      if (c.length > 1) seen.push(`${Date.now() - 1_000_000} ms: ${c.join(' and ')}`);
    }
    for (const m of members.values()) await m.stop();
    expect(seen, 'two members answered isLeader at once').toEqual([]);
    // From a member that does not lead, a MsgTimeoutNow starts nothing (later the cut link makes the target campaign).
    if (attack === 'timeout-now') expect(soon).toMatchObject({ term, leader });
  });
});
