import { describe, expect, it } from 'vitest';
import { durableState, fixedRandom, TestNetwork, testConfig } from '../test/harness/network.js';
import { RawNode } from './rawnode.js';
import type { RaftConfig } from './raft.js';
import { seededRandom } from './random.js';
import { makeMessage, RaftError, type Message, type Ready } from './types.js';

function node(id: string, voters: string[], overrides: Partial<RaftConfig> = {}): RawNode {
  return new RawNode(testConfig(id, voters, overrides));
}

function catchError(fn: () => void): RaftError {
  try {
    fn();
  } catch (e) {
    if (e instanceof RaftError) return e;
    throw e;
  }
  throw new Error('expected a RaftError');
}

describe('the Ready contract', () => {
  it('a granted vote leaves only in a Ready whose durable state records that vote, and it must be synced', () => {
    const b = node('b', ['a', 'b', 'c']);
    b.step(makeMessage({ type: 'MsgVote', from: 'a', to: 'b', term: 1 }));
    const rd = b.ready();
    expect(rd.messages).toMatchObject([{ type: 'MsgVoteResp', to: 'a', term: 1, reject: false }]);
    expect(rd.durableState?.hardState).toEqual({ term: 1, vote: 'a', commit: 0 });
    expect(rd.mustSync).toBe(true);
    b.advance(rd);
    expect(b.hasReady()).toBe(false);
  });

  it('a vote granted between ready() and advance() waits for the next Ready, with its state', () => {
    const b = node('b', ['a', 'b', 'c']);
    b.tick();
    b.step(makeMessage({ type: 'MsgHeartbeat', from: 'a', to: 'b', term: 1 }));
    const first = b.ready(); // term 1, lead a, heartbeat response
    expect(first.messages.map((m) => m.type)).toEqual(['MsgHeartbeatResp']);
    b.step(makeMessage({ type: 'MsgVote', from: 'c', to: 'b', term: 2 }));
    expect(first.messages.map((m) => m.type)).toEqual(['MsgHeartbeatResp']);
    b.advance(first);
    const second = b.ready();
    expect(second.messages).toMatchObject([{ type: 'MsgVoteResp', to: 'c', term: 2, reject: false }]);
    expect(second.durableState?.hardState).toMatchObject({ term: 2, vote: 'c' });
  });

  it('an append response leaves only with the appended entries in the durable state', () => {
    const b = node('b', ['a', 'b', 'c']);
    b.step(makeMessage({ type: 'MsgApp', from: 'a', to: 'b', term: 1, index: 0, logTerm: 0, entries: [{ index: 1, term: 1 }], commit: 0 }));
    const rd = b.ready();
    expect(rd.entries).toEqual([{ index: 1, term: 1 }]);
    expect(rd.durableState?.entries).toEqual([{ index: 1, term: 1 }]);
    expect(rd.messages).toMatchObject([{ type: 'MsgAppResp', to: 'a', index: 1, reject: false }]);
    expect(rd.mustSync).toBe(true);
    expect(rd.softState).toEqual({ lead: 'a', state: 'Follower' });
  });

  it('a rejection is held for durability too (etcd keeps rejections in msgsAfterAppend)', () => {
    const b = node('b', ['a', 'b', 'c']);
    b.step(makeMessage({ type: 'MsgVote', from: 'a', to: 'b', term: 1 }));
    b.step(makeMessage({ type: 'MsgVote', from: 'c', to: 'b', term: 1 }));
    const rd = b.ready();
    expect(rd.messages.map((m) => [m.to, m.reject])).toEqual([
      ['a', false],
      ['c', true],
    ]);
    expect(rd.durableState?.hardState.vote).toBe('a');
  });

  it('a single-member group becomes leader only after its first Ready is advanced', () => {
    const a = node('a', ['a']);
    a.campaign();
    expect(a.status()).toMatchObject({ state: 'Candidate', term: 1, vote: 'a' });
    const rd1 = a.ready();
    expect(rd1.durableState?.hardState).toEqual({ term: 1, vote: 'a', commit: 0 });
    expect(rd1.messages).toEqual([]);
    expect(a.status().state).toBe('Candidate');
    a.advance(rd1);
    expect(a.status()).toMatchObject({ state: 'Leader', lead: 'a', term: 1, commit: 0 });
    const rd2 = a.ready();
    expect(rd2.softState).toEqual({ lead: 'a', state: 'Leader' });
    expect(rd2.entries).toEqual([{ index: 1, term: 1 }]);
    a.advance(rd2);
    expect(a.status().commit).toBe(1);
    const rd3 = a.ready();
    expect(rd3.hardState).toEqual({ term: 1, vote: 'a', commit: 1 });
    expect(rd3.mustSync).toBe(false);
  });

  it('a second ready() before advance() throws READY_NOT_ADVANCED; advance() without ready() throws NO_READY', () => {
    const a = node('a', ['a', 'b']);
    a.campaign();
    const rd = a.ready();
    const twice = catchError(() => a.ready());
    expect(twice.code).toBe('READY_NOT_ADVANCED');
    expect(twice.message).toMatch(/advance/);
    a.advance(rd);
    expect(catchError(() => a.advance()).code).toBe('NO_READY');
    // Nothing was lost: the node goes on.
    expect(a.status()).toMatchObject({ state: 'Candidate', term: 1 });
  });

  it('local message types from the network are refused with INVALID_ARGUMENT', () => {
    const a = node('a', ['a', 'b']);
    for (const type of ['MsgHup', 'MsgBeat', 'MsgCheckQuorum', 'MsgForgetLeader'] as const) {
      const err = catchError(() => a.step(makeMessage({ type, from: 'b', to: 'a', term: 1 })));
      expect(err.code).toBe('INVALID_ARGUMENT');
      expect(err.message).toContain(type);
    }
    expect(a.status()).toMatchObject({ state: 'Follower', term: 0 });
  });

  it('responses from non-members are ignored', () => {
    const a = node('a', ['a', 'b', 'c']);
    a.campaign();
    a.advance(a.ready());
    a.step(makeMessage({ type: 'MsgVoteResp', from: 'zz', to: 'a', term: 1 }));
    expect(a.status().state).toBe('Candidate');
  });

  it('same seed and same calls give identical Readys; another seed gives other ones', () => {
    const run = (seed: number): string[] => {
      const ids = ['a', 'b', 'c'];
      const nodes = new Map(ids.map((id, i) => [id, node(id, ids, { random: seededRandom(seed * 31 + i), preVote: true, checkQuorum: true })]));
      const log: string[] = [];
      const queue: Message[] = [];
      for (let t = 0; t < 60; t++) {
        for (const id of ids) {
          const n = nodes.get(id)!;
          n.tick();
          while (queue.length > 0) {
            const m = queue.shift()!;
            nodes.get(m.to)!.step(m);
          }
          for (const other of ids) {
            const o = nodes.get(other)!;
            while (o.hasReady()) {
              const rd: Ready = o.ready();
              log.push(`${other}@${t}:${JSON.stringify(rd)}`);
              queue.push(...rd.messages);
              o.advance(rd);
            }
          }
        }
      }
      return log;
    };
    const first = run(42);
    expect(first.length).toBeGreaterThan(20);
    expect(run(42)).toEqual(first);
    expect(run(43)).not.toEqual(first);
  });
});

describe('restart from a hard state', () => {
  it('term and vote survive a restart; the member does not vote twice in that term', () => {
    const nt = new TestNetwork(['a', 'b', 'c'], { down: ['c'] });
    nt.campaign('a');
    expect(nt.status('b')).toMatchObject({ term: 1, vote: 'a' });
    nt.restart('b');
    expect(nt.status('b')).toMatchObject({ state: 'Follower', term: 1, vote: 'a', lead: '', commit: 1, lastIndex: 1 });
    const b = nt.node('b');
    b.step(makeMessage({ type: 'MsgVote', from: 'c', to: 'b', term: 1, index: 5, logTerm: 1 }));
    const rd = b.ready();
    expect(rd.messages).toMatchObject([{ type: 'MsgVoteResp', to: 'c', reject: true, term: 1 }]);
    expect(rd.hardState).toBeUndefined(); // nothing changed, nothing to re-write
  });

  it('a restored member emits no Ready until something changes', () => {
    const b = node('b', ['a', 'b', 'c'], { restored: durableState(4, 'c', [1, 4], 2) });
    expect(b.status()).toMatchObject({ term: 4, vote: 'c', commit: 2, lastIndex: 2, lastTerm: 4, state: 'Follower', lead: '' });
    expect(b.hasReady()).toBe(false);
  });

  it('a corrupted restored log is refused with LOG_CORRUPTED', () => {
    const err = catchError(() => node('b', ['a', 'b'], { restored: durableState(2, '', [1, 2], 5) }));
    expect(err.code).toBe('LOG_CORRUPTED');
    expect(err.message).toMatch(/commit 5/);
    const order = catchError(() => node('b', ['a', 'b'], { restored: durableState(2, '', [2, 1]) }));
    expect(order.code).toBe('LOG_CORRUPTED');
  });
});

describe('randomized election timeout', () => {
  it('is drawn in [electionTick, 2*electionTick) for many seeds and covers the range', () => {
    const seen = new Set<number>();
    for (let seed = 0; seed < 400; seed++) {
      const t = node('a', ['a', 'b'], { random: seededRandom(seed) }).status().randomizedElectionTimeout;
      expect(t).toBeGreaterThanOrEqual(10);
      expect(t).toBeLessThan(20);
      seen.add(t);
    }
    expect(seen.size).toBe(10);
  });

  it('is re-drawn on reset (new term) but not on becoming pre-candidate', () => {
    let draws = 0;
    const counting = { nextInt: (max: number) => (draws++ * 3) % max };
    const a = node('a', ['a', 'b', 'c'], { random: counting, preVote: true });
    expect(draws).toBe(1);
    a.step(makeMessage({ type: 'MsgHeartbeat', from: 'b', to: 'a', term: 1 }));
    expect(draws).toBe(2);
    const before = a.status().randomizedElectionTimeout;
    a.campaign();
    expect(a.status().state).toBe('PreCandidate');
    expect(draws).toBe(2);
    expect(a.status().randomizedElectionTimeout).toBe(before);
    a.advance(a.ready());
    a.step(makeMessage({ type: 'MsgPreVoteResp', from: 'b', to: 'a', term: 2 }));
    expect(a.status().state).toBe('Candidate');
    expect(draws).toBe(3);
  });

  it('a follower campaigns exactly when its election clock reaches the drawn timeout', () => {
    const a = node('a', ['a', 'b', 'c'], { random: fixedRandom(3) });
    for (let i = 0; i < 12; i++) a.tick();
    expect(a.status()).toMatchObject({ state: 'Follower', electionElapsed: 12 });
    a.tick();
    expect(a.status()).toMatchObject({ state: 'Candidate', term: 1, electionElapsed: 0 });
  });
});

describe('heartbeat sequence', () => {
  it('each heartbeat round carries the next sequence number; responses echo it', () => {
    const nt = new TestNetwork(['a', 'b', 'c']);
    nt.campaign('a');
    nt.tick('a', 3);
    const beats = nt.delivered.filter((m) => m.type === 'MsgHeartbeat');
    expect(beats.map((m) => `${m.to}:${m.context}`)).toEqual(['b:1', 'c:1', 'b:2', 'c:2', 'b:3', 'c:3']);
    const acks = nt.delivered.filter((m) => m.type === 'MsgHeartbeatResp');
    expect(acks.map((m) => `${m.from}:${m.context}`)).toEqual(['b:1', 'c:1', 'b:2', 'c:2', 'b:3', 'c:3']);
  });

  it('a heartbeat carries min(match, commit) so a lagging follower never commits past its log', () => {
    const nt = new TestNetwork(['a', 'b', 'c']);
    nt.campaign('a');
    nt.isolate('c');
    nt.act('a', (n) => n.propose());
    nt.recover();
    nt.ignore('MsgApp');
    nt.tick('a');
    const toC = nt.delivered.filter((m) => m.type === 'MsgHeartbeat' && m.to === 'c').at(-1)!;
    expect(toC.commit).toBe(1);
    expect(nt.status('c')).toMatchObject({ commit: 1, lastIndex: 1 });
  });
});

describe('log compaction and MsgSnap catch-up', () => {
  it('a leader keeps at most maxLogEntries committed entries and catches a lagging follower up by MsgSnap', () => {
    const nt = new TestNetwork(['a', 'b', 'c'], { configure: () => ({ maxLogEntries: 2 }) });
    nt.campaign('a');
    nt.isolate('c');
    for (let i = 0; i < 10; i++) nt.act('a', (n) => n.propose());
    const leaderDisk = nt.storage.get('a')!;
    expect(leaderDisk.snapshot.index).toBeGreaterThan(1);
    expect(leaderDisk.entries.length).toBeLessThanOrEqual(3);
    expect(nt.status('c').lastIndex).toBe(1);
    nt.recover();
    nt.tick('a');
    const snaps = nt.delivered.filter((m) => m.type === 'MsgSnap');
    expect(snaps).toHaveLength(1);
    expect(snaps[0]).toMatchObject({ from: 'a', to: 'c', term: 1 });
    expect(nt.status('c')).toMatchObject({ lastIndex: 11, commit: 11, lead: 'a' });
    expect(nt.storage.get('c')!.snapshot.index).toBe(snaps[0]!.snapshot!.index);
    expect(nt.status('a').progress['c']).toMatchObject({ match: 11, state: 'Replicate' });
    // The caught-up follower can still be elected: its log is as up to date as the leader's.
    nt.act('a', (n) => n.transferLeader('c'));
    expect(nt.status('c')).toMatchObject({ state: 'Leader', term: 2 });
  });

  it('a follower whose log already holds the snapshot entry acks only its commit, not its longer tail', () => {
    // b holds [1@1, 2@1, 3@2(uncommitted, divergent)] and commit 1; the leader's marker is 2@1.
    const b = node('b', ['a', 'b', 'c'], { restored: durableState(3, '', [1, 1, 2], 1) });
    b.step(makeMessage({ type: 'MsgSnap', from: 'a', to: 'b', term: 3, snapshot: { index: 2, term: 1 } }));
    const rd = b.ready();
    expect(rd.messages).toMatchObject([{ type: 'MsgAppResp', to: 'a', index: 2, reject: false }]);
    expect(b.status()).toMatchObject({ commit: 2, lastIndex: 3 });
  });
});

describe('snapshot and campaigning', () => {
  it('etcd promotable(): a member does not campaign while a received snapshot is not yet persisted', () => {
    const b = node('b', ['a', 'b', 'c']);
    b.step(makeMessage({ type: 'MsgSnap', from: 'a', to: 'b', term: 1, snapshot: { index: 5, term: 1 } }));
    b.campaign();
    expect(b.status()).toMatchObject({ state: 'Follower', term: 1, lastIndex: 5 });
    const rd = b.ready();
    expect(rd.snapshot).toEqual({ index: 5, term: 1 });
    expect(rd.durableState?.snapshot).toEqual({ index: 5, term: 1 });
    b.advance(rd);
    b.campaign();
    expect(b.status()).toMatchObject({ state: 'Candidate', term: 2 });
  });
});

describe('config validation', () => {
  const base: RaftConfig = {
    id: 'a',
    voters: ['a', 'b', 'c'],
    electionTick: 10,
    heartbeatTick: 1,
    preVote: true,
    checkQuorum: true,
    random: fixedRandom(0),
  };
  it.each([
    { name: 'empty id', patch: { id: '' }, msg: /id must be a non-empty string/ },
    { name: 'no voters', patch: { voters: [], id: 'a', learners: ['a'] }, msg: /voters must name at least one member/ },
    { name: 'repeated voter', patch: { voters: ['a', 'b', 'b'] }, msg: /distinct/ },
    { name: 'voter also learner', patch: { learners: ['b'] }, msg: /voters and learners must be distinct/ },
    { name: 'empty member id', patch: { voters: ['a', ''] }, msg: /member ids must be non-empty/ },
    // A node outside the configuration is valid since conf changes (it is not promotable): see confchange-raft.test.ts.
    {
      name: 'restored configuration without voters',
      patch: { restored: { ...durableState(2, 'a'), confState: { voters: [], votersOutgoing: [], learners: ['a'], learnersNext: [], autoLeave: false } } },
      msg: /restored configuration is invalid: removed all voters/,
    },
    { name: 'heartbeatTick 0', patch: { heartbeatTick: 0 }, msg: /heartbeatTick must be a positive integer/ },
    { name: 'electionTick <= heartbeatTick', patch: { electionTick: 3, heartbeatTick: 3 }, msg: /electionTick \(3\) must be an integer greater than heartbeatTick \(3\)/ },
    { name: 'fractional electionTick', patch: { electionTick: 10.5 }, msg: /electionTick/ },
    { name: 'negative restartVoteDelayTicks', patch: { restartVoteDelayTicks: -1 }, msg: /restartVoteDelayTicks must be a non-negative integer/ },
    { name: 'fractional freshVoteDelayTicks', patch: { freshVoteDelayTicks: 1.5 }, msg: /freshVoteDelayTicks must be a non-negative integer/ },
    { name: 'negative maxLogEntries', patch: { maxLogEntries: -2 }, msg: /maxLogEntries must be a non-negative integer/ },
    { name: 'restored vote for a stranger', patch: { restored: durableState(2, 'zz') }, msg: /restored vote for zz, who is not a member/ },
  ])('$name -> INVALID_CONFIG naming the broken relation', ({ patch, msg }) => {
    const err = catchError(() => new RawNode({ ...base, ...patch } as RaftConfig));
    expect(err.code).toBe('INVALID_CONFIG');
    expect(err.message).toMatch(msg);
  });
});

describe('replication progress', () => {
  it('etcd heartbeat_rep_recovers_from_probing: after reportUnreachable an up-to-date peer returns to Replicate', () => {
    const nt = new TestNetwork(['a', 'b', 'c']);
    nt.campaign('a');
    expect(nt.status('a').progress['b']).toMatchObject({ state: 'Replicate', match: 1 });
    nt.act('a', (n) => n.reportUnreachable('b'));
    expect(nt.status('a').progress['b']).toMatchObject({ state: 'Probe', match: 1 });
    nt.tick('a'); // heartbeat -> response -> empty probe -> ack of the same index
    expect(nt.status('a').progress['b']).toMatchObject({ state: 'Replicate', match: 1, next: 2 });
  });
});

describe('RawNode.heartbeat (driver extension)', () => {
  it('broadcasts one heartbeat round on a leader at once, with a fresh sequence, and is a no-op elsewhere', () => {
    const nt = new TestNetwork(['a', 'b', 'c'], { preVote: true, checkQuorum: true });
    nt.campaign('a');
    expect(nt.status('a').state).toBe('Leader');
    nt.node('b').heartbeat();
    expect(nt.node('b').hasReady()).toBe(false);
    const before = nt.delivered.length;
    nt.act('a', (n) => n.heartbeat());
    const sent = nt.delivered.slice(before).filter((m) => m.type === 'MsgHeartbeat');
    expect(sent.map((m) => m.to)).toEqual(['b', 'c']);
    expect(new Set(sent.map((m) => m.context)).size).toBe(1);
    const acks = nt.delivered.slice(before).filter((m) => m.type === 'MsgHeartbeatResp');
    expect(acks.map((m) => m.context)).toEqual([sent[0]!.context, sent[0]!.context]);
    nt.act('a', (n) => n.heartbeat());
    const next = nt.delivered.filter((m) => m.type === 'MsgHeartbeat').at(-1)!;
    expect(Number(next.context)).toBe(Number(sent[0]!.context) + 1);
  });
});

describe('RawNode.stepDown (driver extension)', () => {
  it('turns a leader into a follower of its own term with no leader; the next election is a new term', () => {
    // Without CheckQuorum, so the followers' lease on the old leader does not hold the new election back.
    const nt = new TestNetwork(['a', 'b', 'c'], { preVote: false, checkQuorum: false });
    nt.campaign('a');
    expect(nt.status('a')).toMatchObject({ state: 'Leader', term: 1 });
    nt.act('b', (n) => n.stepDown());
    expect(nt.status('b')).toMatchObject({ state: 'Follower', term: 1, lead: 'a' });
    nt.act('a', (n) => n.stepDown());
    expect(nt.status('a')).toMatchObject({ state: 'Follower', term: 1, lead: '' });
    nt.campaign('a');
    expect(nt.status('a')).toMatchObject({ state: 'Leader', term: 2 });
  });
});

describe('basicStatus', () => {
  it('says what status() says about term, role, transfer and configuration, and shares one frozen ConfState until it changes', () => {
    const n = node('a', ['a', 'b', 'c']);
    const first = n.basicStatus();
    const full = n.status();
    expect(first).toEqual({ term: full.term, state: full.state, leadTransferee: full.leadTransferee, confState: full.confState });
    expect(n.basicStatus().confState).toBe(first.confState);
    expect(Object.isFrozen(first.confState.voters)).toBe(true);
    n.applyConfChange({ transition: 'Auto', changes: [{ type: 'AddLearnerNode', nodeId: 'd' }] });
    const after = n.basicStatus();
    expect(after.confState).not.toBe(first.confState);
    expect(after.confState).toEqual(n.status().confState);
    expect(after.confState.learners).toEqual(['d']);
    expect(first.confState.learners).toEqual([]); // the old one is never rewritten
  });
});
