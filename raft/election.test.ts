import { describe, expect, it } from 'vitest';
import { durableState, fixedRandom, newTestRaft, readMessages, TestNetwork } from '../test/harness/network.js';
import { makeMessage, type StateType } from './types.js';

// Scenarios modelled on etcd-raft's raft_test.go election tests. Members are
// a, b, c, d, e (etcd's 1..5); "down" members are etcd's nopStepper.

const ids = (n: number) => ['a', 'b', 'c', 'd', 'e'].slice(0, n);

describe('leader election (etcd TestLeaderElection / TestLeaderElectionPreVote)', () => {
  for (const preVote of [false, true]) {
    // A failed pre-election leaves the node a pre-candidate at its old term.
    const lostState: StateType = preVote ? 'PreCandidate' : 'Candidate';
    const lostTerm = preVote ? 0 : 1;
    it.each([
      { size: 1, down: [] as string[], state: 'Leader' as StateType, term: 1 },
      { size: 3, down: [], state: 'Leader' as StateType, term: 1 },
      { size: 3, down: ['c'], state: 'Leader' as StateType, term: 1 },
      { size: 3, down: ['b', 'c'], state: lostState, term: lostTerm },
      { size: 4, down: ['b', 'c'], state: lostState, term: lostTerm },
      { size: 5, down: ['b', 'c'], state: 'Leader' as StateType, term: 1 },
      { size: 5, down: ['b', 'c', 'd'], state: lostState, term: lostTerm },
    ])(`preVote=${preVote}: $size members, down $down -> a is $state at term $term`, ({ size, down, state, term }) => {
      const nt = new TestNetwork(ids(size), { preVote, down });
      nt.campaign('a');
      const s = nt.status('a');
      expect(s.state).toBe(state);
      expect(s.term).toBe(term);
      expect(s.lead).toBe(state === 'Leader' ? 'a' : '');
      for (const id of ids(size)) {
        if (id === 'a' || down.includes(id)) continue;
        expect(nt.status(id).state).toBe('Follower');
        expect(nt.status(id).lead).toBe(state === 'Leader' ? 'a' : '');
      }
    });

    it(`preVote=${preVote}: voters whose logs are further along in the same term reject a and make it a follower`, () => {
      // etcd: nil, entsWithConfig(1), entsWithConfig(1), entsWithConfig(1, 1), nil
      const nt = new TestNetwork(ids(5), { preVote, down: ['b', 'c', 'd'] });
      nt.storage.set('b', durableState(1, '', [1]));
      nt.storage.set('c', durableState(1, '', [1]));
      nt.storage.set('d', durableState(1, '', [1, 1]));
      for (const id of ['b', 'c', 'd']) nt.start(id);
      nt.campaign('a');
      expect(nt.status('a')).toMatchObject({ state: 'Follower', term: 1, lead: '' });
      expect(nt.leaders()).toEqual([]);
    });
  }
});

describe('leader cycle (etcd TestLeaderCycle / PreVote)', () => {
  it.each([false, true])('preVote=%s: each member campaigns and wins in turn', (preVote) => {
    const nt = new TestNetwork(ids(3), { preVote });
    let term = 0;
    for (const campaigner of ids(3)) {
      nt.campaign(campaigner);
      term++;
      for (const id of ids(3)) {
        const s = nt.status(id);
        expect(s.state).toBe(id === campaigner ? 'Leader' : 'Follower');
        expect(s.lead).toBe(campaigner);
        expect(s.term).toBe(term);
      }
    }
  });
});

describe('overwriting newer logs (etcd TestLeaderElectionOverwriteNewerLogs)', () => {
  it.each([false, true])('preVote=%s: the term-3 winner overwrites a higher-term uncommitted entry', (preVote) => {
    const nt = new TestNetwork(ids(5), { preVote, down: ids(5) });
    nt.storage.set('a', durableState(1, '', [1])); // won the first election
    nt.storage.set('b', durableState(1, '', [1])); // got a's entry
    nt.storage.set('c', durableState(2, '', [2])); // won the second election
    nt.storage.set('d', durableState(2, 'c', [])); // voted for c, no log
    nt.storage.set('e', durableState(2, 'c', []));
    for (const id of ids(5)) nt.start(id);

    // A quorum knows term 2: a's first attempt fails and pushes it to term 2.
    nt.campaign('a');
    expect(nt.status('a')).toMatchObject({ state: 'Follower', term: 2 });
    nt.campaign('a');
    expect(nt.status('a')).toMatchObject({ state: 'Leader', term: 3 });
    for (const id of ids(5)) {
      expect(nt.storage.get(id)!.entries).toEqual([
        { index: 1, term: 1 },
        { index: 2, term: 3 },
      ]);
      expect(nt.status(id).lead).toBe('a');
    }
  });
});

describe('dueling candidates (split vote)', () => {
  it('etcd TestDuelingCandidates: the loser with a shorter log disrupts, then everyone ends as follower at term 2', () => {
    const nt = new TestNetwork(ids(3));
    nt.cut('a', 'c');
    nt.campaign('a');
    nt.campaign('c');
    expect(nt.status('a').state).toBe('Leader');
    // c got its own vote and b's rejection (b already voted for a).
    expect(nt.status('c').state).toBe('Candidate');
    nt.recover();
    nt.campaign('c');
    const want = [
      { id: 'a', state: 'Follower', term: 2, lastIndex: 1 },
      { id: 'b', state: 'Follower', term: 2, lastIndex: 1 },
      { id: 'c', state: 'Follower', term: 2, lastIndex: 0 },
    ];
    for (const w of want) expect(nt.status(w.id)).toMatchObject({ state: w.state, term: w.term, lastIndex: w.lastIndex, lead: '' });
  });

  it('etcd TestDuelingPreCandidates: with PreVote the loser never disrupts the leader', () => {
    const nt = new TestNetwork(ids(3), { preVote: true });
    nt.cut('a', 'c');
    nt.campaign('a');
    nt.campaign('c');
    expect(nt.status('a').state).toBe('Leader');
    expect(nt.status('c')).toMatchObject({ state: 'Follower', term: 1 });
    nt.recover();
    nt.campaign('c');
    expect(nt.status('a')).toMatchObject({ state: 'Leader', term: 1, lastIndex: 1 });
    expect(nt.status('b')).toMatchObject({ state: 'Follower', term: 1, lastIndex: 1, lead: 'a' });
    expect(nt.status('c')).toMatchObject({ state: 'Follower', term: 1, lastIndex: 0 });
  });

  it('a 2-2 split of four members elects nobody; after healing, timeouts elect exactly one leader', () => {
    const nt = new TestNetwork(ids(4), { seed: 7 });
    nt.partition(['a', 'b'], ['c', 'd']);
    nt.campaign('a');
    nt.campaign('c');
    expect(nt.status('a')).toMatchObject({ state: 'Candidate', term: 1 });
    expect(nt.status('c')).toMatchObject({ state: 'Candidate', term: 1 });
    expect(nt.leaders()).toEqual([]);
    nt.recover();
    for (let i = 0; i < 60 && nt.leaders().length === 0; i++) nt.tickAll();
    const leaders = nt.leaders();
    expect(leaders).toHaveLength(1);
    expect(leaders[0]!.term).toBeGreaterThanOrEqual(2);
    for (const id of ids(4)) expect(nt.status(id).lead).toBe(leaders[0]!.id);
  });

  it('three members timing out in the same instant split the vote; re-drawn timeouts then elect one leader', () => {
    const nt = new TestNetwork(ids(3), { seed: 11 });
    // Time out everyone before any message moves: three candidates at term 1, each with only
    // its own vote; two rejections each mean a lost election: follower at term 1, no leader.
    for (const id of ids(3)) for (let i = 0; i < 20 && nt.status(id).state === 'Follower'; i++) nt.node(id).tick();
    nt.send(...ids(3).flatMap((id) => nt.drain(id)));
    for (const id of ids(3)) expect(nt.status(id)).toMatchObject({ state: 'Follower', term: 1, vote: id, lead: '' });
    expect(nt.delivered.filter((m) => m.type === 'MsgVoteResp' && !m.reject)).toEqual([]);
    expect(nt.leaders()).toEqual([]);
    for (let i = 0; i < 100 && nt.leaders().length === 0; i++) nt.tickAll();
    const leaders = nt.leaders();
    expect(leaders).toHaveLength(1);
    expect(leaders[0]!.term).toBeGreaterThanOrEqual(2);
    for (const id of ids(3)) expect(nt.status(id)).toMatchObject({ term: leaders[0]!.term, lead: leaders[0]!.id });
  });
});

describe('candidate concede (etcd TestCandidateConcede)', () => {
  it('an isolated candidate concedes to the leader it hears from at the same term', () => {
    const nt = new TestNetwork(ids(3));
    nt.isolate('a');
    nt.campaign('a');
    nt.campaign('c');
    expect(nt.status('a')).toMatchObject({ state: 'Candidate', term: 1 });
    nt.recover();
    nt.act('c', (n) => n.propose());
    nt.tick('c'); // heartbeat flushes the commit
    expect(nt.status('a')).toMatchObject({ state: 'Follower', term: 1, lead: 'c', commit: 2 });
    for (const id of ids(3)) {
      expect(nt.storage.get(id)!.entries).toEqual([
        { index: 1, term: 1 },
        { index: 2, term: 1 },
      ]);
    }
  });
});

describe('candidate reset by leader traffic (etcd TestCandidateResetTermMsgHeartbeat / MsgApp)', () => {
  it.each(['MsgHeartbeat', 'MsgApp'] as const)('%s from the leader turns an isolated candidate with a lower term into its follower at the leader term', (type) => {
    const nt = new TestNetwork(ids(3), { configure: () => ({ random: fixedRandom(0) }) });
    nt.campaign('a');
    nt.isolate('c');
    nt.campaign('b');
    nt.campaign('a');
    expect(nt.status('a')).toMatchObject({ state: 'Leader', term: 3 });
    expect(nt.status('c').term).toBe(1);
    nt.tick('c', 10);
    expect(nt.status('c')).toMatchObject({ state: 'Candidate', term: 2 });
    nt.recover();
    nt.send(makeMessage({ type, from: 'a', to: 'c', term: 3, index: type === 'MsgApp' ? 3 : 0, logTerm: type === 'MsgApp' ? 3 : 0 }));
    expect(nt.status('c')).toMatchObject({ state: 'Follower', term: 3, lead: 'a' });
  });
});

describe('old messages (etcd TestOldMessages)', () => {
  it('an append from a deposed leader is ignored and the log stays the current leader\'s', () => {
    const nt = new TestNetwork(ids(3));
    nt.campaign('a');
    nt.campaign('b');
    nt.campaign('a');
    expect(nt.status('a')).toMatchObject({ state: 'Leader', term: 3 });
    // etcd's test leaves index and logTerm at 0; the entry must follow them (raft/validate.ts).
    nt.send(makeMessage({ type: 'MsgApp', from: 'b', to: 'a', term: 2, index: 2, logTerm: 2, entries: [{ index: 3, term: 2 }] }));
    nt.act('a', (n) => n.propose());
    for (const id of ids(3)) {
      expect(nt.storage.get(id)!.entries.map((e) => e.term)).toEqual([1, 2, 3, 3]);
      expect(nt.status(id)).toMatchObject({ term: 3, lead: 'a', commit: 4 });
    }
  });
});

describe('self-vote durability (etcd TestCandidateSelfVoteAfterLostElection*)', () => {
  it.each([false, true])('preVote=%s: a self-vote delivered after losing the election is ignored', (preVote) => {
    const r = newTestRaft('a', ids(3), { preVote, electionTick: 5 });
    r.step(makeMessage({ type: 'MsgHup', from: 'a' }));
    const held = r.msgsAfterAppend;
    r.msgsAfterAppend = [];
    // b already won before a persisted its vote.
    r.step(makeMessage({ type: 'MsgHeartbeat', from: 'b', to: 'a', term: r.term }));
    expect(r.state).toBe('Follower');
    for (const m of held) r.step(m);
    expect(r.state).toBe('Follower');
    expect(r.trk.tallyVotes().granted).toBe(0);
  });

  it('TestCandidateDeliversPreCandidateSelfVoteAfterBecomingCandidate: a stale pre-vote self-vote does not count', () => {
    const r = newTestRaft('a', ids(3), { preVote: true, electionTick: 5 });
    r.step(makeMessage({ type: 'MsgHup', from: 'a' }));
    expect(r.state).toBe('PreCandidate');
    let held = r.msgsAfterAppend;
    r.msgsAfterAppend = [];
    r.step(makeMessage({ type: 'MsgPreVoteResp', from: 'b', to: 'a', term: r.term + 1 }));
    r.step(makeMessage({ type: 'MsgPreVoteResp', from: 'c', to: 'a', term: r.term + 1 }));
    expect(r.state).toBe('Candidate');
    for (const m of held) r.step(m);
    expect(r.state).toBe('Candidate');
    held = r.msgsAfterAppend;
    r.msgsAfterAppend = [];
    expect(r.trk.tallyVotes().granted).toBe(0);
    r.step(makeMessage({ type: 'MsgVoteResp', from: 'b', to: 'a', term: r.term }));
    expect(r.state).toBe('Candidate');
    for (const m of held) r.step(m);
    expect(r.state).toBe('Leader');
    expect(r.lead).toBe('a');
  });
});

describe('learners', () => {
  it('etcd TestLearnerElectionTimeout / TestLearnerCampaign: a learner never campaigns, by timeout, MsgHup or MsgTimeoutNow', () => {
    const nt = new TestNetwork(['a'], { learners: ['l'] });
    nt.tick('l', 50);
    nt.campaign('l');
    expect(nt.status('l')).toMatchObject({ state: 'Follower', term: 0 });
    nt.campaign('a');
    expect(nt.status('a')).toMatchObject({ state: 'Leader', term: 1 });
    nt.send(makeMessage({ type: 'MsgTimeoutNow', from: 'a', to: 'l', term: 1 }));
    expect(nt.status('l')).toMatchObject({ state: 'Follower', term: 1, lead: 'a' });
    expect(nt.status('a').state).toBe('Leader');
  });

  it('etcd TestLearnerCanVote: a learner grants a vote when asked', () => {
    const r = newTestRaft('l', ['a'], { learners: ['l'] });
    r.becomeFollower(1, '');
    r.step(makeMessage({ type: 'MsgVote', from: 'a', to: 'l', term: 2, logTerm: 11, index: 11 }));
    const msgs = readMessages(r);
    expect(msgs).toHaveLength(1);
    expect(msgs[0]).toMatchObject({ type: 'MsgVoteResp', reject: false, term: 2 });
  });

  it('a candidate asks only voters, never learners', () => {
    const nt = new TestNetwork(['a', 'b'], { learners: ['l'], down: ['b'] });
    nt.campaign('a');
    expect(nt.delivered.filter((m) => m.type === 'MsgVote').map((m) => m.to)).toEqual(['b'].filter((id) => nt.nodes.has(id)));
    expect(nt.status('a')).toMatchObject({ state: 'Candidate', term: 1 });
  });

  it("a learner's granted vote does not count toward the quorum", () => {
    // Voters a, b; learner l: a's own vote plus l's is not a quorum of {a, b}.
    const r = newTestRaft('a', ['a', 'b'], { learners: ['l'] });
    r.step(makeMessage({ type: 'MsgHup', from: 'a' }));
    readMessages(r);
    r.step(makeMessage({ type: 'MsgVoteResp', from: 'l', to: 'a', term: 1 }));
    expect(r.state).toBe('Candidate');
    r.step(makeMessage({ type: 'MsgVoteResp', from: 'b', to: 'a', term: 1 }));
    expect(r.state).toBe('Leader');
  });

  it('a learner replicates and learns the leader and commit', () => {
    const nt = new TestNetwork(['a', 'b', 'c'], { learners: ['l'] });
    nt.campaign('a');
    nt.act('a', (n) => n.propose());
    expect(nt.status('l')).toMatchObject({ state: 'Follower', lead: 'a', commit: 2, lastIndex: 2 });
    expect(nt.status('a').progress['l']).toMatchObject({ match: 2, isLearner: true });
  });
});

describe('election by ticks', () => {
  it.each([
    { size: 1, seed: 1 },
    { size: 3, seed: 2 },
    { size: 5, seed: 3 },
    { size: 5, seed: 4 },
  ])('$size members (seed $seed) elect exactly one leader within 3 election timeouts and keep it', ({ size, seed }) => {
    const nt = new TestNetwork(ids(size), { seed, preVote: true, checkQuorum: true });
    let ticks = 0;
    while (nt.leaders().length === 0 && ticks < 30) {
      nt.tickAll();
      ticks++;
    }
    const leaders = nt.leaders();
    expect(leaders, `seed ${seed}`).toHaveLength(1);
    const leader = leaders[0]!;
    nt.tickAll(50);
    expect(nt.leaders()).toEqual([leader]);
    for (const id of ids(size)) expect(nt.status(id)).toMatchObject({ lead: leader.id, term: leader.term });
  });
});
