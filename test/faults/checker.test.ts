import { describe, expect, it } from 'vitest';
import { check, committedConfigs, MaxPlaceableClaimMs, removalsCommitted, type ConfigRecord, type History, type Sample } from './checker.js';

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
    expect(v.violations[0]!.message).toBe('c#0 (in c) voted for b (log) and c (state-file) in term 3');
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

const conf = (voters: string[], learners: string[] = [], votersOutgoing: string[] = []): string =>
  JSON.stringify({ voters: [...voters].sort(), votersOutgoing: [...votersOutgoing].sort(), learners: [...learners].sort(), learnersNext: [], autoLeave: votersOutgoing.length > 0 });

/**
 * The same history in-cluster: identities are `<pod>@<uid>` (samples carry selfId/leaderId),
 * and the state files show a, b, c voting from index 2, d added as a learner at 5, and a (the
 * old leader, partitioned) removed at 7, first seen committed at 2300 in b's file.
 */
function inCluster(): History {
  const h = healthy();
  const id = (m: string | null): string | null => (m === null ? null : `${m}@u1`);
  h.samples = h.samples.map((s) => ({ ...s, selfId: id(s.member)!, leaderId: id(s.leader) }));
  h.roles = h.roles.map((r) => ({ ...r, identity: id(r.member)!, leader: id(r.leader) }));
  h.lives = h.lives.map((l) => ({ ...l, identity: id(l.member)! }));
  h.votes = h.votes.filter((v) => v.incarnation === 0).map((v) => ({ ...v, identity: id(v.member)!, vote: id(v.vote)! }));
  const three = { index: 2, conf: conf(['a@u1', 'b@u1', 'c@u1']) };
  const withD = { index: 5, conf: conf(['a@u1', 'b@u1', 'c@u1'], ['d@u1']) };
  const withoutA = { index: 7, conf: conf(['b@u1', 'c@u1'], ['d@u1']) };
  const rec = (member: string, atMs: number, configs: ConfigRecord['configs']): ConfigRecord => ({ member, identity: `${member}@u1`, atMs, commit: configs.at(-1)!.index, configs });
  h.configs = [rec('a', 100, [three]), rec('b', 100, [three]), rec('c', 110, [three]), rec('b', 2300, [three, withD, withoutA]), rec('c', 2310, [three, withD, withoutA])];
  return h;
}

describe('fault-run checker, membership', () => {
  it('passes an in-cluster history where the partitioned old leader is removed', () => {
    const v = check(inCluster());
    expect(v.violations).toEqual([]);
    expect(v.convergedAfterMs).not.toBeNull();
  });

  it('catches two members that committed different configurations at one index', () => {
    const h = inCluster();
    h.configs!.push({ member: 'a', identity: 'a@u1', atMs: 3200, commit: 5, configs: [{ index: 2, conf: conf(['a@u1', 'b@u1', 'c@u1']) }, { index: 5, conf: conf(['a@u1', 'b@u1', 'c@u1', 'e@u1']) }] });
    const v = check(h);
    expect(v.violations.map((x) => x.kind)).toEqual(['config-diverged']);
    expect(v.violations[0]!.message).toMatch(/^index 5: b@u1 committed .* a@u1 committed .*e@u1/);
  });

  it('catches a removed member that answers isLeader after its removal was seen committed, not before', () => {
    const h = inCluster();
    // Before b claims (2500), so no overlap: only the removal rule can object.
    h.samples.push({ member: 'a', sentMs: 2290, receivedMs: 2292, isLeader: true, leader: 'a', term: 2, selfId: 'a@u1', leaderId: 'a@u1' });
    expect(check(h).violations).toEqual([]);
    h.samples.push({ member: 'a', sentMs: 2400, receivedMs: 2402, isLeader: true, leader: 'a', term: 2, selfId: 'a@u1', leaderId: 'a@u1' });
    const v = check(h);
    expect(v.violations.map((x) => x.kind)).toEqual(['removed-isLeader']);
    expect(v.violations[0]!.message).toContain('a@u1 answered isLeader (term 2, sent 2400.0) after its removal at index 7 was seen committed at 2300.0');
  });

  it('keys votes on the pod incarnation: a new pod under the same name may vote again in a term', () => {
    const h = inCluster();
    h.votes.push({ member: 'c', incarnation: 1, identity: 'c@u2', atMs: 2395, term: 3, vote: 'c@u2', source: 'state-file' });
    expect(check(h).violations).toEqual([]);
    h.votes.push({ member: 'c', incarnation: 0, identity: 'c@u1', atMs: 2396, term: 3, vote: 'c@u1', source: 'state-file' });
    expect(check(h).violations.map((x) => x.kind)).toEqual(['double-vote']);
  });

  it('derives committed configurations from a state file, stopping at the commit index', () => {
    const snapshot = { index: 1, confState: { voters: ['a'], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false } };
    const entries = [
      { index: 2, confChange: { transition: 'Auto' as const, changes: [{ type: 'AddLearnerNode' as const, nodeId: 'b' }] } },
      { index: 3 },
      { index: 4, confChange: { transition: 'Auto' as const, changes: [{ type: 'AddNode' as const, nodeId: 'b' }] } },
      { index: 5, confChange: { transition: 'Auto' as const, changes: [{ type: 'RemoveNode' as const, nodeId: 'a' }] } },
    ];
    const { configs, error } = committedConfigs(snapshot, entries, 4);
    expect(error).toBeUndefined();
    expect(configs).toEqual([
      { index: 1, conf: conf(['a']) },
      { index: 2, conf: conf(['a'], ['b']) },
      { index: 4, conf: conf(['a', 'b']) },
    ]);
    const all = committedConfigs(snapshot, entries, 5).configs;
    expect(all.at(-1)).toEqual({ index: 5, conf: conf(['b']) });
    // A joiner never in a configuration is not removed; a was, and left at 5.
    expect([...removalsCommitted([{ member: 'b', identity: 'b', atMs: 10, commit: 5, configs: all }])]).toEqual([['a', { atMs: 10, index: 5 }]]);
  });
});
