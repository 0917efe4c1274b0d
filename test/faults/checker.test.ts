import { describe, expect, it } from 'vitest';
import { check, MaxPlaceableClaimMs, type History, type Sample } from './checker.js';

const ET = 1000;

function sample(member: string, sentMs: number, isLeader: boolean, leader: string | null, term: number, receivedMs = sentMs + 2): Sample {
  return { member, sentMs, receivedMs, isLeader, leader, term };
}

/** Three members; a leads term 2, is partitioned at 1000, b leads term 3 from 2500; healed at 3000. */
function healthy(): History {
  const samples: Sample[] = [];
  for (let t = 0; t < 1800; t += 10) {
    samples.push(sample('a', t, t < 1800 && t < 1700, 'a', 2));
    samples.push(sample('c', t + 1, false, 'a', 2));
  }
  for (let t = 0; t < 2500; t += 10) samples.push(sample('b', t + 2, false, t < 1000 ? 'a' : null, 2));
  for (let t = 2500; t < 4000; t += 10) {
    samples.push(sample('b', t, true, 'b', 3));
    samples.push(sample('c', t + 1, false, 'b', 3));
  }
  for (let t = 3000; t < 4000; t += 10) samples.push(sample('a', t + 3, false, 'b', 3));
  return {
    members: ['a', 'b', 'c'],
    electionTimeoutMs: ET,
    samples,
    lives: ['a', 'b', 'c'].map((member) => ({ member, incarnation: 0, startMs: -100, endMs: null })),
    roles: [
      { member: 'a', incarnation: 0, atMs: -50, term: 2, role: 'Leader', leader: 'a' },
      { member: 'b', incarnation: 0, atMs: -50, term: 2, role: 'Follower', leader: 'a' },
      { member: 'b', incarnation: 0, atMs: 2400, term: 3, role: 'Leader', leader: 'b' },
      { member: 'a', incarnation: 0, atMs: 3050, term: 3, role: 'Follower', leader: 'b' },
    ],
    votes: [
      { member: 'c', incarnation: 0, atMs: -60, term: 2, vote: 'a', source: 'state-file' },
      { member: 'c', incarnation: 0, atMs: 2390, term: 3, vote: 'b', source: 'log' },
      { member: 'c', incarnation: 0, atMs: 2391, term: 3, vote: 'b', source: 'state-file' },
      // A wiped data dir is a new identity: voting again in term 3 is not a double vote.
      { member: 'a', incarnation: 0, atMs: -60, term: 2, vote: 'a', source: 'state-file' },
      { member: 'a', incarnation: 1, atMs: 3020, term: 3, vote: 'b', source: 'state-file' },
    ],
    faults: [{ kind: 'partition-leader', detail: 'a | b c', startMs: 1000, endMs: 3000 }],
    healedMs: 3000,
    endMs: 4000,
  };
}

describe('fault-run checker', () => {
  it('passes a correct history and measures the leaderless stretch', () => {
    const v = check(healthy());
    expect(v.violations).toEqual([]);
    expect(v.violationCount).toBe(0);
    expect(v.leaderChanges).toBe(2);
    expect(v.faultsInjected).toBe(1);
    // a's last claim ends at 1692, b's first starts at 2500.
    expect(v.worstNoLeaderMs).toBeCloseTo(808, 0);
    expect(v.worstNoLeaderByKindMs['partition-leader']).toBe(v.worstNoLeaderMs);
    // Before the fault only the sampling interval shows.
    expect(v.worstNoLeaderByKindMs.none).toBeLessThanOrEqual(10);
    expect(v.convergedAfterMs).not.toBeNull();
    expect(v.convergedAfterMs!).toBeLessThan(50);
  });

  it('gives a leaderless stretch to the fault that caused it, even when the last answer came just before it', () => {
    const h = healthy();
    // As with a SIGKILL: the old leader's last answer (received at 1692) precedes the recorded start.
    h.faults[0]!.startMs = 1695;
    h.faults[0]!.kind = 'kill-leader';
    expect(check(h).worstNoLeaderByKindMs['kill-leader']).toBeCloseTo(808, 0);
  });

  it('catches two leaders in one term', () => {
    const h = healthy();
    h.roles.push({ member: 'c', incarnation: 0, atMs: 2450, term: 3, role: 'Leader', leader: 'c' });
    const v = check(h);
    expect(v.violations.map((x) => x.kind)).toEqual(['two-leaders-in-term']);
    expect(v.violations[0]!.message).toContain('term 3');
  });

  it('catches overlapping isLeader answers, accounting for the sampling window', () => {
    const h = healthy();
    // a still claims at 2495..2505 while b claims from 2500.
    h.samples.push(sample('a', 2495, true, 'a', 2, 2505));
    const v = check(h);
    expect(v.violations.map((x) => x.kind)).toEqual(['overlapping-isLeader']);
    expect(v.violations[0]!.message).toMatch(/a \(term 2.*b \(term 3/);
  });

  it('does not call windows that only touch different instants an overlap', () => {
    const h = healthy();
    h.samples.push(sample('a', 2480, true, 'a', 2, 2499.9));
    expect(check(h).violations).toEqual([]);
  });

  it('does not place a claim whose request outlasted a pause: the answer may predate it (seed 286202, SIGSTOP of the leader)', () => {
    const h = healthy();
    // a computed isLeader just before a SIGSTOP and sent it 1.2 s later; b led meanwhile.
    h.samples.push(sample('a', 1750, true, 'a', 2, 2990));
    expect(check(h).violations).toEqual([]);
    // The same overlap from a request that took no longer than a honest one still counts.
    h.samples.push(sample('a', 2500 - MaxPlaceableClaimMs / 2, true, 'a', 2, 2500 + MaxPlaceableClaimMs / 2));
    const kinds = new Set(check(h).violations.map((x) => x.kind));
    expect([...kinds]).toEqual(['overlapping-isLeader']);
  });

  it('catches a term that goes back for one identity', () => {
    const h = healthy();
    h.votes.push({ member: 'b', incarnation: 0, atMs: 3500, term: 3, vote: 'b', source: 'state-file' });
    h.votes.push({ member: 'b', incarnation: 0, atMs: 3600, term: 2, vote: 'a', source: 'state-file' });
    const v = check(h);
    expect(v.violations.map((x) => x.kind)).toEqual(['term-went-back']);
    expect(v.violations[0]!.message).toContain('b#0 (state file): term 3 then 2');
  });

  it('catches one identity voting twice in a term, from the state file and the log', () => {
    const h = healthy();
    h.votes.push({ member: 'c', incarnation: 0, atMs: 2395, term: 3, vote: 'c', source: 'state-file' });
    const v = check(h);
    expect(v.violations.map((x) => x.kind)).toEqual(['double-vote']);
    expect(v.violations[0]!.message).toBe('c (incarnation 0) voted for b (log) and c (state-file) in term 3');
  });

  it('catches no leader within 5 election timeouts after the faults stop', () => {
    const h = healthy();
    h.healedMs = 1000;
    h.endMs = 9000;
    h.samples = h.samples.filter((s) => s.sentMs < 1000 || s.member !== 'c');
    const v = check(h);
    expect(v.violations.map((x) => x.kind)).toEqual(['no-convergence']);
  });

  it('catches a late agreement', () => {
    const h = healthy();
    h.healedMs = -4000;
    h.samples = h.samples.filter((s) => s.sentMs >= 1500);
    const v = check(h);
    expect(v.violations.map((x) => x.kind)).toEqual(['no-convergence']);
    expect(v.violations[0]!.message).toMatch(/over the 5000 ms bound/);
  });
});
