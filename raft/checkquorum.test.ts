import { describe, expect, it } from 'vitest';
import { fixedRandom, newTestRaft, readMessages, TestNetwork } from '../test/harness/network.js';
import { CampaignTransferContext, makeMessage } from './types.js';

/** Ticks a member with its output lost (etcd tests tick a raft without delivering). */
function tickSilently(nt: TestNetwork, id: string, times: number): void {
  for (let i = 0; i < times; i++) nt.node(id).tick();
  nt.drain(id);
}

/** Per-member randomized timeout offsets (etcd's setRandomizedElectionTimeout(r, et + offset)). */
function offsets(map: Record<string, number>) {
  return (id: string) => ({ random: fixedRandom(map[id] ?? 0) });
}

describe('CheckQuorum step-down', () => {
  it('etcd TestLeaderStepdownWhenQuorumActive: a leader hearing from a quorum stays leader', () => {
    const r = newTestRaft('a', ['a', 'b', 'c'], { checkQuorum: true, electionTick: 5 });
    r.becomeCandidate();
    r.becomeLeader();
    for (let i = 0; i < 6; i++) {
      r.step(makeMessage({ type: 'MsgHeartbeatResp', from: 'b', to: 'a', term: r.term }));
      r.tick();
    }
    expect(r).toMatchObject({ state: 'Leader', term: 1, lead: 'a' });
  });

  it('etcd TestLeaderStepdownWhenQuorumLost: a leader hearing from nobody steps down after one election timeout, same term', () => {
    const r = newTestRaft('a', ['a', 'b', 'c'], { checkQuorum: true, electionTick: 5 });
    r.becomeCandidate();
    r.becomeLeader();
    for (let i = 0; i < 4; i++) r.tick();
    expect(r.state).toBe('Leader');
    r.tick();
    expect(r).toMatchObject({ state: 'Follower', term: 1, lead: '' });
  });

  it('without CheckQuorum an isolated leader keeps believing it leads', () => {
    const r = newTestRaft('a', ['a', 'b', 'c'], { checkQuorum: false, electionTick: 5 });
    r.becomeCandidate();
    r.becomeLeader();
    for (let i = 0; i < 50; i++) r.tick();
    expect(r.state).toBe('Leader');
  });

  it('a leader cut off from a quorum in a 5-member group steps down; the majority side elects a new leader', () => {
    const nt = new TestNetwork(['a', 'b', 'c', 'd', 'e'], { checkQuorum: true, preVote: true, seed: 5 });
    nt.campaign('a');
    nt.partition(['a', 'b'], ['c', 'd', 'e']);
    nt.tickAll(40);
    // a stepped down (it may be pre-campaigning since), and the minority side cannot win.
    expect(nt.status('a').state).not.toBe('Leader');
    expect(nt.status('a').term).toBe(1);
    expect(nt.status('b').state).not.toBe('Leader');
    const leaders = nt.leaders();
    expect(leaders).toHaveLength(1);
    expect(['c', 'd', 'e']).toContain(leaders[0]!.id);
    expect(leaders[0]!.term).toBe(2);
  });

  it('CheckQuorum marks every peer inactive again after each check', () => {
    const r = newTestRaft('a', ['a', 'b', 'c'], { checkQuorum: true, electionTick: 5 });
    r.becomeCandidate();
    r.becomeLeader();
    r.step(makeMessage({ type: 'MsgHeartbeatResp', from: 'b', to: 'a', term: 1 }));
    for (let i = 0; i < 5; i++) r.tick(); // first check passes on b's answer
    expect(r.state).toBe('Leader');
    expect(r.status().progress['b']!.recentActive).toBe(false);
    expect(r.status().progress['a']!.recentActive).toBe(true);
    for (let i = 0; i < 5; i++) r.tick(); // nobody answered since: step down
    expect(r.state).toBe('Follower');
  });
});

describe('the vote lease', () => {
  it('etcd TestLeaderSupersedingWithCheckQuorum: a follower in lease ignores a candidate until its lease runs out', () => {
    const nt = new TestNetwork(['a', 'b', 'c'], { checkQuorum: true, configure: offsets({ b: 1 }) });
    tickSilently(nt, 'b', 10);
    nt.campaign('a');
    expect(nt.status('a').state).toBe('Leader');
    expect(nt.status('c').state).toBe('Follower');
    nt.campaign('c');
    // b heard from a within the election timeout: it drops c's request.
    expect(nt.status('c')).toMatchObject({ state: 'Candidate', term: 2 });
    expect(nt.status('b')).toMatchObject({ term: 1, lead: 'a' });
    tickSilently(nt, 'b', 10);
    nt.campaign('c');
    expect(nt.status('c')).toMatchObject({ state: 'Leader', term: 3 });
  });

  it('etcd TestLeaderElectionWithCheckQuorum: right after start votes are cast at once; later the lease decides', () => {
    const nt = new TestNetwork(['a', 'b', 'c'], { checkQuorum: true, configure: offsets({ a: 1, b: 2 }) });
    nt.campaign('a');
    expect(nt.status('a').state).toBe('Leader');
    expect(nt.status('c').state).toBe('Follower');
    tickSilently(nt, 'a', 10); // a's heartbeats are lost; its clock restarts, so a itself is in lease
    tickSilently(nt, 'b', 10); // b's lease on a runs out (its timeout is et+2, so it does not campaign)
    expect(nt.status('b')).toMatchObject({ state: 'Follower', electionElapsed: 10 });
    nt.campaign('c');
    expect(nt.status('a')).toMatchObject({ state: 'Follower', term: 2, lead: 'c' });
    expect(nt.status('c')).toMatchObject({ state: 'Leader', term: 2 });
  });

  it('etcd TestFreeStuckCandidateWithCheckQuorum: a stale heartbeat frees a stuck candidate by deposing the leader', () => {
    const nt = new TestNetwork(['a', 'b', 'c'], { checkQuorum: true, configure: offsets({ b: 1 }) });
    tickSilently(nt, 'b', 10);
    nt.campaign('a');
    nt.isolate('a');
    nt.campaign('c');
    expect(nt.status('b')).toMatchObject({ state: 'Follower', term: 1 });
    expect(nt.status('c')).toMatchObject({ state: 'Candidate', term: 2 });
    nt.campaign('c');
    expect(nt.status('b')).toMatchObject({ state: 'Follower', term: 1 });
    expect(nt.status('c')).toMatchObject({ state: 'Candidate', term: 3 });
    nt.recover();
    nt.send(makeMessage({ type: 'MsgHeartbeat', from: 'a', to: 'c', term: 1 }));
    expect(nt.status('a')).toMatchObject({ state: 'Follower', term: 3 });
    nt.campaign('c');
    expect(nt.status('c')).toMatchObject({ state: 'Leader', term: 4 });
  });

  it('etcd TestNonPromotableVoterWithCheckQuorum: a non-promotable member still follows and votes', () => {
    const nt = new TestNetwork(['a', 'b'], {
      checkQuorum: true,
      configure: (id) => (id === 'b' ? { voters: ['a'], learners: ['b'], random: fixedRandom(1) } : {}),
    });
    tickSilently(nt, 'b', 10);
    nt.campaign('a');
    expect(nt.status('a')).toMatchObject({ state: 'Leader', term: 1 });
    expect(nt.status('b')).toMatchObject({ state: 'Follower', lead: 'a' });
    nt.tick('b', 100);
    expect(nt.status('b')).toMatchObject({ state: 'Follower', term: 1 });
  });

  it('a leader itself drops a higher-term vote request while in lease (no term change, no answer)', () => {
    const r = newTestRaft('a', ['a', 'b', 'c'], { checkQuorum: true });
    r.becomeCandidate();
    r.becomeLeader();
    readMessages(r);
    r.step(makeMessage({ type: 'MsgVote', from: 'b', to: 'a', term: 5, index: 9, logTerm: 9 }));
    expect(readMessages(r)).toEqual([]);
    expect(r).toMatchObject({ state: 'Leader', term: 1 });
  });

  it.each(['MsgVote', 'MsgPreVote'] as const)('a follower in lease answers a %s that carries the transfer context', (type) => {
    const r = newTestRaft('a', ['a', 'b', 'c'], { checkQuorum: true, preVote: true });
    r.becomeFollower(1, 'b');
    r.step(makeMessage({ type, from: 'c', to: 'a', term: 2, index: 5, logTerm: 1, context: CampaignTransferContext }));
    const msgs = readMessages(r);
    expect(msgs).toHaveLength(1);
    expect(msgs[0]).toMatchObject({ type: `${type}Resp`, reject: false, term: 2 });
    expect(r.term).toBe(type === 'MsgVote' ? 2 : 1);
  });

  it('etcd TestDisruptiveFollower: without PreVote, a timed-out follower deposes the leader via its MsgAppResp', () => {
    const nt = new TestNetwork(['a', 'b', 'c'], { checkQuorum: true, configure: offsets({ c: 2 }) });
    nt.campaign('a');
    expect(nt.status('a').state).toBe('Leader');
    for (let i = 0; i < 12; i++) nt.node('c').tick(); // its vote requests stay queued
    expect(nt.status('c')).toMatchObject({ state: 'Candidate', term: 2 });
    // The leader's delayed heartbeat finally arrives; c answers with its higher term.
    nt.send(makeMessage({ type: 'MsgHeartbeat', from: 'a', to: 'c', term: 1 }));
    expect(nt.status('a')).toMatchObject({ state: 'Follower', term: 2 });
    expect(nt.status('b')).toMatchObject({ state: 'Follower', term: 1 });
    expect(nt.status('c')).toMatchObject({ state: 'Candidate', term: 2 });
  });
});

describe('a partitioned member rejoining', () => {
  it('with PreVote and CheckQuorum it does not disrupt the leader: same leader, same term', () => {
    const nt = new TestNetwork(['a', 'b', 'c'], { checkQuorum: true, preVote: true, seed: 9 });
    nt.campaign('a');
    nt.isolate('c');
    nt.tickAll(100);
    expect(nt.status('c')).toMatchObject({ term: 1, lead: '' });
    expect(nt.status('c').state).not.toBe('Candidate');
    nt.recover();
    nt.tickAll(30);
    expect(nt.leaders()).toEqual([{ id: 'a', term: 1 }]);
    expect(nt.status('c')).toMatchObject({ state: 'Follower', term: 1, lead: 'a' });
  });

  it('without PreVote its raised term forces a new election when it rejoins', () => {
    const nt = new TestNetwork(['a', 'b', 'c'], { checkQuorum: true, preVote: false, seed: 9 });
    nt.campaign('a');
    nt.isolate('c');
    nt.act('a', (n) => n.propose()); // c's log falls behind
    nt.tickAll(100);
    const isolatedTerm = nt.status('c').term;
    expect(isolatedTerm).toBeGreaterThan(2);
    nt.recover();
    nt.tickAll(60);
    const leaders = nt.leaders();
    expect(leaders).toHaveLength(1);
    expect(leaders[0]!.term).toBeGreaterThanOrEqual(isolatedTerm);
    // c's log is behind, so it cannot be the one that wins.
    expect(leaders[0]!.id).not.toBe('c');
  });
});
