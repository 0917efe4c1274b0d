import { describe, expect, it } from 'vitest';
import { durableState, fixedRandom, newTestRaft, readMessages, TestNetwork } from '../test/harness/network.js';
import type { RaftConfig } from './config.js';
import { CampaignTransferContext, LeaseSkippedContext, makeMessage } from './types.js';

// raft-elector's own rules on top of etcd-raft (documented in RaftConfig and types.ts).

/** Ticks a member with its output lost. */
function tickSilently(nt: TestNetwork, id: string, times: number): void {
  for (let i = 0; i < times; i++) nt.node(id).tick();
  nt.drain(id);
}

describe('restartVoteDelayTicks', () => {
  const delay = 5;
  const options = { configure: () => ({ restartVoteDelayTicks: delay, random: fixedRandom(0) }) };

  it.each(['MsgVote', 'MsgPreVote'] as const)('a restarted member drops a higher-term %s until the delay has passed', (type) => {
    const r = newTestRaft('b', ['a', 'b', 'c'], { restartVoteDelayTicks: delay, restored: durableState(2, 'a', [1, 2], 2) });
    const request = makeMessage({ type, from: 'c', to: 'b', term: 3, index: 2, logTerm: 2 });
    for (let t = 0; t < delay; t++) {
      r.step(request);
      expect(readMessages(r), `tick ${t}`).toEqual([]);
      expect(r.term).toBe(2);
      r.tick();
    }
    r.step(request);
    expect(readMessages(r)).toMatchObject([{ type: `${type}Resp`, reject: false, term: 3 }]);
  });

  it('a transfer campaign is answered during the delay', () => {
    const r = newTestRaft('b', ['a', 'b', 'c'], { restartVoteDelayTicks: delay, restored: durableState(2, 'a', [1, 2], 2) });
    r.step(makeMessage({ type: 'MsgVote', from: 'c', to: 'b', term: 3, index: 2, logTerm: 2, context: CampaignTransferContext }));
    expect(readMessages(r)).toMatchObject([{ type: 'MsgVoteResp', reject: false, term: 3 }]);
    expect(r).toMatchObject({ term: 3, vote: 'c' });
  });

  it('in a group: a candidate cannot win with a just-restarted voter, and wins once the delay passed', () => {
    const nt = new TestNetwork(['a', 'b', 'c'], options);
    nt.campaign('a');
    nt.restart('b');
    nt.isolate('a');
    nt.campaign('c');
    expect(nt.status('c')).toMatchObject({ state: 'Candidate', term: 2 });
    expect(nt.status('b')).toMatchObject({ term: 1, vote: 'a' });
    tickSilently(nt, 'b', delay);
    nt.campaign('c');
    expect(nt.status('c')).toMatchObject({ state: 'Leader', term: 3 });
  });

  it('a restarted member does not vote for itself during the delay either: no campaign on timeout or on request', () => {
    // An ack its old incarnation gave under longer timing may still hold at the old leader, and a
    // self-vote breaks that lease as much as a granted one (found by the mixed-timing simulation).
    const long = 25;
    const r = newTestRaft('b', ['a', 'b', 'c'], { restartVoteDelayTicks: long, restored: durableState(2, 'a', [1, 2], 2) });
    r.step(makeMessage({ type: 'MsgHup', from: 'b' }));
    for (let t = 0; t < long - 1; t++) r.tick();
    expect(readMessages(r)).toEqual([]);
    expect(r).toMatchObject({ state: 'Follower', term: 2 });
    r.tick(); // the first tick after the delay: the timeout long passed, so it campaigns at once
    expect(r).toMatchObject({ state: 'Candidate', term: 3 });
    expect(readMessages(r).map((m) => m.type)).toEqual(['MsgVote', 'MsgVote']);
  });

  it('a transfer campaign skips the restart delay (the leader gave its lease up)', () => {
    const r = newTestRaft('b', ['a', 'b', 'c'], { restartVoteDelayTicks: delay, restored: durableState(2, 'a', [1, 2], 2) });
    // The leader transfers only to a follower that acked its appends, so b knows a leads.
    r.step(makeMessage({ type: 'MsgHeartbeat', from: 'a', to: 'b', term: 2, commit: 2 }));
    r.step(makeMessage({ type: 'MsgTimeoutNow', from: 'a', to: 'b', term: 2 }));
    expect(r).toMatchObject({ state: 'Candidate', term: 3 });
  });

  it('inside the delay, the transfer votes it grants and its own transfer campaign carry LeaseSkipped; after it, plain', () => {
    // Its old incarnation may have acked another leader whose lease still runs (found by the
    // mixed-timing simulation, seed 226153352): the transfer's winner must wait that lease out.
    const r = newTestRaft('b', ['a', 'b', 'c'], { checkQuorum: true, restartVoteDelayTicks: delay, restored: durableState(2, 'a', [1, 2], 2) });
    r.step(makeMessage({ type: 'MsgVote', from: 'c', to: 'b', term: 3, index: 2, logTerm: 2, context: CampaignTransferContext }));
    expect(readMessages(r)).toMatchObject([{ type: 'MsgVoteResp', reject: false, term: 3, context: LeaseSkippedContext }]);

    const own = newTestRaft('b', ['a', 'b', 'c'], { checkQuorum: true, restartVoteDelayTicks: delay, restored: durableState(2, 'a', [1, 2], 2) });
    own.step(makeMessage({ type: 'MsgHeartbeat', from: 'a', to: 'b', term: 2, commit: 2 }));
    own.step(makeMessage({ type: 'MsgTimeoutNow', from: 'a', to: 'b', term: 2 }));
    expect(own).toMatchObject({ state: 'Candidate', term: 3 });
    for (const m of own.msgsAfterAppend.filter((x) => x.to === 'b')) own.step(m); // its own vote, as on advance
    own.step(makeMessage({ type: 'MsgVoteResp', from: 'a', to: 'b', term: 3 }));
    expect(own.status()).toMatchObject({ state: 'Leader', term: 3, leaseSkipped: true });

    const later = newTestRaft('b', ['a', 'b', 'c'], { checkQuorum: true, restartVoteDelayTicks: delay, restored: durableState(2, 'a', [1, 2], 2) });
    for (let t = 0; t < delay; t++) later.tick();
    later.step(makeMessage({ type: 'MsgVote', from: 'c', to: 'b', term: 3, index: 2, logTerm: 2, context: CampaignTransferContext }));
    expect(readMessages(later)).toMatchObject([{ type: 'MsgVoteResp', reject: false, term: 3, context: '' }]);
  });

  it('forgetting a leader inside the delay does not shorten its marks (they cover the old incarnation\'s acks)', () => {
    // The restart delay may be longer than an election timeout (timing got shorter): a
    // ForgetLeader's marks, the rest of one timeout, must not replace the restart's.
    const long = 25;
    const r = newTestRaft('b', ['a', 'b', 'c'], { checkQuorum: true, restartVoteDelayTicks: long, restored: durableState(2, 'a', [1, 2], 2) });
    r.step(makeMessage({ type: 'MsgHeartbeat', from: 'a', to: 'b', term: 2, commit: 2 }));
    r.step(makeMessage({ type: 'MsgForgetLeader', from: 'b' }));
    for (let t = 0; t < 12; t++) r.tick(); // past the forgotten lease, inside the restart delay
    r.step(makeMessage({ type: 'MsgHeartbeat', from: 'a', to: 'b', term: 2, commit: 2 }));
    readMessages(r);
    r.step(makeMessage({ type: 'MsgVote', from: 'c', to: 'b', term: 3, index: 2, logTerm: 2, context: CampaignTransferContext }));
    expect(readMessages(r)).toMatchObject([{ type: 'MsgVoteResp', reject: false, term: 3, context: LeaseSkippedContext }]);
  });

  it('a member that starts without state is not delayed by restartVoteDelayTicks', () => {
    const r = newTestRaft('b', ['a', 'b', 'c'], { restartVoteDelayTicks: delay });
    r.step(makeMessage({ type: 'MsgVote', from: 'c', to: 'b', term: 1 }));
    expect(readMessages(r)).toMatchObject([{ type: 'MsgVoteResp', reject: false, term: 1 }]);
  });

  it('the delay counts ticks since start, reported by status()', () => {
    const nt = new TestNetwork(['a', 'b', 'c'], options);
    nt.tick('b', 3);
    expect(nt.status('b').ticksSinceStart).toBe(3);
    nt.restart('b');
    expect(nt.status('b').ticksSinceStart).toBe(0);
  });
});

describe('freshVoteDelayTicks', () => {
  const delay = 5;

  it('a brand-new group at term 0 elects at once', () => {
    const nt = new TestNetwork(['a', 'b', 'c'], { configure: () => ({ freshVoteDelayTicks: 50 }) });
    nt.campaign('a');
    expect(nt.status('a')).toMatchObject({ state: 'Leader', term: 1 });
    for (const id of ['b', 'c']) expect(nt.status(id)).toMatchObject({ term: 1, vote: 'a', lead: 'a' });
  });

  it('a fresh member that sees the group already ran delays its votes; then votes', () => {
    const nt = new TestNetwork(['a', 'b', 'c'], { configure: () => ({ freshVoteDelayTicks: delay, random: fixedRandom(0) }) });
    // Everyone has been up longer than the delay (timeouts are 10 ticks: nobody campaigns yet).
    for (const id of ['a', 'b', 'c']) tickSilently(nt, id, delay);
    nt.campaign('a');
    nt.campaign('c'); // the group is at term 2
    nt.wipe('b'); // b comes back with an empty disk
    nt.start('b');
    nt.isolate('c');
    nt.campaign('a'); // term 3 > 1: b learns the group ran and holds its vote
    expect(nt.status('a')).toMatchObject({ state: 'Candidate', term: 3 });
    expect(nt.status('b')).toMatchObject({ term: 0, vote: '' });
    tickSilently(nt, 'b', delay);
    nt.campaign('a');
    expect(nt.status('a')).toMatchObject({ state: 'Leader', term: 4 });
    expect(nt.status('b')).toMatchObject({ term: 4, vote: 'a', lead: 'a' });
  });

  it('a fresh member that hears a leader heartbeat first also counts as having seen the group run', () => {
    const r = newTestRaft('b', ['a', 'b', 'c'], { freshVoteDelayTicks: delay });
    r.step(makeMessage({ type: 'MsgHeartbeat', from: 'a', to: 'b', term: 1 }));
    readMessages(r);
    r.step(makeMessage({ type: 'MsgVote', from: 'c', to: 'b', term: 2, index: 0, logTerm: 0 }));
    expect(readMessages(r)).toEqual([]);
    expect(r.term).toBe(1);
  });

  it("a fresh member's own vote is not its first peer message (found by the disk-loss simulation)", () => {
    const r = newTestRaft('b', ['a', 'b', 'c'], { freshVoteDelayTicks: delay });
    r.step(makeMessage({ type: 'MsgHup', from: 'b' })); // it times out before hearing anyone
    for (const m of r.msgsAfterAppend.filter((x) => x.to === 'b')) r.step(m); // its own vote, as on advance
    readMessages(r);
    r.step(makeMessage({ type: 'MsgVote', from: 'c', to: 'b', term: 3, index: 2, logTerm: 2 }));
    expect(readMessages(r)).toEqual([]); // the first peer message shows history: b holds its vote
    expect(r.vote).toBe('b');
  });

  it('a fresh member that saw the group ran does not campaign during the delay, not even on a transfer', () => {
    const r = newTestRaft('b', ['a', 'b', 'c'], { freshVoteDelayTicks: delay });
    r.step(makeMessage({ type: 'MsgHeartbeat', from: 'a', to: 'b', term: 3 }));
    readMessages(r);
    r.step(makeMessage({ type: 'MsgHup', from: 'b' }));
    r.step(makeMessage({ type: 'MsgTimeoutNow', from: 'a', to: 'b', term: 3 }));
    expect(readMessages(r)).toEqual([]);
    expect(r).toMatchObject({ state: 'Follower', term: 3 });
  });

  it('status() reports the ticks left of the fresh delay once the group is seen to have run, then 0', () => {
    const r = newTestRaft('b', ['a', 'b', 'c'], { freshVoteDelayTicks: delay });
    expect(r.status().freshVoteDelayTicksLeft).toBe(0); // nothing seen yet: no delay
    r.step(makeMessage({ type: 'MsgHeartbeat', from: 'a', to: 'b', term: 3 }));
    readMessages(r);
    r.tick();
    expect(r.status().freshVoteDelayTicksLeft).toBe(delay - 1);
    for (let i = 1; i < delay; i++) r.tick();
    expect(r.status().freshVoteDelayTicksLeft).toBe(0);
  });

  it('a transfer campaign does not skip the fresh delay (it skips only the lease and the restart delay)', () => {
    const r = newTestRaft('b', ['a', 'b', 'c'], { freshVoteDelayTicks: delay });
    r.step(makeMessage({ type: 'MsgHeartbeat', from: 'a', to: 'b', term: 3 }));
    readMessages(r);
    r.step(makeMessage({ type: 'MsgVote', from: 'c', to: 'b', term: 4, index: 2, logTerm: 3, context: CampaignTransferContext }));
    expect(readMessages(r)).toEqual([]);
    expect(r.term).toBe(3);
  });

  it('a fresh member whose term a stray message raised grants no vote in that term either', () => {
    // Its old incarnation may have voted in term 3. A MsgTimeoutNow (or a late response) sets
    // the term with no leader and no vote; a same-term request must not get a second vote.
    const r = newTestRaft('b', ['a', 'b', 'c'], { freshVoteDelayTicks: delay });
    r.step(makeMessage({ type: 'MsgTimeoutNow', from: 'a', to: 'b', term: 3 }));
    readMessages(r);
    expect(r).toMatchObject({ term: 3, vote: '', lead: '' });
    r.step(makeMessage({ type: 'MsgVote', from: 'c', to: 'b', term: 3, index: 2, logTerm: 2 }));
    expect(readMessages(r)).toEqual([]);
    expect(r.vote).toBe('');
    for (let t = 0; t < delay; t++) r.tick();
    r.step(makeMessage({ type: 'MsgVote', from: 'c', to: 'b', term: 3, index: 2, logTerm: 2 }));
    expect(readMessages(r)).toMatchObject([{ type: 'MsgVoteResp', reject: false, term: 3 }]);
  });

  it('history a fresh member watches being made does not count: its first message decides', () => {
    const nt = new TestNetwork(['a', 'b', 'c'], { configure: () => ({ freshVoteDelayTicks: 50, random: fixedRandom(0) }) });
    nt.campaign('a'); // brand-new group: b's first message is a term-1 request from an empty log
    nt.isolate('a');
    nt.campaign('c'); // term 2, a candidate whose log has history: b still votes at once
    expect(nt.status('c')).toMatchObject({ state: 'Leader', term: 2 });
    expect(nt.status('b')).toMatchObject({ term: 2, vote: 'c', lead: 'c' });
  });
});

describe('LeaseSkipped', () => {
  function elected() {
    const nt = new TestNetwork(['a', 'b', 'c'], { checkQuorum: true, preVote: true, configure: () => ({ random: fixedRandom(5) }) });
    nt.campaign('a');
    expect(nt.status('a')).toMatchObject({ state: 'Leader', leaseSkipped: false });
    return nt;
  }

  it('a normal election reports leaseSkipped false', () => {
    const nt = elected();
    nt.isolate('a');
    nt.tickAll(40);
    const [leader] = nt.leaders().filter((l) => l.id !== 'a');
    expect(leader).toBeDefined();
    expect(nt.status(leader!.id).leaseSkipped).toBe(false);
    expect(nt.delivered.filter((m) => m.context === LeaseSkippedContext)).toEqual([]);
  });

  it('votes from a follower that forgot a leader within its lease are marked; their winner reports leaseSkipped', () => {
    const nt = elected();
    nt.isolate('a');
    nt.act('b', (n) => n.forgetLeader());
    nt.act('c', (n) => n.forgetLeader());
    nt.campaign('c');
    expect(nt.status('c')).toMatchObject({ state: 'Leader', term: 2, leaseSkipped: true });
    const grants = nt.delivered.filter((m) => m.from === 'b' && m.to === 'c' && (m.type === 'MsgVoteResp' || m.type === 'MsgPreVoteResp'));
    expect(grants.map((m) => [m.type, m.reject, m.context])).toEqual([
      ['MsgPreVoteResp', false, LeaseSkippedContext],
      ['MsgVoteResp', false, LeaseSkippedContext],
    ]);
  });

  it('a follower that forgets its leader after the lease ran out grants plain votes', () => {
    const nt = elected();
    nt.isolate('a');
    tickSilently(nt, 'b', 10); // lease over (timeout is 15, so b does not campaign)
    tickSilently(nt, 'c', 10);
    nt.act('b', (n) => n.forgetLeader());
    nt.act('c', (n) => n.forgetLeader());
    nt.campaign('c');
    expect(nt.status('c')).toMatchObject({ state: 'Leader', term: 2, leaseSkipped: false });
  });

  it('a candidate that itself forgot a leader in lease marks its own vote, whoever else votes', () => {
    const nt = elected();
    nt.isolate('a');
    tickSilently(nt, 'b', 10); // b is out of a's lease and forgot nothing: its vote is plain
    nt.act('c', (n) => n.forgetLeader()); // c forgets a while still inside a's lease
    nt.campaign('c');
    expect(nt.status('c')).toMatchObject({ state: 'Leader', term: 2, leaseSkipped: true });
    expect(nt.delivered.filter((m) => m.type === 'MsgVoteResp' && m.from === 'b' && m.term === 2).map((m) => m.context)).toEqual(['']);
  });

  it('a follower that takes another leader within its leader\'s lease marks the votes it grants (the lease is skipped)', () => {
    const r = newTestRaft('b', ['a', 'b', 'c'], { checkQuorum: true, preVote: true, random: fixedRandom(5) });
    r.becomeFollower(1, 'a');
    for (let i = 0; i < 4; i++) r.tick();
    // A heartbeat "from c" of a higher term: c may be a forger that then hands over to someone.
    r.step(makeMessage({ type: 'MsgHeartbeat', from: 'c', to: 'b', term: 2 }));
    readMessages(r);
    r.step(makeMessage({ type: 'MsgVote', from: 'd', to: 'b', term: 3, context: CampaignTransferContext }));
    expect(readMessages(r)).toMatchObject([{ type: 'MsgVoteResp', reject: false, term: 3, context: LeaseSkippedContext }]);
  });

  it('so does one that takes another leader of the same term (two leaders in one term: a forger)', () => {
    const r = newTestRaft('b', ['a', 'b', 'c'], { checkQuorum: true, preVote: true, random: fixedRandom(5) });
    r.becomeFollower(1, 'a');
    r.step(makeMessage({ type: 'MsgHeartbeat', from: 'c', to: 'b', term: 1 }));
    readMessages(r);
    r.step(makeMessage({ type: 'MsgVote', from: 'c', to: 'b', term: 2, context: CampaignTransferContext }));
    expect(readMessages(r)).toMatchObject([{ type: 'MsgVoteResp', reject: false, term: 2, context: LeaseSkippedContext }]);
  });

  it('a follower that hears its own leader again, or a new leader after the lease ran out, grants plain votes', () => {
    const r = newTestRaft('b', ['a', 'b', 'c'], { checkQuorum: true, preVote: true, random: fixedRandom(5) });
    r.becomeFollower(1, 'a');
    r.step(makeMessage({ type: 'MsgHeartbeat', from: 'a', to: 'b', term: 1 }));
    for (let i = 0; i < 10; i++) r.tick();
    r.step(makeMessage({ type: 'MsgHeartbeat', from: 'c', to: 'b', term: 2 }));
    readMessages(r);
    r.step(makeMessage({ type: 'MsgVote', from: 'c', to: 'b', term: 3, context: CampaignTransferContext }));
    expect(readMessages(r)).toMatchObject([{ type: 'MsgVoteResp', reject: false, term: 3, context: '' }]);
  });

  it('a follower that grants a transfer vote within its leader\'s lease grants that one plain and marks the next ones', () => {
    const r = newTestRaft('b', ['a', 'b', 'c', 'd', 'e'], { checkQuorum: true, preVote: true, random: fixedRandom(5) });
    r.becomeFollower(1, 'a');
    r.step(makeMessage({ type: 'MsgVote', from: 'c', to: 'b', term: 2, context: CampaignTransferContext }));
    expect(readMessages(r)).toMatchObject([{ type: 'MsgVoteResp', reject: false, term: 2, context: '' }]);
    // A second "transfer" inside a's lease: the first may have been forged, so this grant says the lease was skipped.
    r.step(makeMessage({ type: 'MsgVote', from: 'd', to: 'b', term: 3, context: CampaignTransferContext }));
    expect(readMessages(r)).toMatchObject([{ type: 'MsgVoteResp', reject: false, term: 3, context: LeaseSkippedContext }]);
  });

  it('a transfer vote from beyond the next term, granted in the lease, is itself marked', () => {
    // Our leader's target campaigns at the next term; one two terms ahead was sent by a leader we
    // never followed (it was elected meanwhile, e.g. with LeaseSkipped votes, and handed over
    // before its claim wait ended) while ours may still claim on our ack.
    const r = newTestRaft('b', ['a', 'b', 'c', 'd', 'e'], { checkQuorum: true, preVote: true, random: fixedRandom(5) });
    r.becomeFollower(1, 'a');
    r.step(makeMessage({ type: 'MsgVote', from: 'd', to: 'b', term: 3, context: CampaignTransferContext }));
    expect(readMessages(r)).toMatchObject([{ type: 'MsgVoteResp', reject: false, term: 3, context: LeaseSkippedContext }]);
    expect(r).toMatchObject({ term: 3, vote: 'd' });
    // Outside the lease the vote skips nothing.
    const late = newTestRaft('b', ['a', 'b', 'c', 'd', 'e'], { checkQuorum: true, preVote: true, random: fixedRandom(5) });
    late.becomeFollower(1, 'a');
    for (let i = 0; i < 10; i++) late.tick();
    late.step(makeMessage({ type: 'MsgVote', from: 'd', to: 'b', term: 3, context: CampaignTransferContext }));
    expect(readMessages(late)).toMatchObject([{ type: 'MsgVoteResp', reject: false, term: 3, context: '' }]);
  });

  it('the mark lasts only for the rest of the forgotten lease', () => {
    const r = newTestRaft('b', ['a', 'b', 'c'], { checkQuorum: true, preVote: true, random: fixedRandom(5) });
    r.becomeFollower(1, 'a');
    for (let i = 0; i < 4; i++) r.tick();
    r.step(makeMessage({ type: 'MsgForgetLeader', from: 'b' }));
    const ask = (term: number) => {
      r.step(makeMessage({ type: 'MsgPreVote', from: 'c', to: 'b', term }));
      return readMessages(r)[0]!.context;
    };
    expect(ask(2)).toBe(LeaseSkippedContext);
    for (let i = 0; i < 5; i++) r.tick();
    expect(ask(2)).toBe(LeaseSkippedContext);
    r.tick(); // 10 ticks since a was last heard: its lease is over
    expect(ask(2)).toBe('');
  });

  it('a leader loses the mark at its next election', () => {
    const nt = elected();
    nt.isolate('a');
    nt.act('b', (n) => n.forgetLeader());
    nt.act('c', (n) => n.forgetLeader());
    nt.campaign('c');
    expect(nt.status('c').leaseSkipped).toBe(true);
    nt.recover();
    nt.tickAll(30);
    nt.act('c', (n) => n.transferLeader('b'));
    expect(nt.status('b')).toMatchObject({ state: 'Leader', leaseSkipped: false });
    expect(nt.status('c')).toMatchObject({ state: 'Follower', leaseSkipped: false });
  });
});

describe('successorCampaign', () => {
  // Timeouts drawn at their longest (2 * 10 - 1 ticks): only the successor rule can start earlier.
  function group(successorCampaign: boolean): TestNetwork {
    const nt = new TestNetwork(['a', 'b', 'c'], { checkQuorum: true, preVote: true, configure: () => ({ random: fixedRandom(9), successorCampaign }) });
    nt.campaign('a');
    expect(nt.status('a').state).toBe('Leader');
    return nt;
  }
  const preVotesFrom = (nt: TestNetwork, id: string) => nt.delivered.filter((m) => m.type === 'MsgPreVote' && m.from === id).length;

  it('the lowest-id other voter asks for pre-votes once the leader was silent one election timeout, and wins', () => {
    const nt = group(true);
    nt.isolate('a');
    // c first: it is out of a's lease when b asks.
    nt.tick('c', 10);
    nt.tick('b', 9);
    expect(nt.status('b')).toMatchObject({ state: 'Follower', term: 1 });
    nt.tick('b');
    expect(nt.status('b')).toMatchObject({ state: 'Leader', term: 2 });
    expect(nt.status('c')).toMatchObject({ state: 'Follower', term: 2, lead: 'b' });
    expect(preVotesFrom(nt, 'c')).toBe(0);
  });

  it('without it, nobody campaigns before the randomized timeout', () => {
    const nt = group(false);
    nt.isolate('a');
    nt.tick('c', 10);
    nt.tick('b', 18);
    expect(nt.status('b')).toMatchObject({ state: 'Follower', term: 1 });
    nt.tick('b');
    expect(nt.status('b').state).not.toBe('Follower');
  });

  it('a successor refused by a voter still hearing the leader retries every tick, for one election timeout at most', () => {
    const nt = group(true);
    nt.cut('a', 'b'); // b lost the leader; c still hears it
    nt.tick('b', 10);
    expect(nt.status('b').state).toBe('PreCandidate');
    expect(preVotesFrom(nt, 'b')).toBe(1); // to c, which drops it in a's lease (the one to a is lost on the cut)
    nt.tick('b', 5);
    expect(nt.status('b')).toMatchObject({ state: 'PreCandidate', term: 1 });
    expect(nt.status('a')).toMatchObject({ state: 'Leader', term: 1 });
    nt.tick('b', 10);
    // As successor at ticks 10-18, then its own timeout (19) resets the clock: quiet until the next one.
    expect(preVotesFrom(nt, 'b')).toBe(10);
    nt.tick('b', 10);
    expect(preVotesFrom(nt, 'b')).toBe(10);
    expect(nt.status('c')).toMatchObject({ term: 1, lead: 'a' });
  });

  it('a refused successor wins at its retry once the other voter\'s lease of the old leader ran out', () => {
    const nt = group(true);
    nt.isolate('a');
    nt.tick('c', 9);
    nt.tick('b', 10); // c is one tick behind: still in a's lease, it drops the pre-vote
    expect(nt.status('b').state).toBe('PreCandidate');
    expect(nt.status('c')).toMatchObject({ term: 1, lead: 'a' });
    nt.tick('c');
    nt.tick('b');
    expect(nt.status('b')).toMatchObject({ state: 'Leader', term: 2 });
  });

  it('a follower that is not the successor, or that hears its leader, does not start early', () => {
    const nt = group(true);
    nt.isolate('a');
    nt.tick('c', 18);
    expect(nt.status('c')).toMatchObject({ state: 'Follower', term: 1 });
    const healthy = group(true);
    for (let i = 0; i < 30; i++) healthy.tickAll();
    expect(healthy.status('a')).toMatchObject({ state: 'Leader', term: 1 });
    expect(preVotesFrom(healthy, 'b')).toBe(0);
  });

  it('needs preVote: without it the rule is off (an early real vote would raise terms)', () => {
    const nt = new TestNetwork(['a', 'b', 'c'], { checkQuorum: true, preVote: false, configure: () => ({ random: fixedRandom(9), successorCampaign: true }) });
    nt.campaign('a');
    nt.isolate('a');
    nt.tick('c', 10);
    nt.tick('b', 10);
    expect(nt.status('b')).toMatchObject({ state: 'Follower', term: 1 });
  });
});

describe('a follower that lost its disk', () => {
  it('is probed back from its real log instead of in an endless reject loop', () => {
    const nt = new TestNetwork(['a', 'b', 'c'], { preVote: true, checkQuorum: true, configure: () => ({ random: fixedRandom(5) }) });
    nt.campaign('a');
    for (let i = 0; i < 3; i++) nt.act('a', (n) => n.propose());
    expect(nt.status('a').progress.b?.match).toBe(4);
    // b comes back on an empty disk while a still leads, remembering b's match of 4.
    nt.wipe('b');
    nt.start('b');
    nt.act('a', (n) => n.reportUnreachable('b')); // the link dropped: a probes b again
    // Without the fix this heartbeat starts a reject/probe loop that never ends (the network's
    // delivery budget throws "message storm").
    nt.tick('a');
    expect(nt.status('b')).toMatchObject({ lead: 'a', lastIndex: 4 });
    expect(nt.status('a').progress.b?.match).toBe(4);
  });
});

describe('transferGrantsVote', () => {
  function group(transferGrantsVote: boolean, extra: Partial<RaftConfig> = {}): TestNetwork {
    const nt = new TestNetwork(['a', 'b', 'c'], { checkQuorum: true, preVote: true, configure: () => ({ random: fixedRandom(9), transferGrantsVote, ...extra }) });
    nt.campaign('a');
    expect(nt.status('a').state).toBe('Leader');
    return nt;
  }

  const handoverTraffic = (nt: TestNetwork, from: number) =>
    nt.delivered
      .slice(from)
      .filter((m) => (m.from === 'a' && m.to === 'b') || (m.from === 'b' && m.to === 'a'))
      .slice(0, 3)
      .map((m) => `${m.type} ${m.from}->${m.to}@${m.term}`);

  it('the leader votes for its target with MsgTimeoutNow: the grant arrives before the target asks', () => {
    const nt = group(true);
    nt.cut('b', 'c');
    const traced = nt.delivered.length;
    nt.act('a', (n) => n.transferLeader('b'));
    expect(nt.status('b')).toMatchObject({ state: 'Leader', term: 2 });
    expect(nt.status('a')).toMatchObject({ state: 'Follower', term: 2, vote: 'b', lead: 'b' });
    // Its grant was written with its term and vote, and followed the MsgTimeoutNow on the link.
    expect(nt.storage.get('a')?.hardState).toMatchObject({ term: 2, vote: 'b' });
    expect(handoverTraffic(nt, traced)).toEqual(['MsgTimeoutNow a->b@1', 'MsgVoteResp a->b@2', 'MsgVote b->a@2']);
  });

  it("without it (etcd), the old leader's vote waits for the target's request: one round trip more", () => {
    const nt = group(false);
    nt.cut('b', 'c');
    const traced = nt.delivered.length;
    nt.act('a', (n) => n.transferLeader('b'));
    expect(nt.status('b')).toMatchObject({ state: 'Leader', term: 2 });
    expect(handoverTraffic(nt, traced)).toEqual(['MsgTimeoutNow a->b@1', 'MsgVote b->a@2', 'MsgVoteResp a->b@2']);
  });

  it('the grant waits for the target to catch up: nothing changes in the leader until it has', () => {
    const nt = group(true);
    nt.cut('a', 'b');
    nt.act('a', (n) => n.propose());
    nt.act('a', (n) => n.transferLeader('b'));
    expect(nt.status('a')).toMatchObject({ state: 'Leader', term: 1, leadTransferee: 'b' });
    nt.recover();
    nt.tick('a'); // the heartbeat's answer shows b behind; the append catches it up, then the handover
    expect(nt.status('b')).toMatchObject({ state: 'Leader', term: 2 });
    expect(nt.status('a')).toMatchObject({ state: 'Follower', term: 2, vote: 'b' });
  });

  it('the target still takes the handover when the vote overtakes the MsgTimeoutNow (a reordering network)', () => {
    const nt = group(true);
    nt.cut('b', 'c');
    nt.node('a').transferLeader('b');
    const out = nt.drain('a');
    expect(out.map((m) => `${m.type}->${m.to}@${m.term}`)).toEqual(['MsgTimeoutNow->b@1', 'MsgVoteResp->b@2']);
    // A vote for a term b never stood in is dropped, not taken as a reason to follow term 2 with
    // no leader (which would make b drop the MsgTimeoutNow of term 1): b campaigns, a votes again.
    nt.send(...out.reverse());
    expect(nt.status('b')).toMatchObject({ state: 'Leader', term: 2 });
  });

  it('the driver may turn it off for a while (RawNode.setTransferGrantsVote): then the handover is etcd\'s', () => {
    const nt = group(true);
    nt.cut('b', 'c');
    const traced = nt.delivered.length;
    nt.act('a', (n) => {
      n.setTransferGrantsVote(false);
      n.transferLeader('b');
    });
    expect(nt.status('b')).toMatchObject({ state: 'Leader', term: 2 });
    expect(handoverTraffic(nt, traced)).toEqual(['MsgTimeoutNow a->b@1', 'MsgVote b->a@2', 'MsgVoteResp a->b@2']);
  });

  it('a leader inside its own restart delay marks the vote it gives, as it would mark the request', () => {
    const r = newTestRaft('a', ['a', 'b', 'c'], { checkQuorum: true, transferGrantsVote: true, restartVoteDelayTicks: 5, restored: durableState(1, 'a', [1], 1) });
    r.becomeCandidate();
    r.step(makeMessage({ type: 'MsgVoteResp', from: 'a', to: 'a', term: 2 }));
    r.step(makeMessage({ type: 'MsgVoteResp', from: 'b', to: 'a', term: 2 }));
    expect(r.state).toBe('Leader');
    readMessages(r);
    r.step(makeMessage({ type: 'MsgAppResp', from: 'b', to: 'a', term: 2, index: 2 }));
    readMessages(r);
    r.step(makeMessage({ type: 'MsgTransferLeader', from: 'b', to: 'a' }));
    expect(readMessages(r)).toMatchObject([
      { type: 'MsgTimeoutNow', to: 'b', term: 2 },
      { type: 'MsgVoteResp', to: 'b', term: 3, reject: false, context: LeaseSkippedContext },
    ]);
  });
});
