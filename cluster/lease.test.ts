import { describe, expect, it } from 'vitest';
import { LeaderLease } from './lease.js';

const slow = { tickMs: 100, electionTicks: 10, maxClockDriftMs: 100 }; // R = 900, window 800
const fast = { tickMs: 20, electionTicks: 10, maxClockDriftMs: 20 }; // R = 180

describe('LeaderLease with mixed timing', () => {
  it('an ack holds for the follower\'s own window minus the larger drift bound', () => {
    const lease = new LeaderLease('a', ['a', 'b', 'c'], slow);
    lease.setPeerTiming('b', fast);
    lease.setPeerTiming('c', slow);
    expect(lease.ackWindowMs('b')).toBe(180 - 100);
    expect(lease.ackWindowMs('c')).toBe(800);
  });

  it('the lease ends at the quorum-th latest per-ack expiry, not at this leader\'s own window', () => {
    // The case: a leads with 100 ms ticks, b and c run 20 ms ticks.
    const lease = new LeaderLease('a', ['a', 'b', 'c'], slow);
    lease.setPeerTiming('b', fast);
    lease.setPeerTiming('c', fast);
    lease.heartbeatSent('1', 1_000);
    lease.heartbeatAcked('b', '1');
    lease.heartbeatAcked('c', '1');
    expect(lease.expiresAtMs(1_010)).toBe(1_080);
    // One slow follower is enough for a quorum of 3: the latest expiry wins.
    lease.setPeerTiming('c', slow);
    lease.heartbeatSent('2', 1_050);
    lease.heartbeatAcked('c', '2');
    expect(lease.expiresAtMs(1_060)).toBe(1_850);
  });

  it('in a group of five the second-latest expiry of the others bounds the lease', () => {
    const lease = new LeaderLease('a', ['a', 'b', 'c', 'd', 'e'], slow);
    for (const id of ['b', 'c']) lease.setPeerTiming(id, slow);
    for (const id of ['d', 'e']) lease.setPeerTiming(id, fast);
    lease.heartbeatSent('1', 0);
    for (const id of ['b', 'd', 'e']) lease.heartbeatAcked(id, '1');
    expect(lease.expiresAtMs(1)).toBe(80);
    lease.heartbeatAcked('c', '1');
    expect(lease.expiresAtMs(1)).toBe(800);
  });

  it('an ack from a peer whose timing is unknown counts for nothing', () => {
    const lease = new LeaderLease('a', ['a', 'b', 'c'], slow);
    lease.heartbeatSent('1', 0);
    lease.heartbeatAcked('b', '1');
    lease.heartbeatAcked('c', '1');
    expect(lease.expiresAtMs(1)).toBeUndefined();
  });

  it('a window that is not positive counts for nothing', () => {
    const lease = new LeaderLease('a', ['a', 'b', 'c'], slow);
    lease.setPeerTiming('b', { tickMs: 10, electionTicks: 5, maxClockDriftMs: 5 }); // 40 - 100 < 0
    lease.heartbeatSent('1', 0);
    lease.heartbeatAcked('b', '1');
    expect(lease.ackWindowMs('b')).toBeUndefined();
    expect(lease.expiresAtMs(1)).toBeUndefined();
  });

  it('an ack keeps the window announced when it was given, after the peer announces shorter timing', () => {
    const lease = new LeaderLease('a', ['a', 'b', 'c'], slow);
    lease.setPeerTiming('b', slow);
    lease.heartbeatSent('1', 0);
    lease.heartbeatAcked('b', '1');
    // b restarts with 20 ms ticks; its start-up vote refusal covers the 900 ms it announced.
    lease.setPeerTiming('b', fast);
    lease.heartbeatSent('2', 100);
    lease.heartbeatAcked('b', '2');
    expect(lease.expiresAtMs(101)).toBe(800);
  });

  it('the waits that cover another leader\'s lease use the longest window and drift announced', () => {
    const lease = new LeaderLease('b', ['a', 'b', 'c'], fast);
    expect(lease.longestLeaseWindowMs() + lease.largestDriftMs()).toBe(180);
    lease.setPeerTiming('a', slow);
    expect(lease.longestLeaseWindowMs()).toBe(800);
    expect(lease.largestDriftMs()).toBe(100);
  });

  it('reset forgets the acks of an earlier leadership', () => {
    const lease = new LeaderLease('a', ['a', 'b', 'c'], slow);
    lease.setPeerTiming('b', slow);
    lease.heartbeatSent('1', 0);
    lease.heartbeatAcked('b', '1');
    lease.reset();
    expect(lease.expiresAtMs(1)).toBeUndefined();
  });
});
