/**
 * A leader whose MsgTimeoutNow left and whose transfer raft then gave up in the same Ready.
 * The transfer comes from a forwarded MsgTransferLeader (the transport accepts one from any
 * authenticated peer), so the member's startTransfer never ran; the target's removal commits
 * on the very ack that makes the leader send MsgTimeoutNow, and applying it aborts the transfer
 * (leadTransferee is empty again). The target, which has not heard of the commit, campaigns on
 * the MsgTimeoutNow and its transfer votes skip the voters' lease; nothing of its new term
 * reaches the old leader. The old leader must not claim again in its term, though raft no
 * longer shows a transfer: the member remembers the term it began one in. Five real
 * RaftMembers on the in-memory bus, fake timers: deterministic.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { makeMessage, type Message } from '../../raft/index.js';
import { startFakeTimeGroup } from './fake-time-group.js';

const Ids = ['a', 'b', 'c', 'd', 'e'];
const seed = Number(process.env.TRANSFER_ABORT_SEED ?? 11);

describe('a MsgTimeoutNow whose transfer is aborted in the same Ready', () => {
  beforeEach(() => {
    console.log(`transfer abort seed ${seed} (replay: TRANSFER_ABORT_SEED=${seed} npx vitest run test/sim/transfer-abort.test.ts)`);
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => vi.useRealTimers());

  it('the leader that sent it never claims again in that term', async () => {
    const { bus, members, claimers } = await startFakeTimeGroup(Ids, Ids, seed);
    await vi.advanceTimersByTimeAsync(500);
    const leaderId = claimers()[0]!;
    const leader = members.get(leaderId)!;
    const [target, ack, slow1, slow2] = Ids.filter((id) => id !== leaderId) as [string, string, string, string];
    const term = leader.view().term;

    let removalIndex = Infinity;
    let timeoutNowSent = false;
    bus.delayMs = (m: Message) => {
      if (m.from === leaderId && m.type === 'MsgTimeoutNow') {
        timeoutNowSent = true;
        // From here the leader is cut from everyone but the target's MsgTimeoutNow (already on its way).
        bus.isolate(leaderId, [ack, slow1, slow2]);
        return 0;
      }
      // Two voters are slow to get the removal: only the target's ack can commit it (with `ack`'s).
      if (m.from === leaderId && m.type === 'MsgApp' && (m.to === slow1 || m.to === slow2)) return 5_000;
      // The target hears of the commit late.
      if (m.from === leaderId && m.to === target && (m.type === 'MsgApp' || m.type === 'MsgHeartbeat') && m.commit >= removalIndex) return 5_000;
      // Nothing of the target's later term reaches the old leader for a while (a slow link).
      if (timeoutNowSent && m.from === target && m.to === leaderId) return 5_000;
      // The target, once leader, cannot commit (and so apply its own removal) for a while.
      if (m.from === target && m.type === 'MsgApp') return 5_000;
      return 0;
    };
    // The target misses the removal entry's first send.
    bus.isolate(leaderId, [target]);
    leader.proposeConfChange({ transition: 'Auto', changes: [{ type: 'RemoveNode', nodeId: target }] });
    removalIndex = leader.lastLogId().index;
    await vi.advanceTimersByTimeAsync(20);
    bus.heal();
    // A forwarded transfer request naming the target (raft.go: a follower forwards MsgTransferLeader).
    bus.endpoints.get(leaderId)!.onMessage(makeMessage({ type: 'MsgTransferLeader', from: target, to: leaderId, term }));

    const seen: string[] = [];
    let targetClaimed = false;
    for (let t = 0; t < 1_500; t += 5) {
      await vi.advanceTimersByTimeAsync(5);
      const c = claimers();
      targetClaimed ||= c.includes(target);
      if (c.length > 1) seen.push(`${Date.now() - 1_000_000} ms: ${c.map((id) => `${id} (term ${members.get(id)!.view().term})`).join(' and ')}`);
    }
    const targetView = members.get(target)!.view();
    const transferee = leader.status().leadTransferee;
    for (const m of members.values()) await m.stop();
    // The schedule did what it meant to: the MsgTimeoutNow left and the target took a later term.
    expect(timeoutNowSent).toBe(true);
    expect(targetView.term).toBeGreaterThan(term);
    expect(targetClaimed).toBe(true);
    expect(transferee, 'raft gave the transfer up').toBe('');
    expect(seen, 'two members answered isLeader at once').toEqual([]);
  });
});
