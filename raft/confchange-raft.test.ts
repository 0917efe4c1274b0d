import { describe, expect, it } from 'vitest';
import { newTestRaft, readMessages, TestNetwork, type NetworkOptions } from '../test/harness/network.js';
import type { Raft } from './raft.js';
import {
  makeMessage,
  RaftError,
  type ConfChangeSingle,
  type ConfChangeTransition,
  type ConfChangeV2,
  type ConfState,
} from './types.js';

const add = (id: string): ConfChangeSingle => ({ type: 'AddNode', nodeId: id });
const learner = (id: string): ConfChangeSingle => ({ type: 'AddLearnerNode', nodeId: id });
const remove = (id: string): ConfChangeSingle => ({ type: 'RemoveNode', nodeId: id });
const cc = (changes: ConfChangeSingle[], transition: ConfChangeTransition = 'Auto'): ConfChangeV2 => ({ transition, changes });
const leaveJoint: ConfChangeV2 = { transition: 'Auto', changes: [] };

function confState(voters: string[], extra: Partial<ConfState> = {}): ConfState {
  return { voters, votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false, ...extra };
}

function catchError(fn: () => void): RaftError {
  try {
    fn();
  } catch (err) {
    if (err instanceof RaftError) return err;
    throw err;
  }
  throw new Error('expected a RaftError');
}

/** A leader whose single-node group elected it: etcd's becomeCandidate + becomeLeader. */
function leader(voters: string[]): Raft {
  const r = newTestRaft('a', voters);
  r.becomeCandidate();
  r.becomeLeader();
  readMessages(r);
  return r;
}

/** etcd's nextEnts: hand out the committed entries and mark them applied. */
function nextEnts(r: Raft): { index: number; confChange?: ConfChangeV2 }[] {
  readMessages(r);
  const ents = r.takeCommittedEntries();
  const last = ents[ents.length - 1];
  if (last) r.appliedTo(last.index);
  return ents;
}

function propose(r: Raft, change?: ConfChangeV2): void {
  r.step(makeMessage({ type: 'MsgProp', from: r.id, entries: [change ? { index: 0, term: 0, confChange: change } : { index: 0, term: 0 }] }));
}

describe('applyConfChange (etcd raft_test.go)', () => {
  it('TestAddNode: a voter joins the voter set', () => {
    const r = newTestRaft('a', ['a']);
    r.applyConfChange(cc([add('b')]));
    expect(r.trk.voters).toEqual(['a', 'b']);
  });

  it('TestAddLearner: add, promote, demote self, promote self again', () => {
    const r = newTestRaft('a', ['a']);
    r.applyConfChange(cc([learner('b')]));
    expect(r.trk.learners).toEqual(['b']);
    expect(r.trk.progress.get('b')?.isLearner).toBe(true);
    r.applyConfChange(cc([add('b')]));
    expect(r.trk.progress.get('b')?.isLearner).toBe(false);
    r.applyConfChange(cc([learner('a')]));
    expect(r.trk.progress.get('a')?.isLearner).toBe(true);
    expect(r.promotable()).toBe(false);
    r.applyConfChange(cc([add('a')]));
    expect(r.trk.progress.get('a')?.isLearner).toBe(false);
    expect(r.promotable()).toBe(true);
  });

  it('TestAddNodeCheckQuorum: a new voter does not depose the leader at the next quorum check, but silence does', () => {
    const r = newTestRaft('a', ['a'], { checkQuorum: true });
    r.becomeCandidate();
    r.becomeLeader();
    for (let i = 0; i < 9; i++) r.tick();
    r.applyConfChange(cc([add('b')]));
    r.tick();
    expect(r.state).toBe('Leader');
    for (let i = 0; i < 10; i++) r.tick();
    expect(r.state).toBe('Follower');
  });

  it('TestRemoveNode: removing a voter shrinks the set; removing the last one is refused', () => {
    const r = newTestRaft('a', ['a', 'b']);
    r.applyConfChange(cc([remove('b')]));
    expect(r.trk.voters).toEqual(['a']);
    const err = catchError(() => r.applyConfChange(cc([remove('a')])));
    expect(err.code).toBe('INVALID_CONF_CHANGE');
    expect(err.message).toBe('removed all voters');
    expect(r.trk.voters).toEqual(['a']);
  });

  it('TestRemoveLearner: removing a learner; removing the last voter is refused', () => {
    const r = newTestRaft('a', ['a'], { learners: ['b'] });
    r.applyConfChange(cc([remove('b')]));
    expect(r.trk.voters).toEqual(['a']);
    expect(r.trk.learners).toEqual([]);
    expect(() => r.applyConfChange(cc([remove('a')]))).toThrow(/removed all voters/);
  });

  it.each([
    { voters: ['a'], want: true },
    { voters: ['a', 'b', 'c'], want: true },
    { voters: [], want: false },
    { voters: ['b', 'c'], want: false },
  ])('TestPromotable: voters $voters -> $want', ({ voters, want }) => {
    expect(newTestRaft('a', voters).promotable()).toBe(want);
  });

  it.each([[['a', 'b', 'c']], [['c', 'b', 'a']]])('TestRaftNodes: voters %j are kept sorted', (ids) => {
    expect(newTestRaft('a', ids).trk.voters).toEqual(['a', 'b', 'c']);
  });

  it('TestStepConfig: a leader appends a conf change and records it as pending', () => {
    const r = leader(['a', 'b']);
    const index = r.log.lastIndex();
    propose(r, cc([add('c')]));
    expect(r.log.lastIndex()).toBe(index + 1);
    expect(r.pendingConfIndex).toBe(index + 1);
  });

  it('TestStepIgnoreConfig: a second change while the first is unapplied is refused, with the log and pending index unchanged', () => {
    const r = leader(['a', 'b']);
    propose(r, cc([add('c')]));
    const index = r.log.lastIndex();
    const pending = r.pendingConfIndex;
    const err = catchError(() => propose(r, cc([add('d')])));
    expect(err.code).toBe('PROPOSAL_DROPPED');
    expect(err.message).toBe(`possible unapplied conf change at index ${pending} (applied to 0)`);
    expect(r.log.lastIndex()).toBe(index);
    expect(r.pendingConfIndex).toBe(pending);
  });

  it.each([
    { entries: [], want: 0 },
    { entries: [1], want: 1 },
  ])('TestNewLeaderPendingConfig: a new leader treats its whole log as possibly pending ($want)', ({ entries, want }) => {
    const r = newTestRaft('a', ['a', 'b'], {
      restored: { hardState: { term: 1, vote: '', commit: 0 }, snapshot: { index: 0, term: 0 }, entries: entries.map((t, i) => ({ index: i + 1, term: t })) },
    });
    r.becomeCandidate();
    r.becomeLeader();
    expect(r.pendingConfIndex).toBe(want);
  });

  it('joint changes must be left before the next, and only a joint config can be left (etcd stepLeader checks)', () => {
    const r = leader(['a']);
    nextEnts(r);
    expect(() => propose(r, leaveJoint)).toThrow(/not in joint state; refusing empty conf change/);
    propose(r, cc([add('b'), add('c')], 'JointExplicit'));
    const ents = nextEnts(r);
    expect(ents.map((e) => e.confChange?.transition)).toEqual(['JointExplicit']);
    r.applyConfChange(ents[0]!.confChange!);
    expect(r.trk.confState()).toEqual(confState(['a', 'b', 'c'], { votersOutgoing: ['a'] }));
    expect(() => propose(r, cc([add('d')]))).toThrow(/must transition out of joint config first/);
  });

  it('TestCommitAfterRemoveNode: an entry waiting on the removed node commits once the removal is applied', () => {
    const r = leader(['a', 'b']);
    propose(r, cc([remove('b')]));
    expect(nextEnts(r)).toEqual([]);
    const ccIndex = r.log.lastIndex();
    propose(r);
    r.step(makeMessage({ type: 'MsgAppResp', from: 'b', to: 'a', term: r.term, index: ccIndex }));
    const ents = nextEnts(r);
    expect(ents.map((e) => e.confChange !== undefined)).toEqual([false, true]);
    r.applyConfChange(ents[1]!.confChange!);
    const after = nextEnts(r);
    expect(after).toEqual([{ index: ccIndex + 1, term: r.term }]);
  });

  it('TestLeaderTransferRemoveNode: removing the transferee aborts the transfer', () => {
    const nt = new TestNetwork(['a', 'b', 'c']);
    nt.campaign('a');
    nt.ignore('MsgTimeoutNow');
    nt.act('a', (n) => n.transferLeader('c'));
    expect(nt.status('a').leadTransferee).toBe('c');
    nt.act('a', (n) => n.applyConfChange(cc([remove('c')])));
    expect(nt.status('a')).toMatchObject({ state: 'Leader', lead: 'a', leadTransferee: '' });
  });

  it('TestLeaderTransferDemoteNode: demoting the transferee (joint, then leave) aborts the transfer', () => {
    const nt = new TestNetwork(['a', 'b', 'c']);
    nt.campaign('a');
    nt.ignore('MsgTimeoutNow');
    nt.act('a', (n) => n.transferLeader('c'));
    nt.act('a', (n) => n.applyConfChange(cc([remove('c'), learner('c')])));
    nt.act('a', (n) => n.applyConfChange(leaveJoint));
    expect(nt.status('a')).toMatchObject({ state: 'Leader', lead: 'a', leadTransferee: '' });
    expect(nt.status('a').confState).toEqual(confState(['a', 'b'], { learners: ['c'] }));
  });

  it('a removed leader steps down (etcd stepDownOnRemoval)', () => {
    const r = leader(['a', 'b']);
    r.applyConfChange(cc([remove('a')]));
    expect(r.state).toBe('Follower');
    expect(r.promotable()).toBe(false);
  });
});

describe('learners and non-members (etcd raft_test.go)', () => {
  it('TestLearnerElectionTimeout: a learner never campaigns', () => {
    const b = newTestRaft('b', ['a'], { learners: ['b'] });
    b.becomeFollower(1, '');
    for (let i = 0; i < 40; i++) b.tick();
    expect(b.state).toBe('Follower');
    expect(readMessages(b)).toEqual([]);
  });

  it('TestLearnerPromotion: a learner campaigns only once promoted, and then can win', () => {
    const nt = new TestNetwork(['a'], { learners: ['b'] });
    nt.tick('b', 40);
    expect(nt.status('b').state).toBe('Follower');
    nt.tick('a', 20);
    expect(nt.status('a').state).toBe('Leader');
    nt.act('a', (n) => n.heartbeat());
    nt.act('a', (n) => n.applyConfChange(cc([add('b')])));
    nt.act('b', (n) => n.applyConfChange(cc([add('b')])));
    nt.campaign('b');
    nt.act('b', (n) => n.heartbeat());
    expect(nt.status('a').state).toBe('Follower');
    expect(nt.status('b').state).toBe('Leader');
  });

  it('TestLearnerCampaign: a learner ignores MsgHup and MsgTimeoutNow', () => {
    const nt = new TestNetwork(['a'], { learners: ['b'] });
    nt.campaign('b');
    expect(nt.status('b').state).toBe('Follower');
    nt.campaign('a');
    expect(nt.status('a')).toMatchObject({ state: 'Leader', lead: 'a' });
    nt.send(makeMessage({ type: 'MsgTimeoutNow', from: 'a', to: 'b', term: nt.status('a').term }));
    expect(nt.status('b').state).toBe('Follower');
  });

  it('TestLearnerCanVote: a learner answers a vote request (it may be a voter in the newer config)', () => {
    const b = newTestRaft('b', ['a'], { learners: ['b'] });
    b.becomeFollower(1, '');
    b.step(makeMessage({ type: 'MsgVote', from: 'a', to: 'b', term: 2, logTerm: 11, index: 11 }));
    const msgs = readMessages(b);
    expect(msgs.map((m) => [m.type, m.reject])).toEqual([['MsgVoteResp', false]]);
  });

  it("a learner's or a stranger's granted vote is not counted", () => {
    const r = newTestRaft('a', ['a', 'b', 'c'], { learners: ['l'] });
    r.campaign('CampaignElection');
    readMessages(r);
    for (const from of ['l', 'x']) {
      r.step(makeMessage({ type: 'MsgVoteResp', from, to: 'a', term: r.term }));
      expect(r.state).toBe('Candidate');
    }
    expect(r.trk.tallyVotes()).toMatchObject({ granted: 1, result: 'VotePending' });
    r.step(makeMessage({ type: 'MsgVoteResp', from: 'b', to: 'a', term: r.term }));
    expect(r.state).toBe('Leader');
  });

  it('TestNonPromotableVoterWithCheckQuorum: a node outside the config never campaigns but follows', () => {
    const nt = new TestNetwork(['a', 'b'], { checkQuorum: true });
    nt.act('b', (n) => n.applyConfChange(cc([remove('b')])));
    nt.tick('b', 40);
    expect(nt.status('b').state).toBe('Follower');
    nt.campaign('a');
    expect(nt.status('a').state).toBe('Leader');
    expect(nt.status('b')).toMatchObject({ state: 'Follower', lead: 'a' });
  });

  it('a node in neither voters nor learners starts, never campaigns, and still answers votes and heartbeats', () => {
    const z = newTestRaft('z', ['a', 'b']);
    expect(z.promotable()).toBe(false);
    for (let i = 0; i < 40; i++) z.tick();
    expect(readMessages(z)).toEqual([]);
    z.step(makeMessage({ type: 'MsgVote', from: 'a', to: 'z', term: 1, logTerm: 0, index: 0 }));
    z.step(makeMessage({ type: 'MsgHeartbeat', from: 'a', to: 'z', term: 1, context: '1' }));
    expect(readMessages(z).map((m) => [m.type, m.to, m.reject])).toEqual([
      ['MsgHeartbeatResp', 'a', false],
      ['MsgVoteResp', 'a', false],
    ]);
    z.step(makeMessage({ type: 'MsgVote', from: 'b', to: 'z', term: 1, logTerm: 0, index: 0 }));
    expect(readMessages(z).map((m) => [m.type, m.to, m.reject])).toEqual([['MsgVoteResp', 'b', true]]);
  });

  it.each([{ name: 'plain' }])(
    'TestConfChangeV2CheckBeforeCampaign ($name): a node with a committed, unapplied change does not campaign',
    () => {
      const nt = new TestNetwork(['a', 'b', 'c']);
      nt.campaign('a');
      // Apply nothing on b: its driver holds the committed change back.
      const b = nt.node('b');
      nt.act('a', (n) => n.proposeConfChange(cc([remove('b')])));
      expect(nt.status('b').commit).toBe(nt.status('a').commit);
      expect(nt.status('b').confState.voters).toEqual(['a', 'c']);
      // The harness applied it; a node that has not yet applied it must not campaign.
      const r = newTestRaft('b', ['a', 'b', 'c'], {
        restored: { hardState: { term: 1, vote: 'a', commit: 0 }, snapshot: { index: 0, term: 0 }, entries: [] },
      });
      r.step(makeMessage({ type: 'MsgApp', from: 'a', to: 'b', term: 1, index: 0, logTerm: 0, commit: 1, entries: [{ index: 1, term: 1, confChange: cc([remove('c')]) }] }));
      expect(r.hasUnappliedConfChanges()).toBe(true);
      r.step(makeMessage({ type: 'MsgHup', from: 'b' }));
      expect(r.state).toBe('Follower');
      nextEnts(r);
      r.applyConfChange(cc([remove('c')]));
      r.step(makeMessage({ type: 'MsgHup', from: 'b' }));
      expect(r.state).toBe('Candidate');
      expect(b.status().state).toBe('Follower');
    },
  );
});

/** A three-member group led by a, with every committed change applied by the harness driver. */
function group(options: NetworkOptions = {}): TestNetwork {
  const nt = new TestNetwork(['a', 'b', 'c'], options);
  nt.campaign('a');
  expect(nt.status('a').state).toBe('Leader');
  return nt;
}

/** Every member's applied configurations agree index by index. */
function expectConfigsAgree(nt: TestNetwork): void {
  const byIndex = new Map<number, string>();
  for (const a of nt.applied) {
    const s = JSON.stringify(a.confState);
    const seen = byIndex.get(a.index);
    if (seen === undefined) byIndex.set(a.index, s);
    else expect(s, `configuration at index ${a.index} on ${a.id}`).toBe(seen);
  }
}

describe('configuration changes through the log', () => {
  it('a joining node is added as a learner, catches up, is promoted, and all members agree on each configuration', () => {
    const nt = group();
    nt.join('d');
    expect(nt.status('d').confState).toEqual(confState([]));
    nt.act('a', (n) => n.proposeConfChange(cc([learner('d')])));
    expect(nt.status('d').confState).toEqual(confState(['a', 'b', 'c'], { learners: ['d'] }));
    expect(nt.status('d').lastIndex).toBe(nt.status('a').lastIndex);
    nt.act('a', (n) => n.proposeConfChange(cc([add('d')])));
    for (const id of ['a', 'b', 'c', 'd']) expect(nt.status(id).confState).toEqual(confState(['a', 'b', 'c', 'd']));
    expectConfigsAgree(nt);
    // d now counts: with a and d cut off from b and c, 2 of 4 voters commit nothing.
    nt.partition(['a', 'd'], ['b', 'c']);
    const commit = nt.status('a').commit;
    nt.act('a', (n) => n.propose());
    expect(nt.status('a').commit).toBe(commit);
    nt.recover();
    nt.act('a', (n) => n.heartbeat());
    expect(nt.status('a').commit).toBe(commit + 1);
  });

  it('one pending change at a time: a second proposal is refused until the first is applied', () => {
    const nt = group();
    nt.isolate('b');
    nt.isolate('c');
    nt.act('a', (n) => n.proposeConfChange(cc([learner('d')])));
    const err = catchError(() => nt.act('a', (n) => n.proposeConfChange(cc([learner('e')]))));
    expect(err.code).toBe('PROPOSAL_DROPPED');
    expect(err.message).toMatch(/possible unapplied conf change at index 2 \(applied to 1\)/);
    nt.recover();
    nt.act('a', (n) => n.heartbeat());
    expect(nt.status('a').confState.learners).toEqual(['d']);
    nt.act('a', (n) => n.proposeConfChange(cc([learner('e')])));
    expect(nt.status('a').confState.learners).toEqual(['d', 'e']);
  });

  it('a follower refuses to propose a change; the leader is the one place it starts', () => {
    const nt = group();
    const err = catchError(() => nt.node('b').proposeConfChange(cc([learner('d')])));
    expect(err).toMatchObject({ code: 'PROPOSAL_DROPPED', message: 'only the leader changes the configuration' });
  });

  it('a joint swap enters joint, needs both quorums while joint, and leaves automatically', () => {
    const nt = group();
    nt.join('d');
    nt.act('a', (n) => n.proposeConfChange(cc([learner('d')])));
    // Replace c by d in one joint change (a rolling update never passes through an even config).
    nt.partition(['a', 'b', 'd'], ['c']);
    nt.act('a', (n) => n.proposeConfChange(cc([add('d'), remove('c')])));
    const enteredAt = nt.applied.find((x) => x.id === 'a' && x.confState.votersOutgoing.length > 0);
    expect(enteredAt?.confState).toEqual(confState(['a', 'b', 'd'], { votersOutgoing: ['a', 'b', 'c'], autoLeave: true }));
    // The leader left the joint config on its own, once the enter was applied.
    expect(nt.status('a').confState).toEqual(confState(['a', 'b', 'd']));
    expect(nt.status('b').confState).toEqual(confState(['a', 'b', 'd']));
    expectConfigsAgree(nt);
  });

  it('while joint, an entry needs a majority of the outgoing config too', () => {
    const nt = group();
    nt.join('d');
    nt.join('e');
    // Two changes at once go through a joint config, left automatically.
    nt.act('a', (n) => n.proposeConfChange(cc([learner('d'), learner('e')], 'Auto')));
    expect(nt.status('a').confState).toEqual(confState(['a', 'b', 'c'], { learners: ['d', 'e'] }));
    nt.act('a', (n) => n.proposeConfChange(cc([add('d'), add('e'), remove('b'), remove('c')], 'JointExplicit')));
    expect(nt.status('a').confState).toEqual(confState(['a', 'd', 'e'], { votersOutgoing: ['a', 'b', 'c'] }));
    // Incoming (a, d, e) has a majority, outgoing (a, b, c) has only a: nothing commits.
    nt.partition(['a', 'd', 'e'], ['b', 'c']);
    const commit = nt.status('a').commit;
    nt.act('a', (n) => n.propose());
    expect(nt.status('a').commit).toBe(commit);
    nt.recover();
    nt.act('a', (n) => n.heartbeat());
    expect(nt.status('a').commit).toBe(commit + 1);
    // Explicit: still joint until the empty change.
    expect(nt.status('a').confState.votersOutgoing).toEqual(['a', 'b', 'c']);
    nt.act('a', (n) => n.proposeConfChange(leaveJoint));
    expect(nt.status('a').confState).toEqual(confState(['a', 'd', 'e']));
    expectConfigsAgree(nt);
  });

  it('etcd confchange_v2_replace_leader: a leader that swaps itself out leads the joint config, then steps down on leaving it', () => {
    const nt = group();
    nt.join('d');
    nt.act('a', (n) => n.proposeConfChange(cc([learner('d')])));
    nt.act('a', (n) => n.proposeConfChange(cc([add('d'), remove('a')])));
    expect(nt.status('a')).toMatchObject({ state: 'Follower', lead: '' });
    expect(nt.status('a').confState).toEqual(confState(['b', 'c', 'd']));
    expect(nt.status('a').progress).toEqual({});
    // The rest elect a leader among themselves; a stays out.
    nt.tickAll(40);
    const leaders = nt.leaders();
    expect(leaders).toHaveLength(1);
    expect(leaders[0]!.id).not.toBe('a');
    expectConfigsAgree(nt);
  });

  it('a restart re-applies committed changes from the durable state', () => {
    const nt = group();
    nt.join('d');
    nt.act('a', (n) => n.proposeConfChange(cc([learner('d')])));
    expect(nt.storage.get('b')?.entries.some((e) => e.confChange)).toBe(true);
    nt.restart('b');
    expect(nt.status('b').confState).toEqual(confState(['a', 'b', 'c'], { learners: ['d'] }));
    expect(nt.status('b').applied).toBe(nt.status('b').commit);
  });

  it('a snapshot carries the configuration at its index to a member that lags, and compaction keeps it', () => {
    const nt = group({ configure: () => ({ maxLogEntries: 1 }) });
    nt.join('d');
    nt.act('a', (n) => n.proposeConfChange(cc([learner('d')])));
    nt.crash('d');
    nt.wipe('d');
    for (let i = 0; i < 4; i++) nt.act('a', (n) => n.propose());
    const disk = nt.storage.get('a')!;
    expect(disk.snapshot.index).toBeGreaterThan(2);
    expect(disk.confState).toEqual(confState(['a', 'b', 'c'], { learners: ['d'] }));
    // A fresh d, outside any configuration, learns it from the snapshot.
    const before = nt.delivered.length;
    nt.join('d');
    nt.act('a', (n) => n.heartbeat());
    const snaps = nt.delivered.slice(before).filter((m) => m.type === 'MsgSnap' && m.to === 'd');
    expect(snaps.length).toBeGreaterThan(0);
    expect(snaps[0]!.confState).toEqual(confState(['a', 'b', 'c'], { learners: ['d'] }));
    expect(nt.status('d').confState).toEqual(confState(['a', 'b', 'c'], { learners: ['d'] }));
    expect(nt.storage.get('d')!.confState).toEqual(confState(['a', 'b', 'c'], { learners: ['d'] }));
  });

  it('etcd restore(): a snapshot whose configuration lacks the receiver is not restored', () => {
    const r = newTestRaft('z', ['a']);
    r.step(makeMessage({ type: 'MsgSnap', from: 'a', to: 'z', term: 2, snapshot: { index: 11, term: 11 }, confState: confState(['a', 'b']) }));
    expect(r.log.lastIndex()).toBe(0);
    expect(readMessages(r).map((m) => [m.type, m.index])).toEqual([['MsgAppResp', 0]]);
  });

  it('TestRestoreWithVotersOutgoing: a joint snapshot restores both halves, and the node does not campaign before persisting it', () => {
    const r = newTestRaft('a', ['a', 'b']);
    r.step(makeMessage({
      type: 'MsgSnap',
      from: 'b',
      to: 'a',
      term: 11,
      snapshot: { index: 11, term: 11 },
      confState: confState(['b', 'c', 'd'], { votersOutgoing: ['a', 'b', 'c'] }),
    }));
    expect(r.log.lastIndex()).toBe(11);
    expect(r.trk.voters).toEqual(['a', 'b', 'c', 'd']);
    for (let i = 0; i < 40; i++) r.tick();
    expect(r.state).toBe('Follower');
  });

  it('TestRestoreVoterToLearner / TestRestoreLearnerPromotion: a snapshot may demote or promote the receiver', () => {
    const c = newTestRaft('c', ['a', 'b', 'c']);
    c.step(makeMessage({ type: 'MsgSnap', from: 'a', to: 'c', term: 11, snapshot: { index: 11, term: 11 }, confState: confState(['a', 'b'], { learners: ['c'] }) }));
    expect(c.trk.progress.get('c')?.isLearner).toBe(true);
    const l = newTestRaft('c', ['a', 'b'], { learners: ['c'] });
    l.step(makeMessage({ type: 'MsgSnap', from: 'a', to: 'c', term: 11, snapshot: { index: 11, term: 11 }, confState: confState(['a', 'b', 'c']) }));
    expect(l.trk.progress.get('c')?.isLearner).toBe(false);
  });
});

describe('applying around a snapshot', () => {
  it('a change handed out before a snapshot restored the config (between ready and advance) is not applied on top of it', () => {
    const r = new TestNetwork(['a', 'b', 'c']).node('b');
    r.step(makeMessage({ type: 'MsgApp', from: 'a', to: 'b', term: 1, index: 0, logTerm: 0, commit: 1, entries: [{ index: 1, term: 1, confChange: cc([learner('d')]) }] }));
    const rd = r.ready();
    expect(rd.committedEntries.map((e) => e.index)).toEqual([1]);
    // A snapshot lands first: d was added at 1 and removed again by 5.
    r.step(makeMessage({ type: 'MsgSnap', from: 'a', to: 'b', term: 1, snapshot: { index: 5, term: 1 }, confState: confState(['a', 'b', 'c']) }));
    expect(r.applyConfChange(rd.committedEntries[0]!.confChange!)).toEqual(confState(['a', 'b', 'c']));
    r.advance(rd);
    expect(r.status().confState).toEqual(confState(['a', 'b', 'c']));
  });
});
