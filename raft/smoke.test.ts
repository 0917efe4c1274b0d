import { describe, expect, it } from 'vitest';
import { TestNetwork } from '../test/harness/network.js';

describe('smoke', () => {
  it('elects a leader in a three-member group by ticks', () => {
    for (const preVote of [false, true]) {
      const nt = new TestNetwork(['a', 'b', 'c'], { preVote, checkQuorum: true });
      nt.tickAll(25);
      const leaders = nt.leaders();
      expect(leaders).toHaveLength(1);
      const leader = leaders[0]!;
      for (const id of nt.ids) expect(nt.status(id).lead).toBe(leader.id);
      for (const id of nt.ids) expect(nt.status(id).commit).toBe(1);
    }
  });
});
