import { describe, expect, it } from 'vitest';
import { LeaderLease, type LeaseConfig } from './lease.js';

const simple = (voters: string[]): LeaseConfig => ({ voters, votersOutgoing: [] });
const joint = (voters: string[], votersOutgoing: string[]): LeaseConfig => ({ voters, votersOutgoing });

const slow = { tickMs: 100, electionTicks: 10, maxClockDriftMs: 100 }; // R = 900, window 800
const fast = { tickMs: 20, electionTicks: 10, maxClockDriftMs: 20 }; // R = 180

describe('LeaderLease with mixed timing', () => {
  it('an ack holds for the follower\'s own window minus the larger drift bound', () => {
    const lease = new LeaderLease('a', slow);
    lease.setPeerTiming('b', fast);
    lease.setPeerTiming('c', slow);
    expect(lease.ackWindowMs('b')).toBe(180 - 100);
    expect(lease.ackWindowMs('c')).toBe(800);
  });

  it('the lease ends at the quorum-th latest per-ack expiry, not at this leader\'s own window', () => {
    // The case: a leads with 100 ms ticks, b and c run 20 ms ticks.
    const lease = new LeaderLease('a', slow);
    const config = simple(['a', 'b', 'c']);
    lease.setPeerTiming('b', fast);
    lease.setPeerTiming('c', fast);
    lease.heartbeatSent('1', 1_000);
    lease.heartbeatAcked('b', '1');
    lease.heartbeatAcked('c', '1');
    expect(lease.expiresAtMs(1_010, config)).toBe(1_080);
    // One slow follower is enough for a quorum of 3: the latest expiry wins.
    lease.setPeerTiming('c', slow);
    lease.heartbeatSent('2', 1_050);
    lease.heartbeatAcked('c', '2');
    expect(lease.expiresAtMs(1_060, config)).toBe(1_850);
  });

  it('in a group of five the second-latest expiry of the others bounds the lease', () => {
    const lease = new LeaderLease('a', slow);
    const config = simple(['a', 'b', 'c', 'd', 'e']);
    for (const id of ['b', 'c']) lease.setPeerTiming(id, slow);
    for (const id of ['d', 'e']) lease.setPeerTiming(id, fast);
    lease.heartbeatSent('1', 0);
    for (const id of ['b', 'd', 'e']) lease.heartbeatAcked(id, '1');
    expect(lease.expiresAtMs(1, config)).toBe(80);
    lease.heartbeatAcked('c', '1');
    expect(lease.expiresAtMs(1, config)).toBe(800);
  });

  it('an ack from a peer whose timing is unknown counts for nothing', () => {
    const lease = new LeaderLease('a', slow);
    const config = simple(['a', 'b', 'c']);
    lease.heartbeatSent('1', 0);
    lease.heartbeatAcked('b', '1');
    lease.heartbeatAcked('c', '1');
    expect(lease.expiresAtMs(1, config)).toBeUndefined();
  });

  it('a window that is not positive counts for nothing', () => {
    const lease = new LeaderLease('a', slow);
    const config = simple(['a', 'b', 'c']);
    lease.setPeerTiming('b', { tickMs: 10, electionTicks: 5, maxClockDriftMs: 5 }); // 40 - 100 < 0
    lease.heartbeatSent('1', 0);
    lease.heartbeatAcked('b', '1');
    expect(lease.ackWindowMs('b')).toBeUndefined();
    expect(lease.expiresAtMs(1, config)).toBeUndefined();
  });

  it('an ack keeps the window announced when it was given, after the peer announces shorter timing', () => {
    const lease = new LeaderLease('a', slow);
    const config = simple(['a', 'b', 'c']);
    lease.setPeerTiming('b', slow);
    lease.heartbeatSent('1', 0);
    lease.heartbeatAcked('b', '1');
    // b restarts with 20 ms ticks; its start-up vote refusal covers the 900 ms it announced.
    lease.setPeerTiming('b', fast);
    lease.heartbeatSent('2', 100);
    lease.heartbeatAcked('b', '2');
    expect(lease.expiresAtMs(101, config)).toBe(800);
  });

  it('the waits that cover another leader\'s lease use the longest window and drift announced', () => {
    const lease = new LeaderLease('b', fast);
    expect(lease.longestLeaseWindowMs() + lease.largestDriftMs()).toBe(180);
    lease.setPeerTiming('a', slow);
    expect(lease.longestLeaseWindowMs()).toBe(800);
    expect(lease.largestDriftMs()).toBe(100);
  });

  it('those waits keep a window a peer announced before it restarted with shorter timing', () => {
    // Its old acks still count with the old window at whichever leader holds them.
    const lease = new LeaderLease('b', fast);
    lease.setPeerTiming('a', slow);
    lease.setPeerTiming('a', fast);
    expect(lease.ackWindowMs('a')).toBe(160); // new acks count with the new window
    expect(lease.longestLeaseWindowMs()).toBe(800);
    expect(lease.largestDriftMs()).toBe(100);
  });

  it('those waits count the longest lease window a peer\'s timing record holds, from restarts this member never linked to', () => {
    // a acked some leader under 100 ms ticks, restarted with 20 ms before b ever linked to it:
    // b hears only the short timing, and the 800 ms lease window (900 ms refusal) of a's record.
    const lease = new LeaderLease('b', fast);
    lease.setPeerTiming('a', fast, { longestRefusalWindowMs: 900, longestLeaseWindowMs: 800 });
    expect(lease.ackWindowMs('a')).toBe(160); // acks given now count with the timing announced now
    expect(lease.peerTiming('a')).toEqual(fast);
    // As an announced (R - drift): the drift stays the largest one announced.
    expect(lease.longestLeaseWindowMs()).toBe(800);
    expect(lease.largestDriftMs()).toBe(20);
    expect(lease.longestRecordedRefusalWindowMs()).toBe(900);
    // Kept over a relink that announces none (an older build), and never lowered by a shorter record.
    lease.setPeerTiming('a', fast);
    lease.setPeerTiming('a', fast, { longestRefusalWindowMs: 180, longestLeaseWindowMs: 160 });
    expect(lease.longestLeaseWindowMs()).toBe(800);
    expect(lease.longestRecordedRefusalWindowMs()).toBe(900);
  });

  it('at matching default timing the record adds nothing: longest lease window plus drift stays 900 ms', () => {
    const lease = new LeaderLease('b', slow);
    for (const peer of ['a', 'c']) lease.setPeerTiming(peer, slow, { longestRefusalWindowMs: 900, longestLeaseWindowMs: 800 });
    expect(lease.longestLeaseWindowMs() + lease.largestDriftMs()).toBe(900);
  });

  it('a refusal window announced without a lease window counts whole', () => {
    const lease = new LeaderLease('b', fast);
    lease.setPeerTiming('a', fast, { longestRefusalWindowMs: 900 });
    expect(lease.longestLeaseWindowMs()).toBe(900);
  });

  it('an older peer that announces no record changes nothing', () => {
    const lease = new LeaderLease('b', fast);
    lease.setPeerTiming('a', fast);
    expect(lease.longestLeaseWindowMs()).toBe(160);
    expect(lease.largestDriftMs()).toBe(20);
    expect(lease.longestRecordedRefusalWindowMs()).toBe(0);
  });

  it('reset forgets the acks of an earlier leadership', () => {
    const lease = new LeaderLease('a', slow);
    const config = simple(['a', 'b', 'c']);
    lease.setPeerTiming('b', slow);
    lease.heartbeatSent('1', 0);
    lease.heartbeatAcked('b', '1');
    lease.reset();
    expect(lease.expiresAtMs(1, config)).toBeUndefined();
  });
});

describe('LeaderLease across configuration changes', () => {
  const acked = (self: string, peers: string[], sentAtMs = 0): LeaderLease => {
    const lease = new LeaderLease(self, slow);
    for (const id of peers) lease.setPeerTiming(id, slow);
    lease.heartbeatSent('1', sentAtMs);
    for (const id of peers) lease.heartbeatAcked(id, '1');
    return lease;
  };

  it('while joint, a quorum of the incoming half alone is not enough', () => {
    // Old {a,b,c}, new {a,d,e}: d and e acked, b and c did not.
    const lease = acked('a', ['d', 'e']);
    expect(lease.expiresAtMs(1, simple(['a', 'd', 'e']))).toBe(800);
    expect(lease.expiresAtMs(1, joint(['a', 'd', 'e'], ['a', 'b', 'c']))).toBeUndefined();
  });

  it('while joint, a quorum of the outgoing half alone is not enough', () => {
    const lease = acked('a', ['b', 'c']);
    expect(lease.expiresAtMs(1, joint(['a', 'd', 'e'], ['a', 'b', 'c']))).toBeUndefined();
  });

  it('while joint, the lease is the earlier of the two halves\' leases', () => {
    const lease = new LeaderLease('a', slow);
    for (const id of ['b', 'd']) lease.setPeerTiming(id, slow);
    lease.heartbeatSent('1', 0);
    lease.heartbeatSent('2', 300);
    lease.heartbeatAcked('b', '1');
    lease.heartbeatAcked('d', '2');
    expect(lease.expiresAtMs(1, joint(['a', 'd', 'e'], ['a', 'b', 'c']))).toBe(800);
    expect(lease.expiresAtMs(1, simple(['a', 'd', 'e']))).toBe(1_100);
  });

  it('an ack given as a learner counts once the acker is a voter at check time', () => {
    const lease = acked('a', ['d']);
    // d was a learner when it acked: it counts in no configuration that lacks it as a voter.
    expect(lease.expiresAtMs(1, simple(['a', 'b', 'c']))).toBeUndefined();
    // After the promotion applies, the same ack (d refuses votes whatever its role) counts.
    expect(lease.expiresAtMs(1, simple(['a', 'b', 'c', 'd']))).toBeUndefined();
    expect(lease.expiresAtMs(1, simple(['a', 'b', 'd']))).toBe(800);
  });

  it('an ack of a removed member stops counting the moment its removal applies', () => {
    const lease = acked('a', ['b', 'c']);
    expect(lease.expiresAtMs(1, simple(['a', 'b', 'c']))).toBe(800);
    // c removed and e added: only b of the new three acked, and b plus a is the quorum of 3.
    expect(lease.expiresAtMs(1, simple(['a', 'b', 'e']))).toBe(800);
    // Both acked peers removed: nothing holds.
    expect(lease.expiresAtMs(1, simple(['a', 'd', 'e']))).toBeUndefined();
  });

  it('a configuration that grows needs more acks, recomputed at once', () => {
    const lease = acked('a', ['b']);
    expect(lease.expiresAtMs(1, simple(['a', 'b', 'c']))).toBe(800);
    expect(lease.expiresAtMs(1, simple(['a', 'b', 'c', 'd']))).toBeUndefined();
  });

  it('a shrinking configuration may lease on fewer acks; a single voter leases on its own window', () => {
    const lease = acked('a', []);
    expect(lease.expiresAtMs(1, simple(['a', 'b', 'c']))).toBeUndefined();
    expect(lease.expiresAtMs(5, simple(['a']))).toBe(805);
  });

  it('a leader outside a configuration needs a full quorum of others there', () => {
    const lease = acked('a', ['b', 'c']);
    expect(lease.expiresAtMs(1, joint(['b', 'c', 'd'], ['a', 'b', 'c']))).toBe(800);
    expect(lease.expiresAtMs(1, joint(['b', 'd', 'e'], ['a', 'b', 'c']))).toBeUndefined();
  });

  it('acks from more peers than the bound forget the oldest announced ones', () => {
    const lease = new LeaderLease('a', slow, 256, 2);
    for (const id of ['b', 'c', 'd']) lease.setPeerTiming(id, slow);
    expect(lease.peerTiming('b')).toBeUndefined();
    expect(lease.peerTiming('d')).toEqual(slow);
  });
});
