import { describe, expect, it } from 'vitest';
import { newTestRaft, readMessages, TestNetwork } from '../test/harness/network.js';
import { makeMessage } from './types.js';

function elected(): TestNetwork {
  const nt = new TestNetwork(['a', 'b', 'c'], { preVote: true, checkQuorum: true });
  nt.campaign('a');
  expect(nt.status('a')).toMatchObject({ state: 'Leader', term: 1 });
  return nt;
}

describe('ForgetLeader', () => {
  it('a follower forgets its leader and keeps its term, vote, state and election clock', () => {
    const nt = elected();
    const before = nt.status('b');
    nt.node('b').tick();
    nt.node('b').tick();
    nt.drain('b');
    nt.act('b', (n) => n.forgetLeader());
    expect(nt.status('b')).toMatchObject({
      state: 'Follower',
      lead: '',
      term: before.term,
      vote: before.vote,
      electionElapsed: 2,
    });
  });

  it('a follower that forgot its leader grants a pre-vote at once; one that did not drops it', () => {
    const r = newTestRaft('b', ['a', 'b', 'c'], { preVote: true, checkQuorum: true });
    r.becomeFollower(1, 'a');
    const preVote = makeMessage({ type: 'MsgPreVote', from: 'c', to: 'b', term: 2, index: 1, logTerm: 1 });
    r.step(preVote);
    expect(readMessages(r)).toEqual([]); // in lease
    r.step(makeMessage({ type: 'MsgForgetLeader', from: 'b' }));
    r.step(preVote);
    expect(readMessages(r)).toMatchObject([{ type: 'MsgPreVoteResp', to: 'c', reject: false, term: 2 }]);
    expect(r).toMatchObject({ state: 'Follower', term: 1, lead: '' });
  });

  it.each(['Leader', 'Candidate', 'PreCandidate'] as const)('is a no-op on a %s', (st) => {
    const r = newTestRaft('a', ['a', 'b', 'c'], { preVote: true, checkQuorum: true });
    if (st === 'Leader') {
      r.becomeCandidate();
      r.becomeLeader();
    } else if (st === 'Candidate') {
      r.becomeCandidate();
    } else {
      r.becomePreCandidate();
    }
    const before = { state: r.state, term: r.term, vote: r.vote, lead: r.lead, electionElapsed: r.electionElapsed };
    r.step(makeMessage({ type: 'MsgForgetLeader', from: 'a' }));
    expect({ state: r.state, term: r.term, vote: r.vote, lead: r.lead, electionElapsed: r.electionElapsed }).toEqual(before);
  });

  it('the follower re-learns the leader from its next heartbeat', () => {
    const nt = elected();
    nt.act('b', (n) => n.forgetLeader());
    expect(nt.status('b').lead).toBe('');
    nt.tick('a'); // heartbeatTick 1
    expect(nt.status('b')).toMatchObject({ lead: 'a', term: 1, electionElapsed: 0 });
  });

  it('followers told the leader is going away elect a successor at once, without waiting out the lease', () => {
    const nt = elected();
    nt.isolate('a'); // the leader pod is terminating
    nt.act('b', (n) => n.forgetLeader());
    nt.act('c', (n) => n.forgetLeader());
    nt.campaign('c');
    expect(nt.status('c')).toMatchObject({ state: 'Leader', term: 2 });
    expect(nt.status('b')).toMatchObject({ state: 'Follower', term: 2, lead: 'c' });
  });

  it('without ForgetLeader the same campaign fails: the other follower is in lease', () => {
    const nt = elected();
    nt.isolate('a');
    nt.campaign('c');
    expect(nt.status('c')).toMatchObject({ state: 'PreCandidate', term: 1 });
    expect(nt.status('b')).toMatchObject({ state: 'Follower', term: 1, lead: 'a' });
  });

  it('a forgetful follower still rejects a candidate whose log is behind', () => {
    const nt = elected();
    nt.isolate('c');
    nt.act('a', (n) => n.propose());
    nt.recover();
    nt.isolate('a');
    nt.act('b', (n) => n.forgetLeader());
    nt.campaign('c');
    // b answered with a rejection; a is gone: c waits as pre-candidate with one grant of three.
    expect(nt.delivered.filter((m) => m.type === 'MsgPreVoteResp' && m.from === 'b' && m.to === 'c').map((m) => m.reject)).toEqual([true]);
    expect(nt.status('c')).toMatchObject({ state: 'PreCandidate', term: 1 });
    expect(nt.status('b')).toMatchObject({ term: 1, lead: '' });
    nt.campaign('b');
    expect(nt.status('b')).toMatchObject({ state: 'Leader', term: 2 });
  });
});
