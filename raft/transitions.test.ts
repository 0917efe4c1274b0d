import { describe, expect, it } from 'vitest';
import { durableState, newTestRaft, readMessages, TestNetwork } from '../test/harness/network.js';
import type { Raft } from './raft.js';
import { makeMessage, RaftError, type MessageType, type StateType } from './types.js';

function enter(r: Raft, st: StateType, followerLead = ''): void {
  switch (st) {
    case 'Follower':
      r.becomeFollower(r.term, followerLead);
      return;
    case 'PreCandidate':
      r.becomePreCandidate();
      return;
    case 'Candidate':
      r.becomeCandidate();
      return;
    case 'Leader':
      r.becomeCandidate();
      r.becomeLeader();
      return;
  }
}

const states: StateType[] = ['Follower', 'PreCandidate', 'Candidate', 'Leader'];

describe('etcd TestVoteFromAnyState / TestPreVoteFromAnyState', () => {
  for (const vt of ['MsgVote', 'MsgPreVote'] as const) {
    it.each(states)(`${vt} for a higher term with a newer log is granted from %s`, (st) => {
      const r = newTestRaft('a', ['a', 'b', 'c']);
      r.term = 1;
      enter(r, st, 'c');
      readMessages(r);
      const origTerm = r.term;
      const origVote = r.vote;
      const newTerm = r.term + 1;
      r.step(makeMessage({ type: vt, from: 'b', to: 'a', term: newTerm, logTerm: newTerm, index: 42 }));
      const msgs = readMessages(r);
      expect(msgs).toHaveLength(1);
      expect(msgs[0]).toMatchObject({ type: vt === 'MsgVote' ? 'MsgVoteResp' : 'MsgPreVoteResp', reject: false, term: newTerm });
      if (vt === 'MsgVote') {
        expect(r).toMatchObject({ state: 'Follower', term: newTerm, vote: 'b', lead: '' });
      } else {
        // A pre-vote changes nothing on the voter.
        expect(r).toMatchObject({ state: st, term: origTerm, vote: origVote });
      }
    });
  }
});

describe('etcd TestRecvMsgVote / TestRecvMsgPreVote', () => {
  // The voter's log holds terms [2, 2]; the request carries (index, logTerm).
  const table: { state: StateType; index: number; logTerm: number; voteFor: string; reject: boolean }[] = [
    { state: 'Follower', index: 0, logTerm: 0, voteFor: '', reject: true },
    { state: 'Follower', index: 0, logTerm: 1, voteFor: '', reject: true },
    { state: 'Follower', index: 0, logTerm: 2, voteFor: '', reject: true },
    { state: 'Follower', index: 0, logTerm: 3, voteFor: '', reject: false },
    { state: 'Follower', index: 1, logTerm: 0, voteFor: '', reject: true },
    { state: 'Follower', index: 1, logTerm: 1, voteFor: '', reject: true },
    { state: 'Follower', index: 1, logTerm: 2, voteFor: '', reject: true },
    { state: 'Follower', index: 1, logTerm: 3, voteFor: '', reject: false },
    { state: 'Follower', index: 2, logTerm: 0, voteFor: '', reject: true },
    { state: 'Follower', index: 2, logTerm: 1, voteFor: '', reject: true },
    { state: 'Follower', index: 2, logTerm: 2, voteFor: '', reject: false },
    { state: 'Follower', index: 2, logTerm: 3, voteFor: '', reject: false },
    { state: 'Follower', index: 3, logTerm: 0, voteFor: '', reject: true },
    { state: 'Follower', index: 3, logTerm: 1, voteFor: '', reject: true },
    { state: 'Follower', index: 3, logTerm: 2, voteFor: '', reject: false },
    { state: 'Follower', index: 3, logTerm: 3, voteFor: '', reject: false },
    { state: 'Follower', index: 3, logTerm: 2, voteFor: 'b', reject: false },
    { state: 'Follower', index: 3, logTerm: 2, voteFor: 'a', reject: true },
    { state: 'Leader', index: 3, logTerm: 3, voteFor: 'a', reject: true },
    { state: 'PreCandidate', index: 3, logTerm: 3, voteFor: 'a', reject: true },
    { state: 'Candidate', index: 3, logTerm: 3, voteFor: 'a', reject: true },
  ];
  for (const msgType of ['MsgVote', 'MsgPreVote'] as const) {
    it.each(table)(
      `${msgType}: $state voted "$voteFor", request (index $index, logTerm $logTerm) -> reject $reject`,
      ({ state, index, logTerm, voteFor, reject }) => {
        const term = Math.max(2, logTerm);
        const r = newTestRaft('a', ['a', 'b'], { restored: durableState(term, voteFor, [2, 2]) });
        // Put the node in the state directly, as etcd does, keeping term and vote.
        r.state = state;
        r.step(makeMessage({ type: msgType, from: 'b', to: 'a', term, index, logTerm }));
        const msgs = readMessages(r);
        expect(msgs).toHaveLength(1);
        expect(msgs[0]).toMatchObject({ type: `${msgType}Resp`, reject, term });
      },
    );
  }
});

describe('etcd TestStateTransition', () => {
  const table: { from: StateType; to: StateType; allow: boolean; term: number; lead: string }[] = [
    { from: 'Follower', to: 'Follower', allow: true, term: 1, lead: '' },
    { from: 'Follower', to: 'PreCandidate', allow: true, term: 0, lead: '' },
    { from: 'Follower', to: 'Candidate', allow: true, term: 1, lead: '' },
    { from: 'Follower', to: 'Leader', allow: false, term: 0, lead: '' },
    { from: 'PreCandidate', to: 'Follower', allow: true, term: 0, lead: '' },
    { from: 'PreCandidate', to: 'PreCandidate', allow: true, term: 0, lead: '' },
    { from: 'PreCandidate', to: 'Candidate', allow: true, term: 1, lead: '' },
    { from: 'PreCandidate', to: 'Leader', allow: true, term: 0, lead: 'a' },
    { from: 'Candidate', to: 'Follower', allow: true, term: 0, lead: '' },
    { from: 'Candidate', to: 'PreCandidate', allow: true, term: 0, lead: '' },
    { from: 'Candidate', to: 'Candidate', allow: true, term: 1, lead: '' },
    { from: 'Candidate', to: 'Leader', allow: true, term: 0, lead: 'a' },
    { from: 'Leader', to: 'Follower', allow: true, term: 1, lead: '' },
    { from: 'Leader', to: 'PreCandidate', allow: false, term: 0, lead: '' },
    { from: 'Leader', to: 'Candidate', allow: false, term: 1, lead: '' },
    { from: 'Leader', to: 'Leader', allow: true, term: 0, lead: 'a' },
  ];
  it.each(table)('$from -> $to allowed=$allow', ({ from, to, allow, term, lead }) => {
    const r = newTestRaft('a', ['a']);
    r.state = from;
    const go = () => {
      if (to === 'Follower') r.becomeFollower(term, lead);
      else if (to === 'PreCandidate') r.becomePreCandidate();
      else if (to === 'Candidate') r.becomeCandidate();
      else r.becomeLeader();
    };
    if (!allow) {
      expect(go).toThrow(RaftError);
      expect(r.state).toBe(from);
      return;
    }
    go();
    expect(r.state).toBe(to);
    expect(r.term).toBe(term);
    expect(r.lead).toBe(lead);
  });

  it('becoming pre-candidate keeps the term, vote, election clock and randomized timeout', () => {
    const r = newTestRaft('a', ['a', 'b', 'c'], { restored: durableState(4, 'c') });
    for (let i = 0; i < 3; i++) r.tick();
    const timeout = r.randomizedElectionTimeout;
    r.lead = 'c';
    r.becomePreCandidate();
    expect(r).toMatchObject({ state: 'PreCandidate', term: 4, vote: 'c', lead: '', electionElapsed: 3 });
    expect(r.randomizedElectionTimeout).toBe(timeout);
  });
});

describe('etcd TestAllServerStepdown', () => {
  const table: { state: StateType; index: number }[] = [
    { state: 'Follower', index: 0 },
    { state: 'PreCandidate', index: 0 },
    { state: 'Candidate', index: 0 },
    { state: 'Leader', index: 1 },
  ];
  for (const msgType of ['MsgVote', 'MsgApp'] as const) {
    it.each(table)(`$state steps down to follower at term 3 on a term-3 ${msgType}`, ({ state, index }) => {
      const r = newTestRaft('a', ['a', 'b', 'c']);
      if (state === 'Follower') r.becomeFollower(1, '');
      else enter(r, state);
      readMessages(r);
      r.step(makeMessage({ type: msgType, from: 'b', to: 'a', term: 3, logTerm: 3 }));
      expect(r).toMatchObject({ state: 'Follower', term: 3, lead: msgType === 'MsgVote' ? '' : 'b' });
      expect(r.log.lastIndex()).toBe(index);
      expect(r.log.allEntries()).toHaveLength(index);
    });
  }
});

describe('stale-term messages', () => {
  const stale: { name: string; preVote: boolean; checkQuorum: boolean; type: MessageType; answer: MessageType | null }[] = [
    { name: 'heartbeat, both off', preVote: false, checkQuorum: false, type: 'MsgHeartbeat', answer: null },
    { name: 'append, both off', preVote: false, checkQuorum: false, type: 'MsgApp', answer: null },
    { name: 'heartbeat, CheckQuorum', preVote: false, checkQuorum: true, type: 'MsgHeartbeat', answer: 'MsgAppResp' },
    { name: 'append, CheckQuorum', preVote: false, checkQuorum: true, type: 'MsgApp', answer: 'MsgAppResp' },
    { name: 'heartbeat, PreVote', preVote: true, checkQuorum: false, type: 'MsgHeartbeat', answer: 'MsgAppResp' },
    { name: 'append, PreVote', preVote: true, checkQuorum: false, type: 'MsgApp', answer: 'MsgAppResp' },
    { name: 'pre-vote, both off', preVote: false, checkQuorum: false, type: 'MsgPreVote', answer: 'MsgPreVoteResp' },
    { name: 'pre-vote, PreVote', preVote: true, checkQuorum: true, type: 'MsgPreVote', answer: 'MsgPreVoteResp' },
    { name: 'vote', preVote: true, checkQuorum: true, type: 'MsgVote', answer: null },
    { name: 'vote response', preVote: true, checkQuorum: true, type: 'MsgVoteResp', answer: null },
    { name: 'append response', preVote: true, checkQuorum: true, type: 'MsgAppResp', answer: null },
    { name: 'timeout-now', preVote: true, checkQuorum: true, type: 'MsgTimeoutNow', answer: null },
  ];
  it.each(stale)('a term-2 $name at a term-5 follower: answer $answer, state unchanged', ({ preVote, checkQuorum, type, answer }) => {
    const r = newTestRaft('a', ['a', 'b', 'c'], { preVote, checkQuorum, restored: durableState(5, 'c', [1, 2]) });
    r.step(makeMessage({ type, from: 'b', to: 'a', term: 2, index: 2, logTerm: 2 }));
    const msgs = readMessages(r);
    if (answer === null) {
      expect(msgs).toEqual([]);
    } else {
      expect(msgs).toHaveLength(1);
      // The answer carries the local term so the stale sender learns it.
      expect(msgs[0]).toMatchObject({ type: answer, to: 'b', term: 5 });
      if (answer === 'MsgPreVoteResp') expect(msgs[0]!.reject).toBe(true);
    }
    expect(r).toMatchObject({ state: 'Follower', term: 5, vote: 'c', lead: '' });
    expect(r.log.lastIndex()).toBe(2);
  });

  it('a pre-candidate rejected at a higher term becomes follower at that term', () => {
    const r = newTestRaft('a', ['a', 'b', 'c'], { preVote: true, restored: durableState(2, '') });
    r.step(makeMessage({ type: 'MsgHup', from: 'a' }));
    readMessages(r);
    expect(r).toMatchObject({ state: 'PreCandidate', term: 2 });
    r.step(makeMessage({ type: 'MsgPreVoteResp', from: 'b', to: 'a', term: 7, reject: true }));
    expect(r).toMatchObject({ state: 'Follower', term: 7, vote: '', lead: '' });
  });

  it('a granted pre-vote response at term+1 does not move the pre-candidate term until it wins', () => {
    const r = newTestRaft('a', ['a', 'b', 'c', 'd', 'e'], { preVote: true, restored: durableState(2, '') });
    r.step(makeMessage({ type: 'MsgHup', from: 'a' }));
    readMessages(r);
    r.step(makeMessage({ type: 'MsgPreVoteResp', from: 'b', to: 'a', term: 3 }));
    expect(r).toMatchObject({ state: 'PreCandidate', term: 2 });
    r.step(makeMessage({ type: 'MsgPreVoteResp', from: 'c', to: 'a', term: 3 }));
    expect(r).toMatchObject({ state: 'Candidate', term: 3, vote: 'a' });
  });

  it('only the first answer of a voter counts; a repeated grant does not win the election', () => {
    const r = newTestRaft('a', ['a', 'b', 'c', 'd', 'e']);
    r.step(makeMessage({ type: 'MsgHup', from: 'a' }));
    readMessages(r);
    r.step(makeMessage({ type: 'MsgVoteResp', from: 'b', to: 'a', term: 1 }));
    r.step(makeMessage({ type: 'MsgVoteResp', from: 'b', to: 'a', term: 1 }));
    expect(r.state).toBe('Candidate');
    r.step(makeMessage({ type: 'MsgVoteResp', from: 'c', to: 'a', term: 1, reject: true }));
    r.step(makeMessage({ type: 'MsgVoteResp', from: 'c', to: 'a', term: 1 }));
    expect(r.state).toBe('Candidate');
    r.step(makeMessage({ type: 'MsgVoteResp', from: 'd', to: 'a', term: 1 }));
    expect(r).toMatchObject({ state: 'Leader', term: 1, lead: 'a' });
  });

  it('a candidate that loses (a quorum rejects) returns to follower at its own term with no leader', () => {
    const r = newTestRaft('a', ['a', 'b', 'c']);
    r.step(makeMessage({ type: 'MsgHup', from: 'a' }));
    readMessages(r);
    r.step(makeMessage({ type: 'MsgVoteResp', from: 'b', to: 'a', term: 1, reject: true }));
    expect(r.state).toBe('Candidate');
    r.step(makeMessage({ type: 'MsgVoteResp', from: 'c', to: 'a', term: 1, reject: true }));
    expect(r).toMatchObject({ state: 'Follower', term: 1, vote: 'a', lead: '' });
  });

  it('MsgHup on a leader is ignored', () => {
    const nt = new TestNetwork(['a', 'b', 'c']);
    nt.campaign('a');
    nt.campaign('a');
    expect(nt.status('a')).toMatchObject({ state: 'Leader', term: 1 });
  });
});

describe('vote bookkeeping', () => {
  it('a granted real vote zeroes the election clock; a granted pre-vote does not', () => {
    const r = newTestRaft('a', ['a', 'b', 'c'], { preVote: true });
    for (let i = 0; i < 5; i++) r.tick();
    r.step(makeMessage({ type: 'MsgPreVote', from: 'b', to: 'a', term: 1 }));
    expect(readMessages(r)[0]).toMatchObject({ type: 'MsgPreVoteResp', reject: false });
    expect(r.electionElapsed).toBe(5);
    expect(r.vote).toBe('');
    r.step(makeMessage({ type: 'MsgVote', from: 'b', to: 'a', term: 1 }));
    expect(readMessages(r)[0]).toMatchObject({ type: 'MsgVoteResp', reject: false });
    expect(r.electionElapsed).toBe(0);
    expect(r.vote).toBe('b');
  });

  it('one vote per term: after voting for b, a rejects c in the same term and re-grants b', () => {
    const r = newTestRaft('a', ['a', 'b', 'c']);
    r.step(makeMessage({ type: 'MsgVote', from: 'b', to: 'a', term: 1 }));
    r.step(makeMessage({ type: 'MsgVote', from: 'c', to: 'a', term: 1 }));
    r.step(makeMessage({ type: 'MsgVote', from: 'b', to: 'a', term: 1 }));
    expect(readMessages(r).map((m) => [m.to, m.reject])).toEqual([
      ['b', false],
      ['c', true],
      ['b', false],
    ]);
    expect(r.vote).toBe('b');
  });

  it('a follower that knows a leader in its term rejects a same-term vote (no lease needed)', () => {
    const r = newTestRaft('a', ['a', 'b', 'c']);
    r.becomeFollower(1, 'b');
    r.step(makeMessage({ type: 'MsgVote', from: 'c', to: 'a', term: 1 }));
    expect(readMessages(r)[0]).toMatchObject({ type: 'MsgVoteResp', reject: true, term: 1 });
  });
});
