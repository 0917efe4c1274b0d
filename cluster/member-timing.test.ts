import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { makeMessage } from '../raft/index.js';
import type { PeerTiming } from './interfaces.js';
import { LeaderLease } from './lease.js';
import { MemberTiming } from './member-timing.js';
import { MemoryTimingRecord, type TimingRecord } from './timing-record.js';

const Default: PeerTiming = { tickMs: 100, electionTicks: 10, maxClockDriftMs: 100 }; // R 900, lease 800
const Fast: PeerTiming = { tickMs: 20, electionTicks: 10, maxClockDriftMs: 20 }; // R 180, lease 160
const silent = pino({ level: 'silent' });

function started(own: PeerTiming, record = new MemoryTimingRecord(), fresh = false): MemberTiming {
  const timing = new MemberTiming(own, new LeaderLease('b', own), record, silent);
  timing.start(0, fresh);
  return timing;
}

describe('MemberTiming: the waits that cover another leader\'s lease', () => {
  it('default timing that never changed: a 900 ms cover, and a fresh start refuses votes for 2 x 900 + 100 ms', () => {
    // Every member announces its record, as the handshake does: R 900 and lease window 800.
    const record = new MemoryTimingRecord();
    const timing = started(Default, record, true);
    expect(record.value).toEqual({ longestRefusalWindowMs: 900, longestLeaseWindowMs: 800 });
    expect(timing.announcedRecord()).toEqual({ longestRefusalWindowMs: 900, longestLeaseWindowMs: 800 });
    for (const peer of ['a', 'c']) timing.peerTiming(peer, Default, { longestRefusalWindowMs: 900, longestLeaseWindowMs: 800 });
    expect(timing.otherLeaseCoverMs()).toBe(900);
    const vote = makeMessage({ type: 'MsgVote', from: 'a', to: 'b', term: 5, logTerm: 4 });
    expect(timing.refusesFreshVote(vote, 4, 1_899)).toBe(true);
    expect(timing.refusesFreshVote(vote, 4, 1_900)).toBe(false);
  });

  it('covers a peer\'s old, longer incarnation this member never linked to: its lease window plus the drift', () => {
    const timing = started(Fast);
    timing.peerTiming('a', Fast);
    expect(timing.otherLeaseCoverMs()).toBe(180);
    // a ran 100 ms ticks with a 10 ms drift bound before: an 890 ms lease window.
    timing.peerTiming('a', Fast, { longestRefusalWindowMs: 900, longestLeaseWindowMs: 890 });
    expect(timing.otherLeaseCoverMs()).toBe(890 + 20);
  });

  it('and never less than the old refusal window: the record keeps no drift, the old leader\'s may be unheard of here', () => {
    // a ran 100 ms ticks with a 100 ms drift bound: its old acks held at most 800 ms at a
    // leader whose own drift (up to 100 ms) this member may never have heard.
    const timing = started(Fast);
    timing.peerTiming('a', Fast, { longestRefusalWindowMs: 900, longestLeaseWindowMs: 800 });
    expect(timing.otherLeaseCoverMs()).toBe(900);
  });

  it('a member\'s own record counts the same way', () => {
    const timing = started(Fast, new MemoryTimingRecord({ longestRefusalWindowMs: 900, longestLeaseWindowMs: 890 }));
    expect(timing.announcedRecord()).toEqual({ longestRefusalWindowMs: 900, longestLeaseWindowMs: 890 });
    expect(timing.otherLeaseCoverMs()).toBe(890 + 20);
  });

  it('the record only grows, and is saved only when it does', () => {
    const saved: TimingRecord[] = [];
    const record = new MemoryTimingRecord({ longestRefusalWindowMs: 900, longestLeaseWindowMs: 800 });
    const save = record.save.bind(record);
    record.save = (r) => {
      saved.push(r);
      save(r);
    };
    started(Fast, record);
    expect(saved).toEqual([]);
    // Same refusal window, a smaller drift: a longer lease window is worth a write.
    started({ tickMs: 100, electionTicks: 10, maxClockDriftMs: 10 }, record);
    expect(saved).toEqual([{ longestRefusalWindowMs: 900, longestLeaseWindowMs: 890 }]);
  });

  it('a negative lease window is recorded as 0', () => {
    const record = new MemoryTimingRecord();
    started({ tickMs: 10, electionTicks: 5, maxClockDriftMs: 100 }, record);
    expect(record.value).toEqual({ longestRefusalWindowMs: 40, longestLeaseWindowMs: 0 });
  });
});
