/**
 * Lease safety with five members, in directed schedules: the holes that need a voter the
 * candidate's election and the old leader's lease both count on, while the new leader and the
 * old one never see each other (three members leave no room for one). Real RaftMembers on the
 * in-memory bus under fake timers, sampled every 10 ms as in lease.test.ts.
 */
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { PeerTiming } from '../../cluster/interfaces.js';
import { RaftMember } from '../../cluster/member.js';
import { MemoryTimingRecord } from '../../cluster/timing-record.js';
import { seededRandom } from '../../raft/index.js';
import { MemoryStore } from '../harness/member-bus.js';
import { LeaseGroup, StepMs } from './lease-group.js';

const Ids = ['a', 'b', 'c', 'd', 'e'];
const Uniform: PeerTiming = { tickMs: 100, electionTicks: 10, maxClockDriftMs: 100 };
/** The end of a rolling change to shorter timing (lease.test.ts's Timings[1]). */
const Short: PeerTiming = { tickMs: 20, electionTicks: 10, maxClockDriftMs: 20 };
const silent = pino({ level: 'silent' });

class FiveGroup extends LeaseGroup {
  readonly stores = new Map(Ids.map((id) => [id, new MemoryStore(id, this.bus)]));
  readonly records = new Map(Ids.map((id) => [id, new MemoryTimingRecord()]));
  readonly timings = new Map<string, PeerTiming>(Ids.map((id) => [id, Uniform]));
  private starts = 0;

  async start(id: string): Promise<void> {
    this.starts++;
    const timing = this.timings.get(id)!;
    const member = new RaftMember({
      id,
      bootstrap: { voters: Ids },
      ...timing,
      heartbeatTicks: 1,
      store: this.stores.get(id)!,
      timingRecord: this.records.get(id)!,
      logger: silent,
      random: seededRandom(this.seed * 31 + Ids.indexOf(id) * 7 + this.starts * 1009),
      monotonicNowMs: () => Date.now(),
      createTransport: (events) => this.bus.transport(id, Ids.filter((p) => p !== id), events, timing),
    });
    this.members.set(id, member);
    await member.start();
  }

  member(id: string): RaftMember {
    return this.members.get(id)!;
  }

  leader(): string | undefined {
    return [...this.members.values()].find((m) => m.view().role === 'Leader')?.id;
  }

  /** Runs until `done` holds (sampling throughout), or fails after `limitMs`. */
  async runUntil(what: string, done: () => boolean, limitMs: number): Promise<void> {
    for (let t = 0; !done(); t += StepMs) {
      if (t >= limitMs) throw new Error(`${what}: not within ${limitMs} ms`);
      await this.run(StepMs);
    }
  }

  /** Every member's view on one line, for a failure message. */
  views(): string {
    return [...this.members.values()].map((m) => `${m.id}: ${m.view().role} t${m.view().term} isLeader ${m.view().isLeader}`).join('; ');
  }
}

/** c leads with every member up to date, all on `timing` unless set otherwise. */
async function steadyUnderC(g: FiveGroup): Promise<void> {
  for (const id of Ids) await g.start(id);
  await g.runUntil('a first leader', () => g.leader() !== undefined, 5_000);
  const first = g.leader()!;
  if (first !== 'c') {
    void g.member(first).transferLeadership('c').catch(() => undefined);
    await g.runUntil('c leading', () => g.member('c').view().isLeader, 5_000);
  }
  await g.run(1_000);
  expect(g.member('c').view().isLeader, g.views()).toBe(true);
}

describe('lease safety with five members', () => {
  beforeEach(() => vi.useFakeTimers({ now: 1_000_000 }));
  afterEach(() => vi.useRealTimers());

  it('a transfer from a leader elected with LeaseSkipped votes is marked by a voter still in the old lease', async () => {
    // c leads term t with a's and b's acks; d and e lost c (a partition, no closed link). b's
    // link to c closes: b forgets c, and d, e and b elect b in term t+1 (b's own vote marked:
    // b waits before claiming). b at once hands over to d; d's transfer election in t+2 is won
    // by d, e and a. a still honours c's lease, and took a transfer from a leader it never
    // followed: before the fix its grant was plain, so d claimed while c still did.
    console.log('five-member regression: a transfer two terms ahead of a voter in lease (directed schedule, member seed 7)');
    vi.setSystemTime(1_000_000);
    const g = new FiveGroup(7);
    // Fixed delays: b's answers to d come last, so d wins on the others' votes.
    g.bus.delayMs = (m) => (m.from === 'b' && m.to === 'd' && m.type === 'MsgVoteResp' ? 15 : 1);
    try {
      await steadyUnderC(g);
      const t = g.member('c').view().term;
      g.bus.isolate('c', ['d', 'e']);
      await g.run(1_500); // d and e are out of c's lease; a and b refuse their pre-votes
      expect(g.member('c').view().isLeader, g.views()).toBe(true);
      g.bus.isolate('c', ['b']);
      g.bus.isolate('a', ['b']); // a never hears of b's term: it stays in c's lease
      g.member('b').forgetLeader();
      g.member('b').campaign();
      await g.runUntil('b elected', () => g.member('b').view().role === 'Leader', 1_000);
      expect(g.member('b').view()).toMatchObject({ term: t + 1, isLeader: false });
      void g.member('b').transferLeadership('d').catch(() => undefined);
      await g.runUntil('d elected', () => g.member('d').view().role === 'Leader', 1_000);
      expect(g.member('d').view().term).toBe(t + 2);
      // Sampling throughout: c's lease (held up by b's last ack) and d's claim never overlap.
      await g.run(3_000);
      expect(g.member('d').view().isLeader, g.views()).toBe(true);
    } finally {
      await g.stop();
    }
  }, 60_000);

  it("a transfer's winner waits out the window a voter announced before it restarted with shorter timing", async () => {
    // The end of a rolling change to shorter timing: b and d still run the long one, so c's lease
    // counts their acks for 800 ms. c is cut off; everyone forgets it and a is elected (lease
    // skipped: a waits, and then hands over). b and d restart with the short timing (their
    // restart delay covers the old window, and marks their votes), and announce it: e, a's target,
    // elected with b's marked vote, waited only the short window it now knew of (about 180 ms)
    // while c still claimed on b's and d's old acks.
    console.log('five-member regression: a voter that restarted with shorter timing (directed schedule, member seed 11)');
    vi.setSystemTime(1_000_000);
    const g = new FiveGroup(11);
    g.bus.delayMs = () => 1;
    for (const id of ['a', 'c', 'e']) g.timings.set(id, Short);
    try {
      await steadyUnderC(g);
      g.bus.isolate('c', Ids);
      for (const id of ['a', 'b', 'd', 'e']) g.member(id).forgetLeader();
      g.member('a').campaign();
      await g.runUntil('a elected', () => g.member('a').view().role === 'Leader', 1_000);
      expect(g.member('a').view().isLeader).toBe(false);
      for (const id of ['b', 'd']) {
        await g.crash(id);
        g.timings.set(id, Short);
        await g.start(id);
      }
      await g.run(100);
      void g.member('a').transferLeadership('e').catch(() => undefined);
      await g.runUntil('e elected', () => g.member('e').view().role === 'Leader', 1_000);
      // Sampling throughout: c's lease and e's claim never overlap; e claims in the end.
      await g.run(3_000);
      expect(g.member('e').view().isLeader, g.views()).toBe(true);
    } finally {
      await g.stop();
    }
  }, 60_000);
});
