/**
 * Poison frames at the raft boundary (issue 9, finding 4): a peer message that breaks an
 * invariant is refused whole, with a typed reason, and changes nothing; the group elects
 * normally afterwards.
 */
import { describe, expect, it } from 'vitest';
import { durableState, TestNetwork, testConfig } from '../test/harness/network.js';
import { RawNode } from './rawnode.js';
import { makeMessage, type Message } from './types.js';
import { InvalidMessageError, MaxRestoredTerm, MaxTerm, MaxTermStepAboveMaxTerm, validatePeerMessage, type InvalidMessageReason } from './validate.js';

const ids = ['a', 'b', 'c'];

function reasonOf(fn: () => void): InvalidMessageReason | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof InvalidMessageError) return e.reason;
    throw e;
  }
  return undefined;
}

/** a leads term 1 and c follows it. */
function groupLedByA(): TestNetwork {
  const nt = new TestNetwork(ids);
  nt.campaign('a');
  expect(nt.status('c')).toMatchObject({ state: 'Follower', term: 1, lead: 'a' });
  return nt;
}

describe('validatePeerMessage', () => {
  const cases: { name: string; m: Partial<Message> & { type: Message['type'] }; reason: InvalidMessageReason }[] = [
    { name: 'a heartbeat with term 0', m: { type: 'MsgHeartbeat', term: 0 }, reason: 'term_missing' },
    { name: 'a vote request with term 0', m: { type: 'MsgPreVote', term: 0 }, reason: 'term_missing' },
    { name: 'a heartbeat response with term 0', m: { type: 'MsgHeartbeatResp', term: 0 }, reason: 'term_missing' },
    { name: 'a term without headroom', m: { type: 'MsgHeartbeat', term: MaxTerm + 2 ** 16 + 1 }, reason: 'term_no_headroom' },
    { name: 'the term 2^53 - 1', m: { type: 'MsgHeartbeat', term: Number.MAX_SAFE_INTEGER }, reason: 'term_no_headroom' },
    { name: 'an unsafe term', m: { type: 'MsgHeartbeat', term: 2 ** 53 }, reason: 'number_invalid' },
    { name: 'a negative commit', m: { type: 'MsgHeartbeat', term: 2, commit: -1 }, reason: 'number_invalid' },
    {
      name: 'an entry above the message term',
      m: { type: 'MsgApp', term: 2, index: 1, logTerm: 1, entries: [{ index: 2, term: 3 }] },
      reason: 'log_term_above_term',
    },
    { name: 'a previous-entry term above the message term', m: { type: 'MsgApp', term: 2, index: 1, logTerm: 3 }, reason: 'log_term_above_term' },
    { name: 'a candidate log above its term', m: { type: 'MsgVote', term: 2, index: 5, logTerm: 3 }, reason: 'log_term_above_term' },
    { name: 'a snapshot above the term', m: { type: 'MsgSnap', term: 2, snapshot: { index: 9, term: 4 } }, reason: 'log_term_above_term' },
    {
      name: 'entries with a gap',
      m: { type: 'MsgApp', term: 2, index: 1, logTerm: 1, entries: [{ index: 3, term: 2 }] },
      reason: 'entries_out_of_order',
    },
    {
      name: 'entries whose terms go down',
      m: { type: 'MsgApp', term: 3, index: 1, logTerm: 2, entries: [{ index: 2, term: 1 }] },
      reason: 'entries_out_of_order',
    },
    { name: 'a local type', m: { type: 'MsgHup', term: 1 }, reason: 'misaddressed' },
    { name: 'a message claiming to come from the receiver', m: { type: 'MsgHeartbeat', term: 1, from: 'c' }, reason: 'misaddressed' },
    { name: 'a message for another member', m: { type: 'MsgHeartbeat', term: 1, to: 'b' }, reason: 'misaddressed' },
  ];
  it.each(cases)('refuses $name ($reason) and leaves the message untouched', ({ m, reason }) => {
    const msg = makeMessage({ from: 'a', to: 'c', ...m });
    const before = structuredClone(msg);
    expect(reasonOf(() => validatePeerMessage(msg, 'c', 1))).toBe(reason);
    expect(msg).toEqual(before);
  });

  it('above MaxTerm, accepts a term only a small step above the receiver\'s own', () => {
    const step = MaxTermStepAboveMaxTerm;
    const vote = (term: number) => makeMessage({ type: 'MsgVote', from: 'a', to: 'c', term });
    expect(reasonOf(() => validatePeerMessage(vote(MaxTerm + step), 'c', 1))).toBeUndefined();
    expect(reasonOf(() => validatePeerMessage(vote(MaxTerm + step + 1), 'c', 1))).toBe('term_no_headroom');
    expect(reasonOf(() => validatePeerMessage(vote(MaxTerm + 2 * step), 'c', MaxTerm + step))).toBeUndefined();
    expect(reasonOf(() => validatePeerMessage(vote(MaxTerm + 2 * step + 1), 'c', MaxTerm + step))).toBe('term_no_headroom');
  });

  it('accepts what raft itself sends, up to MaxTerm', () => {
    for (const m of [
      makeMessage({ type: 'MsgHeartbeat', from: 'a', to: 'c', term: MaxTerm }),
      makeMessage({ type: 'MsgApp', from: 'a', to: 'c', term: 3, index: 2, logTerm: 2, entries: [{ index: 3, term: 3 }], commit: 2 }),
      makeMessage({ type: 'MsgPreVote', from: 'a', to: 'c', term: 4, index: 3, logTerm: 3 }),
      makeMessage({ type: 'MsgAppResp', from: 'a', to: 'c', term: 3, index: 3, reject: true, rejectHint: 2, logTerm: 2 }),
    ]) {
      expect(reasonOf(() => validatePeerMessage(m, 'c', 1))).toBeUndefined();
    }
  });
});

describe('poison frames at RawNode.step', () => {
  it('a heartbeat with term 0 "from a" does not switch a follower of b to a', () => {
    const nt = new TestNetwork(ids);
    nt.campaign('b');
    expect(nt.status('c')).toMatchObject({ term: 1, lead: 'b' });
    const reason = reasonOf(() => nt.node('c').step(makeMessage({ type: 'MsgHeartbeat', from: 'a', to: 'c', term: 0 })));
    expect(reason).toBe('term_missing');
    expect(nt.status('c')).toMatchObject({ state: 'Follower', term: 1, lead: 'b' });
  });

  it('a MsgApp with entries above its term changes nothing on the follower and its log still works', () => {
    const nt = groupLedByA();
    const c = nt.node('c');
    const before = c.status();
    const reason = reasonOf(() =>
      c.step(makeMessage({ type: 'MsgApp', from: 'a', to: 'c', term: 1, index: 1, logTerm: 1, entries: [{ index: 2, term: 7 }], commit: 2 })),
    );
    expect(reason).toBe('log_term_above_term');
    expect(c.hasReady()).toBe(false);
    expect(c.status()).toMatchObject({ term: before.term, lastIndex: before.lastIndex, commit: before.commit, lead: 'a' });
    nt.act('a', (n) => n.propose());
    expect(nt.status('c')).toMatchObject({ lastIndex: 2, commit: 2, lead: 'a' });
  });

  it('a heartbeat with term 2^53 - 1 is refused, and the group keeps its leader and term', () => {
    const nt = groupLedByA();
    for (const id of ['b', 'c']) {
      const reason = reasonOf(() => nt.node(id).step(makeMessage({ type: 'MsgHeartbeat', from: 'a', to: id, term: Number.MAX_SAFE_INTEGER })));
      expect(reason).toBe('term_no_headroom');
      expect(nt.status(id)).toMatchObject({ term: 1, lead: 'a' });
    }
  });

  it('a huge but allowed term is adopted, and the group still elects above it', () => {
    const nt = groupLedByA();
    nt.send(makeMessage({ type: 'MsgHeartbeat', from: 'a', to: 'c', term: MaxTerm }));
    expect(nt.status('c')).toMatchObject({ term: MaxTerm, lead: 'a' });
    // a's heartbeats at term 1 are now stale for c: c answers with its term, and a steps down.
    nt.act('a', (n) => n.heartbeat());
    expect(nt.status('a').term).toBe(MaxTerm);
    nt.campaign('c');
    for (const id of ids) expect(nt.status(id)).toMatchObject({ term: MaxTerm + 1, lead: 'c' });
    expect(MaxTerm + 2 ** 32).toBeLessThanOrEqual(Number.MAX_SAFE_INTEGER);
  });

  it('a restored term without headroom is still loaded by raft (the driver refuses it with a recovery hint)', () => {
    const n = new RawNode(testConfig('a', ids, { restored: durableState(MaxRestoredTerm + 1, '') }));
    expect(n.status().term).toBe(MaxRestoredTerm + 1);
  });
});
