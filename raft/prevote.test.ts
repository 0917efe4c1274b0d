import { describe, expect, it } from 'vitest';
import { newTestRaft, readMessages, TestNetwork } from '../test/harness/network.js';
import { makeMessage } from './types.js';

describe('PreVote', () => {
  it('etcd TestPreVoteWithSplitVote: after a split vote the next round completes', () => {
    const nt = new TestNetwork(['a', 'b', 'c'], { preVote: true });
    nt.campaign('a');
    expect(nt.status('a')).toMatchObject({ state: 'Leader', term: 1 });
    nt.isolate('a');
    // b and c time out together: both pass the pre-vote (a is gone) and split the real vote.
    nt.node('b').campaign();
    nt.node('c').campaign();
    nt.send(...nt.drain('b'), ...nt.drain('c'));
    expect(nt.status('b')).toMatchObject({ state: 'Candidate', term: 2 });
    expect(nt.status('c')).toMatchObject({ state: 'Candidate', term: 2 });
    nt.campaign('b');
    expect(nt.status('b')).toMatchObject({ state: 'Leader', term: 3 });
    expect(nt.status('c')).toMatchObject({ state: 'Follower', term: 3, lead: 'b' });
  });

  it('etcd TestPreVoteWithCheckQuorum: followers that knew the leader still elect a new one once it is gone', () => {
    const nt = new TestNetwork(['a', 'b', 'c'], { preVote: true, checkQuorum: true });
    nt.campaign('a');
    nt.isolate('a');
    expect(nt.status('a').state).toBe('Leader');
    expect(nt.status('b').state).toBe('Follower');
    // b is still in lease and drops c's pre-vote; c forgot the leader by becoming pre-candidate,
    // so it grants b's pre-vote, and b wins.
    nt.campaign('c');
    expect(nt.status('c')).toMatchObject({ state: 'PreCandidate', term: 1 });
    nt.campaign('b');
    expect(nt.status('b')).toMatchObject({ state: 'Leader', term: 2 });
    expect(nt.status('c')).toMatchObject({ state: 'Follower', term: 2, lead: 'b' });
  });

  it('etcd TestDisruptiveFollowerPreVote: a lagging pre-candidate cannot depose the leader', () => {
    const nt = new TestNetwork(['a', 'b', 'c'], { preVote: true, checkQuorum: true });
    nt.campaign('a');
    nt.isolate('c');
    for (let i = 0; i < 3; i++) nt.act('a', (n) => n.propose());
    nt.recover();
    nt.campaign('c');
    expect(nt.status('a')).toMatchObject({ state: 'Leader', term: 1 });
    expect(nt.status('b')).toMatchObject({ state: 'Follower', term: 1 });
    expect(nt.status('c')).toMatchObject({ state: 'PreCandidate', term: 1 });
    nt.send(makeMessage({ type: 'MsgHeartbeat', from: 'a', to: 'c', term: 1 }));
    expect(nt.status('a')).toMatchObject({ state: 'Leader', term: 1 });
    expect(nt.status('c')).toMatchObject({ state: 'Follower', term: 1, lead: 'a' });
  });

  it('etcd TestNodeWithSmallerTermCanCompleteElection: a rejoining lower-term node does not stall the election', () => {
    const nt = new TestNetwork(['a', 'b', 'c'], { preVote: true });
    nt.cut('a', 'c');
    nt.cut('b', 'c');
    nt.campaign('a');
    expect(nt.status('a').state).toBe('Leader');
    nt.campaign('c');
    expect(nt.status('c')).toMatchObject({ state: 'PreCandidate', term: 0 });
    nt.campaign('b');
    expect(nt.status('a')).toMatchObject({ state: 'Follower', term: 2 });
    expect(nt.status('b')).toMatchObject({ state: 'Leader', term: 2 });
    expect(nt.status('c')).toMatchObject({ state: 'PreCandidate', term: 0 });
    // b "crashes" as c comes back.
    nt.recover();
    nt.cut('b', 'a');
    nt.cut('b', 'c');
    nt.campaign('c');
    nt.campaign('a');
    expect(nt.status('a').state === 'Leader' || nt.status('c').state === 'Leader').toBe(true);
  });

  it('a pre-vote is granted for a future term without changing the voter term, vote or clock', () => {
    const r = newTestRaft('a', ['a', 'b', 'c'], { preVote: true });
    r.becomeFollower(3, '');
    r.vote = 'c';
    for (let i = 0; i < 4; i++) r.tick();
    r.step(makeMessage({ type: 'MsgPreVote', from: 'b', to: 'a', term: 4 }));
    expect(readMessages(r)).toMatchObject([{ type: 'MsgPreVoteResp', reject: false, term: 4, to: 'b' }]);
    expect(r).toMatchObject({ state: 'Follower', term: 3, vote: 'c', electionElapsed: 4 });
  });

  it('a pre-election sends MsgPreVote for term+1 to voters in sorted order, with the last log id', () => {
    const nt = new TestNetwork(['e', 'c', 'a', 'd', 'b'], { preVote: true });
    nt.campaign('c');
    const preVotes = nt.delivered.filter((m) => m.type === 'MsgPreVote');
    expect(preVotes.map((m) => m.to)).toEqual(['a', 'b', 'd', 'e']);
    for (const m of preVotes) expect(m).toMatchObject({ term: 1, index: 0, logTerm: 0, context: '' });
    const votes = nt.delivered.filter((m) => m.type === 'MsgVote');
    expect(votes.map((m) => m.to)).toEqual(['a', 'b', 'd', 'e']);
    expect(nt.status('c')).toMatchObject({ state: 'Leader', term: 1 });
  });

  it('a pre-candidate that hears a leader heartbeat of its own term follows it', () => {
    const r = newTestRaft('a', ['a', 'b', 'c'], { preVote: true });
    r.becomeFollower(2, '');
    r.step(makeMessage({ type: 'MsgHup', from: 'a' }));
    readMessages(r);
    expect(r.state).toBe('PreCandidate');
    r.step(makeMessage({ type: 'MsgHeartbeat', from: 'b', to: 'a', term: 2 }));
    expect(r).toMatchObject({ state: 'Follower', term: 2, lead: 'b' });
  });

  it('a pre-candidate ignores real vote responses, a candidate ignores stale pre-vote responses', () => {
    const r = newTestRaft('a', ['a', 'b', 'c'], { preVote: true });
    r.becomeFollower(2, '');
    r.step(makeMessage({ type: 'MsgHup', from: 'a' }));
    readMessages(r);
    r.step(makeMessage({ type: 'MsgVoteResp', from: 'b', to: 'a', term: 2 }));
    expect(r).toMatchObject({ state: 'PreCandidate', term: 2 });
    r.step(makeMessage({ type: 'MsgPreVoteResp', from: 'b', to: 'a', term: 3 }));
    expect(r).toMatchObject({ state: 'Candidate', term: 3 });
    readMessages(r);
    r.step(makeMessage({ type: 'MsgPreVoteResp', from: 'c', to: 'a', term: 3 }));
    expect(r).toMatchObject({ state: 'Candidate', term: 3 });
  });

  it('etcd TestPreVoteMigrationWithFreeStuckPreCandidate shape: a higher-term pre-candidate is freed by a stale heartbeat', () => {
    const nt = new TestNetwork(['a', 'b', 'c'], { preVote: true, checkQuorum: false });
    nt.campaign('a');
    nt.isolate('c');
    nt.act('a', (n) => n.propose());
    // c reaches term 3 on its own (as if it ran without PreVote before).
    nt.storage.set('c', { ...nt.storage.get('c')!, hardState: { term: 3, vote: 'c', commit: 1 } });
    nt.restart('c');
    nt.recover();
    nt.campaign('c');
    expect(nt.status('a')).toMatchObject({ state: 'Leader', term: 1 });
    expect(nt.status('c')).toMatchObject({ state: 'PreCandidate', term: 3 });
    nt.send(makeMessage({ type: 'MsgHeartbeat', from: 'a', to: 'c', term: 1 }));
    // c answers the stale heartbeat at term 3, so a steps down and c is freed.
    expect(nt.status('a')).toMatchObject({ state: 'Follower', term: 3 });
    expect(nt.status('c').term).toBe(3);
  });
});
