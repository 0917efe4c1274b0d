import { describe, expect, it } from 'vitest';
import { TestNetwork, type NetworkOptions } from '../test/harness/network.js';
import { CampaignTransferContext, makeMessage, RaftError } from './types.js';

function elected(options: NetworkOptions = {}): TestNetwork {
  const nt = new TestNetwork(['a', 'b', 'c'], options);
  nt.campaign('a');
  expect(nt.status('a')).toMatchObject({ state: 'Leader', term: 1 });
  return nt;
}

/** etcd checkLeaderTransferState */
function expectTransferState(nt: TestNetwork, id: string, state: string, lead: string): void {
  expect(nt.status(id)).toMatchObject({ state, lead, leadTransferee: '' });
}

describe('leader transfer', () => {
  it.each([
    { name: 'plain', options: {} },
    { name: 'PreVote', options: { preVote: true } },
    { name: 'CheckQuorum (followers in lease)', options: { checkQuorum: true } },
    { name: 'PreVote and CheckQuorum', options: { preVote: true, checkQuorum: true } },
  ])('etcd TestLeaderTransferToUpToDateNode ($name): b takes over at term 2, then hands back at term 3', ({ options }) => {
    const nt = elected(options);
    nt.act('a', (n) => n.transferLeader('b'));
    expectTransferState(nt, 'a', 'Follower', 'b');
    expect(nt.status('b')).toMatchObject({ state: 'Leader', term: 2 });
    expect(nt.status('c')).toMatchObject({ state: 'Follower', term: 2, lead: 'b' });
    // The transferee campaigns at once, without PreVote, with the transfer context.
    const votes = nt.delivered.filter((m) => m.from === 'b' && (m.type === 'MsgVote' || m.type === 'MsgPreVote'));
    expect(votes.map((m) => [m.type, m.context])).toEqual([
      ['MsgVote', CampaignTransferContext],
      ['MsgVote', CampaignTransferContext],
    ]);
    nt.act('b', (n) => n.propose());
    nt.act('b', (n) => n.transferLeader('a'));
    expectTransferState(nt, 'a', 'Leader', 'a');
    expect(nt.status('a').term).toBe(3);
  });

  it('etcd TestLeaderTransferToUpToDateNodeFromFollower: a request made on a follower is forwarded to the leader', () => {
    const nt = elected();
    nt.act('b', (n) => n.transferLeader('b'));
    expectTransferState(nt, 'a', 'Follower', 'b');
    expect(nt.status('b')).toMatchObject({ state: 'Leader', term: 2 });
    nt.act('a', (n) => n.transferLeader('a'));
    expectTransferState(nt, 'a', 'Leader', 'a');
  });

  it('a follower with no known leader drops a transfer request', () => {
    const nt = new TestNetwork(['a', 'b', 'c']);
    nt.act('b', (n) => n.transferLeader('b'));
    expect(nt.delivered).toEqual([]);
    expect(nt.leaders()).toEqual([]);
  });

  it('etcd TestLeaderTransferToSlowFollower: a lagging transferee is caught up first, then gets MsgTimeoutNow', () => {
    const nt = elected({ preVote: true });
    nt.isolate('c');
    nt.act('a', (n) => n.propose());
    nt.act('a', (n) => n.propose());
    nt.recover();
    expect(nt.status('c').lastIndex).toBe(1);
    expect(nt.status('a').progress['c']!.match).toBe(1);
    nt.act('a', (n) => n.transferLeader('c'));
    const timeoutNow = nt.delivered.findIndex((m) => m.type === 'MsgTimeoutNow');
    const catchUp = nt.delivered.findIndex((m) => m.type === 'MsgApp' && m.to === 'c' && m.entries.length > 0);
    expect(catchUp).toBeGreaterThanOrEqual(0);
    expect(timeoutNow).toBeGreaterThan(catchUp);
    expectTransferState(nt, 'a', 'Follower', 'c');
    expect(nt.status('c')).toMatchObject({ state: 'Leader', term: 2, lastIndex: 4 });
  });

  it('etcd TestLeaderTransferToSelf: a transfer to the leader itself is a no-op', () => {
    const nt = elected();
    nt.act('a', (n) => n.transferLeader('a'));
    expectTransferState(nt, 'a', 'Leader', 'a');
    expect(nt.status('a').term).toBe(1);
  });

  it('etcd TestLeaderTransferToNonExistingNode: a transfer to a non-member is ignored', () => {
    const nt = elected();
    nt.act('a', (n) => n.transferLeader('zz'));
    expectTransferState(nt, 'a', 'Leader', 'a');
    expect(nt.delivered.filter((m) => m.type === 'MsgTimeoutNow')).toEqual([]);
  });

  it('a transfer to a learner is ignored', () => {
    const nt = new TestNetwork(['a', 'b', 'c'], { learners: ['l'] });
    nt.campaign('a');
    nt.act('a', (n) => n.transferLeader('l'));
    expectTransferState(nt, 'a', 'Leader', 'a');
    expect(nt.status('l')).toMatchObject({ state: 'Follower', lead: 'a' });
  });

  it('etcd TestLeaderTransferTimeout: an unfinished transfer is abandoned after one election timeout', () => {
    const nt = elected();
    nt.isolate('c');
    nt.act('a', (n) => n.transferLeader('c'));
    expect(nt.status('a').leadTransferee).toBe('c');
    nt.tick('a', 1); // heartbeatTick
    expect(nt.status('a').leadTransferee).toBe('c');
    nt.tick('a', 9); // electionTick - heartbeatTick
    expectTransferState(nt, 'a', 'Leader', 'a');
    nt.act('a', (n) => n.propose()); // proposals flow again
    expect(nt.status('a').lastIndex).toBe(2);
  });

  it('etcd TestLeaderTransferIgnoreProposal: proposals are dropped while a transfer is pending', () => {
    const nt = elected();
    nt.isolate('c');
    nt.act('a', (n) => n.transferLeader('c'));
    expect(nt.status('a').leadTransferee).toBe('c');
    let err: unknown;
    try {
      nt.act('a', (n) => n.propose());
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RaftError);
    expect((err as RaftError).code).toBe('PROPOSAL_DROPPED');
    expect(nt.status('a').progress['a']!.match).toBe(1);
    expect(nt.status('a').lastIndex).toBe(1);
  });

  it('etcd TestLeaderTransferReceiveHigherTermVote: a higher-term election cancels the transfer', () => {
    const nt = elected();
    nt.isolate('c');
    nt.act('a', (n) => n.transferLeader('c'));
    expect(nt.status('a').leadTransferee).toBe('c');
    nt.campaign('b');
    expectTransferState(nt, 'a', 'Follower', 'b');
    expect(nt.status('b')).toMatchObject({ state: 'Leader', term: 2 });
  });

  it('etcd TestLeaderTransferBack: a transfer back to the leader cancels the pending one', () => {
    const nt = elected();
    nt.isolate('c');
    nt.act('a', (n) => n.transferLeader('c'));
    expect(nt.status('a').leadTransferee).toBe('c');
    nt.act('a', (n) => n.transferLeader('a'));
    expectTransferState(nt, 'a', 'Leader', 'a');
  });

  it('etcd TestLeaderTransferSecondTransferToAnotherNode: a second target replaces the first', () => {
    const nt = elected();
    nt.isolate('c');
    nt.act('a', (n) => n.transferLeader('c'));
    expect(nt.status('a').leadTransferee).toBe('c');
    nt.act('a', (n) => n.transferLeader('b'));
    expectTransferState(nt, 'a', 'Follower', 'b');
    expect(nt.status('b')).toMatchObject({ state: 'Leader', term: 2 });
  });

  it('etcd TestLeaderTransferSecondTransferToSameNode: a repeat does not extend the timeout', () => {
    const nt = elected();
    nt.isolate('c');
    nt.act('a', (n) => n.transferLeader('c'));
    nt.tick('a', 1);
    nt.act('a', (n) => n.transferLeader('c'));
    expect(nt.status('a').leadTransferee).toBe('c');
    nt.tick('a', 9);
    expectTransferState(nt, 'a', 'Leader', 'a');
  });

  it('the old leader stays leader until it sees the higher term', () => {
    const nt = elected();
    nt.ignore('MsgVote'); // the transferee's campaign never reaches anyone
    nt.act('a', (n) => n.transferLeader('b'));
    expect(nt.status('b')).toMatchObject({ state: 'Candidate', term: 2 });
    expect(nt.status('a')).toMatchObject({ state: 'Leader', term: 1, leadTransferee: 'b' });
  });

  it('a follower ignores MsgTimeoutNow from anyone but its leader (a transfer campaign skips the voters\' lease)', () => {
    const nt = elected();
    // From the other follower, at the current term: no campaign, no term change.
    nt.send(makeMessage({ type: 'MsgTimeoutNow', from: 'b', to: 'c', term: 1 }));
    expect(nt.status('c')).toMatchObject({ state: 'Follower', term: 1, lead: 'a' });
    expect(nt.status('a')).toMatchObject({ state: 'Leader', term: 1 });
    // From the leader, it still starts the transfer election.
    nt.send(makeMessage({ type: 'MsgTimeoutNow', from: 'a', to: 'c', term: 1 }));
    expect(nt.status('c')).toMatchObject({ state: 'Leader', term: 2 });
  });

  it('MsgTimeoutNow is ignored by a candidate and by a leader', () => {
    const nt = elected();
    nt.isolate('c');
    nt.campaign('c');
    expect(nt.status('c')).toMatchObject({ state: 'Candidate', term: 2 });
    nt.recover();
    nt.dropOneWay('c', 'a');
    nt.dropOneWay('c', 'b');
    nt.send(makeMessage({ type: 'MsgTimeoutNow', from: 'b', to: 'c', term: 2 }));
    expect(nt.status('c')).toMatchObject({ state: 'Candidate', term: 2 });
    nt.send(makeMessage({ type: 'MsgTimeoutNow', from: 'b', to: 'a', term: 1 }));
    expect(nt.status('a')).toMatchObject({ state: 'Leader', term: 1 });
  });
});
