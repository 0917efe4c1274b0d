import { describe, expect, it } from 'vitest';
import {
  describeJoint,
  jointCommittedIndex,
  jointVoteResult,
  majorityCommittedIndex,
  majorityConfig,
  majorityVoteResult,
  type JointConfig,
} from './quorum.js';
import { quorumCases, type QuorumCase } from './testdata/quorum-cases.js';

/** etcd's makeLookuper: inputs go to the ids of cfg then cfgj, each id once. */
function assign<T>(c: QuorumCase, values: readonly T[]): Map<string, T> {
  const out = new Map<string, T>();
  let p = 0;
  for (const id of [...c.cfg, ...(c.cfgj ?? [])]) {
    if (out.has(id)) continue;
    const v = values[p++];
    if (v !== undefined) out.set(id, v);
  }
  return out;
}

describe('quorum (etcd quorum/testdata)', () => {
  const committed = quorumCases.filter((c) => c.idx !== undefined);
  const votes = quorumCases.filter((c) => c.votes !== undefined);

  it('ports every upstream case', () => {
    expect(committed.length).toBe(66);
    expect(votes.length).toBe(61);
  });

  it.each(committed.map((c) => [`${c.file}: ${c.line}`, c] as const))('%s', (_name, c) => {
    const acked = assign(c, c.idx ?? []);
    const lookup = (id: string): number | undefined => {
      const v = acked.get(id);
      return v === 0 ? undefined : v;
    };
    const cfg = majorityConfig(c.cfg);
    if (c.cfgj === undefined) {
      const idx = majorityCommittedIndex(cfg, lookup);
      expect(idx).toBe(c.want);
      // etcd's alternative computations: a joint config with an empty or an identical half agrees.
      expect(jointCommittedIndex([cfg, []], lookup)).toBe(idx);
      expect(jointCommittedIndex([cfg, cfg], lookup)).toBe(idx);
    } else {
      const cj = majorityConfig(c.cfgj);
      const idx = jointCommittedIndex([cfg, cj], lookup);
      expect(idx).toBe(c.want);
      expect(jointCommittedIndex([cj, cfg], lookup)).toBe(idx);
    }
  });

  it.each(votes.map((c) => [`${c.file}: ${c.line}`, c] as const))('%s', (_name, c) => {
    const raw = assign(c, c.votes ?? []);
    const v = new Map<string, boolean>();
    for (const [id, s] of raw) if (s !== '_') v.set(id, s === 'y');
    const cfg = majorityConfig(c.cfg);
    if (c.cfgj === undefined) {
      expect(majorityVoteResult(cfg, v)).toBe(c.want);
    } else {
      const cj = majorityConfig(c.cfgj);
      expect(jointVoteResult([cfg, cj], v)).toBe(c.want);
      expect(jointVoteResult([cj, cfg], v)).toBe(c.want);
    }
  });

  it('prints a joint config as etcd does', () => {
    const c: JointConfig = [['1', '2', '3'], ['1']];
    expect(describeJoint(c)).toBe('(1 2 3)&&(1)');
    expect(describeJoint([['b', 'a'], []])).toBe('(a b)');
  });
});
