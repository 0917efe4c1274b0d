import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { memberIds, runSchedule, scheduleArb, wipeScheduleArb, type Schedule } from './schedule.js';
import { NO_FAULTS, SLOTS_PER_TICK, Simulation, type FaultRates, type SimOptions } from './simulator.js';

/**
 * Directed checks that each fault the property test relies on is really injected, that
 * replaying a seed reproduces the same trace, and that the checks can fail.
 */

const E = 10;

function sim(overrides: Partial<SimOptions> & { faults?: FaultRates } = {}): Simulation {
  return new Simulation({
    ids: memberIds(5),
    electionTick: E,
    heartbeatTick: 1,
    preVote: true,
    checkQuorum: true,
    restartVoteDelayTicks: 0,
    seed: 7,
    trace: true,
    ...overrides,
  });
}

/** Runs until every member follows one leader; fails the test if none within `limit` ticks. */
function agree(s: Simulation, limit = 10 * E): string {
  const ticks = s.runUntil(() => s.agreedLeader() !== undefined, limit);
  expect(ticks, 'no agreed leader in time').toBeDefined();
  return s.agreedLeader()!;
}

/** The delivery lines of a trace: slot of arrival, what, and slot it was sent. */
function deliveries(trace: readonly string[]): { at: number; what: string; sent: number }[] {
  const out: { at: number; what: string; sent: number }[] = [];
  for (const line of trace) {
    const m = /^(\d+): deliver (.*) sent@(\d+)$/.exec(line);
    if (m) out.push({ at: Number(m[1]), what: m[2]!, sent: Number(m[3]) });
  }
  return out;
}

const hostile: Schedule = {
  seed: 20240601,
  members: 5,
  electionTick: 6,
  preVote: false,
  checkQuorum: true,
  restartVoteDelay: true,
  dropPercent: 15,
  duplicatePercent: 10,
  maxDelaySlots: 10,
  crashPerMille: 10,
  maxDownTicks: 20,
  clockEighths: [8, 6, 7, 5, 8],
  chaosTicks: 200,
  actions: [
    { atPerMille: 100, action: { kind: 'isolateLeader' } },
    { atPerMille: 250, action: { kind: 'heal' } },
    { atPerMille: 300, action: { kind: 'crashLeader', point: 'afterPersist', downTicks: 15 } },
    { atPerMille: 450, action: { kind: 'partition', mask: 0b00011 } },
    { atPerMille: 600, action: { kind: 'stopLeader', downTicks: 10 } },
    { atPerMille: 700, action: { kind: 'heal' } },
    { atPerMille: 800, action: { kind: 'transferLeader', member: 2 } },
  ],
};

describe('determinism', () => {
  it('replaying a schedule reproduces the same event trace, and another seed does not', () => {
    const first = runSchedule(hostile, { trace: true });
    const second = runSchedule(hostile, { trace: true });
    expect(first.trace.length).toBeGreaterThan(2000);
    expect(second.trace).toEqual(first.trace);
    expect(second.stats).toEqual(first.stats);
    // The run was hostile: several leaders, crashes, drops.
    expect(first.stats.leaders).toBeGreaterThanOrEqual(3);
    expect(first.stats.crashes).toBeGreaterThan(0);
    expect(first.stats.dropped).toBeGreaterThan(0);
    const other = runSchedule({ ...hostile, seed: hostile.seed + 1 }, { trace: true });
    expect(other.trace).not.toEqual(first.trace);
  });

  it('a fast-check seed generates the same schedules and so the same traces', () => {
    const a = fc.sample(scheduleArb, { seed: 4242, numRuns: 20 });
    const b = fc.sample(scheduleArb, { seed: 4242, numRuns: 20 });
    expect(b).toEqual(a);
    for (let i = 0; i < a.length; i++) {
      expect(runSchedule(b[i]!, { trace: true }).trace).toEqual(runSchedule(a[i]!, { trace: true }).trace);
    }
  });
});

describe('injected faults', () => {
  it('drops: with every message lost nobody is ever elected, though members campaign', () => {
    const s = sim({ preVote: false, faults: { ...NO_FAULTS, dropPercent: 100 } });
    s.runTicks(20 * E);
    expect(s.leaderByTerm.size).toBe(0);
    expect(s.stats.delivered).toBe(0);
    expect(s.stats.dropped).toBeGreaterThan(20);
    expect(s.stats.maxTerm).toBeGreaterThan(2);
    // The same seed without drops elects a leader.
    const clean = sim({ preVote: false });
    agree(clean);
  });

  it('delays and reordering: messages arrive ticks late and overtake each other; without delay they do not', () => {
    const s = sim({ faults: { ...NO_FAULTS, maxDelaySlots: 12 } });
    agree(s, 20 * E);
    s.runTicks(5 * E);
    const late = deliveries(s.trace).filter((d) => d.at - d.sent >= 2 * SLOTS_PER_TICK);
    expect(late.length).toBeGreaterThan(0);
    expect(s.stats.delayed).toBeGreaterThan(0);
    expect(s.stats.reordered).toBeGreaterThan(0);

    const prompt = sim();
    agree(prompt);
    prompt.runTicks(5 * E);
    expect(prompt.stats.delayed).toBe(0);
    expect(prompt.stats.reordered).toBe(0);
    for (const d of deliveries(prompt.trace)) expect(d.at - d.sent).toBe(1);
  });

  it('duplicates: every message is delivered twice (in pairs)', () => {
    const s = sim({ faults: { ...NO_FAULTS, duplicatePercent: 100 } });
    agree(s);
    s.runTicks(2 * E);
    const counts = new Map<string, number>();
    for (const d of deliveries(s.trace)) counts.set(`${d.what}@${d.sent}`, (counts.get(`${d.what}@${d.sent}`) ?? 0) + 1);
    expect(counts.size).toBeGreaterThan(50);
    // Two copies arriving in the same slot may each draw the same answer, so a line may show 4 times.
    for (const n of counts.values()) expect(n % 2).toBe(0);
    expect(s.stats.delivered).toBe(2 * s.stats.duplicated);
  });

  it('partition: the majority side elects a new leader in a higher term; the old one steps down (CheckQuorum)', () => {
    const s = sim();
    const old = agree(s);
    const oldTerm = s.status(old).term;
    const buddy = s.ids.find((id) => id !== old)!;
    const majority = s.ids.filter((id) => id !== old && id !== buddy);
    s.partition([old, buddy]);
    const ticks = s.runUntil(() => {
      const leaders = s.leaders().filter((l) => majority.includes(l.id));
      return leaders.length === 1 && majority.every((id) => s.status(id).lead === leaders[0]!.id);
    }, 10 * E);
    expect(ticks).toBeDefined();
    const fresh = s.leaders().find((l) => majority.includes(l.id))!;
    expect(fresh.term).toBeGreaterThan(oldTerm);
    s.runTicks(2 * E);
    expect(s.status(old).state).not.toBe('Leader');
    // With PreVote the minority never raised its term, so healing does not disturb the new leader.
    expect(s.status(old).term).toBe(oldTerm);
    s.heal();
    s.runTicks(2 * E);
    expect(s.agreedLeader()).toBe(fresh.id);
    expect(s.status(old).term).toBe(fresh.term);
  });

  it('partition without CheckQuorum: the cut-off leader keeps believing in an old term until the heal', () => {
    const s = sim({ checkQuorum: false, preVote: false });
    const old = agree(s);
    const oldTerm = s.status(old).term;
    s.partition([old]);
    s.runTicks(5 * E);
    const leaders = s.leaders();
    expect(leaders).toHaveLength(2);
    expect(leaders.find((l) => l.id === old)!.term).toBe(oldTerm);
    expect(leaders.find((l) => l.id !== old)!.term).toBeGreaterThan(oldTerm);
    s.heal();
    s.runTicks(2 * E);
    expect(s.leaders()).toHaveLength(1);
    expect(s.agreedLeader()).not.toBe(old);
  });

  it('crash and restart: survivors elect a new leader; the restarted member comes back at its persisted term', () => {
    const s = sim();
    const old = agree(s);
    const oldTerm = s.status(old).term;
    s.crash(old);
    expect(s.isUp(old)).toBe(false);
    const next = agree2(s, old);
    expect(s.status(next).term).toBeGreaterThan(oldTerm);
    const disk = s.disk(old)!;
    s.restart(old);
    expect(s.status(old).term).toBe(disk.hardState.term);
    expect(s.status(old).state).toBe('Follower');
    s.runTicks(3 * E);
    expect(s.agreedLeader()).toBe(next);
  });

  it('a crash between writing and sending: the vote is on disk, its answer never left, and it survives the restart', () => {
    const s = sim({ ids: memberIds(3), preVote: false, checkQuorum: false });
    s.crash('m1', 'afterPersist');
    s.crash('m2', 'afterPersist');
    s.campaign('m3');
    s.runTicks(1);
    expect(s.isUp('m1')).toBe(false);
    expect(s.isUp('m2')).toBe(false);
    expect(s.stats.crashesAfterPersist).toBe(2);
    expect(s.disk('m1')!.hardState).toMatchObject({ term: 1, vote: 'm3' });
    expect(s.disk('m2')!.hardState).toMatchObject({ term: 1, vote: 'm3' });
    expect(s.trace.some((l) => l.includes('deliver MsgVoteResp m1->m3'))).toBe(false);
    expect(s.status('m3').state).toBe('Candidate');
    s.restart('m1');
    expect(s.status('m1')).toMatchObject({ term: 1, vote: 'm3', state: 'Follower' });
  });

  it('a crash before writing: nothing of that Ready survives', () => {
    const s = sim({ ids: memberIds(3), preVote: false, checkQuorum: false });
    s.crash('m1', 'beforePersist');
    s.campaign('m3');
    s.runTicks(1);
    expect(s.isUp('m1')).toBe(false);
    expect(s.stats.crashesBeforePersist).toBe(1);
    expect(s.disk('m1')).toBeUndefined();
    s.restart('m1');
    expect(s.status('m1')).toMatchObject({ term: 0, vote: '' });
    // m2 voted, so m3 won term 1 anyway.
    s.runTicks(1);
    expect(s.leaderByTerm.get(1)).toBe('m3');
  });

  it('clock skew: a member at half speed ticks half as often', () => {
    const s = sim({ ids: memberIds(3), clockEighths: { m1: 4, m2: 8, m3: 6 } });
    s.runTicks(40);
    expect(s.status('m1').ticksSinceStart).toBe(20);
    expect(s.status('m2').ticksSinceStart).toBe(40);
    expect(s.status('m3').ticksSinceStart).toBe(30);
  });

  it('restart vote delay: members restarted into a running group grant no vote for one election timeout', () => {
    for (const delay of [0, E]) {
      const s = sim({ ids: memberIds(3), preVote: false, checkQuorum: false, restartVoteDelayTicks: delay });
      agree(s);
      for (const id of s.ids) s.crash(id);
      for (const id of s.ids) s.restart(id);
      const term = s.status('m2').term;
      s.campaign('m2');
      s.runTicks(1);
      if (delay === 0) {
        expect(s.leaderByTerm.get(term + 1)).toBe('m2');
      } else {
        expect(s.leaderByTerm.has(term + 1)).toBe(false);
        expect(s.leaders()).toHaveLength(0);
        const ticks = s.runUntil(() => s.agreedLeader() !== undefined, 10 * E);
        expect(ticks).toBeDefined();
        expect(ticks!).toBeGreaterThanOrEqual(delay - 1);
      }
    }
  });
});

describe('the checks can fail', () => {
  it('liveness: without the clock floor after the heal, a fast stale member livelocks the group (no PreVote)', () => {
    // Found by the property test with the floor lowered to 4/8, and shrunk by fast-check.
    const livelock: Schedule = {
      seed: 383299868,
      members: 3,
      electionTick: 5,
      preVote: false,
      checkQuorum: false,
      restartVoteDelay: false,
      dropPercent: 5,
      duplicatePercent: 16,
      maxDelaySlots: 12,
      crashPerMille: 1,
      maxDownTicks: 1,
      clockEighths: [4, 8],
      chaosTicks: 64,
      actions: [
        { atPerMille: 250, action: { kind: 'campaign', member: 0 } },
        { atPerMille: 485, action: { kind: 'partition', mask: 21 } },
        { atPerMille: 297, action: { kind: 'crash', member: 1, downTicks: 16 } },
        { atPerMille: 469, action: { kind: 'crashLeader', point: 'idle', downTicks: 13 } },
        { atPerMille: 922, action: { kind: 'partition', mask: 1 } },
        { atPerMille: 360, action: { kind: 'partition', mask: 1 } },
        { atPerMille: 250, action: { kind: 'campaign', member: 0 } },
        { atPerMille: 235, action: { kind: 'transferLeader', member: 0 } },
      ],
    };
    expect(() => runSchedule(livelock, { livenessMinClockEighths: 4 })).toThrow(/\[liveness\]/);
    expect(runSchedule(livelock).ticksToAgree).toBeGreaterThan(0);
  });

  it('a driver that sends before it writes is caught, by the durability check and without it by the committed-log check', () => {
    const property = (checkVoteDurability: boolean) =>
      fc.check(
        fc.property(scheduleArb, (s) => {
          runSchedule(s, { unsafeSendBeforePersist: true, checkVoteDurability });
        }),
        { seed: 5, numRuns: 2000 },
      );
    const withCheck = property(true);
    expect(withCheck.failed).toBe(true);
    expect(String(withCheck.errorInstance)).toMatch(/\[vote-durable-before-sent\]/);
    const without = property(false);
    expect(without.failed).toBe(true);
    expect(String(without.errorInstance)).toMatch(/\[(one-leader-per-term|committed-entries-agree|one-vote-per-term)\]/);
  });
});

describe('disk loss', () => {
  /** Both relaxations the disk-loss properties use; each still fails when nothing explains the breach. */
  const diskLoss = { allowWipedDoubleVotes: true, allowLostCommittedEntries: true } as const;
  const quiet = { preVote: false, checkQuorum: false, restartVoteDelay: true, dropPercent: 0, duplicatePercent: 0, maxDelaySlots: 0 };
  const calm = { ...quiet, crashPerMille: 0, maxDownTicks: 1, wipePercent: 0, freshVoteDelay: true };

  /** m3 leads term 1 with m1's vote; m1 loses its disk; m2, cut off from m3, asks m1 for term 1. */
  function wipeAfterVoting(s: Simulation): void {
    s.partition(['m2']);
    s.campaign('m3');
    s.runTicks(1);
    expect(s.leaderByTerm.get(1)).toBe('m3');
    expect(s.disk('m1')!.hardState).toMatchObject({ term: 1, vote: 'm3' });
    s.wipe('m1');
    expect(s.isUp('m1')).toBe(false);
    expect(s.disk('m1')).toBeUndefined();
    s.restart('m1');
    expect(s.status('m1')).toMatchObject({ term: 0, vote: '', state: 'Follower' });
    // Partitioned in the same slot: m3's messages still in flight to m1 are cut off.
    s.partition(['m3']);
    s.campaign('m2');
  }

  it('a wiped member restarts empty as a new disk identity: its second vote in term 1 is no one-vote breach, the second leader is', () => {
    const options = { ids: memberIds(3), preVote: false, checkQuorum: false, freshVoteDelayTicks: 2 * E };
    const strict = sim(options);
    wipeAfterVoting(strict);
    expect(() => strict.runTicks(1)).toThrow(/\[one-leader-per-term\] .*m2 became leader of term 1, which m3 already led/);

    const s = sim({ ...options, allowWipedDoubleVotes: true });
    wipeAfterVoting(s);
    s.runTicks(1);
    // The first peer message m1 sees is a term-1 vote request with an empty log: a brand-new
    // group, by the fresh delay's rule, so m1 votes after its first tick, with the delay set.
    expect(s.stats.wipes).toBe(1);
    expect(s.disk('m1')!.hardState).toMatchObject({ term: 1, vote: 'm2' });
    expect(s.doubleLeaders).toEqual([
      { term: 1, first: 'm3', second: 'm2', voter: 'm1', firstDisk: 0, secondDisk: 1, laterVoteFor: 'm2', laterVoteAgeTicks: 1, tick: s.tick },
    ]);
    expect(s.stats.doubleLeaderTerms).toBe(1);
  });

  it('the allowance explains only double votes: a driver that sends before it writes is still caught with wipes on', () => {
    const details = fc.check(
      fc.property(wipeScheduleArb(true), (s) => {
        runSchedule(s, { ...diskLoss, unsafeSendBeforePersist: true, checkVoteDurability: false });
      }),
      { seed: 5, numRuns: 2000 },
    );
    expect(details.failed).toBe(true);
    expect(String(details.errorInstance)).toMatch(/\[(one-leader-per-term|committed-entries-agree|one-vote-per-term)\]/);
  });

  it('the disk-loss properties with and without the fresh delay run the same schedules, and replay exactly', () => {
    const withDelay = fc.sample(wipeScheduleArb(true), { seed: 77, numRuns: 50 });
    const without = fc.sample(wipeScheduleArb(false), { seed: 77, numRuns: 50 });
    expect(without.map((s) => ({ ...s, freshVoteDelay: true }))).toEqual(withDelay);
    expect(withDelay.some((s) => s.actions.some((a) => a.action.kind === 'wipe'))).toBe(true);
    const first = runSchedule(withDelay[0]!, { ...diskLoss, trace: true });
    expect(runSchedule(withDelay[0]!, { ...diskLoss, trace: true }).trace).toEqual(first.trace);
  });

  it('what the fresh delay buys: a member wiped twice refuses the term-2 vote that made a second leader without it', () => {
    // Found by fast-check (seed 3): double leaders of a term above 1 without the delay and none with it; shrunk.
    const delayHelps: Schedule = {
      ...calm,
      seed: 1,
      members: 3,
      electionTick: 4,
      clockEighths: [4],
      chaosTicks: 75,
      actions: [
        { atPerMille: 160, action: { kind: 'crashLeader', point: 'idle', downTicks: 0 } },
        { atPerMille: 267, action: { kind: 'wipe', member: 0, downTicks: 0 } },
        { atPerMille: 0, action: { kind: 'wipe', member: 0, downTicks: 2 } },
        { atPerMille: 267, action: { kind: 'stopLeader', downTicks: 0 } },
      ],
    };
    const without = runSchedule({ ...delayHelps, freshVoteDelay: false }, diskLoss);
    expect(without.doubleLeaders).toMatchObject([{ term: 2, first: 'm3', second: 'm2', voter: 'm1', laterVoteFor: 'm2' }]);
    expect(() => runSchedule({ ...delayHelps, freshVoteDelay: false })).toThrow(/\[one-leader-per-term\]/);
    expect(runSchedule(delayHelps, diskLoss).doubleLeaders).toEqual([]);
  });

  /**
   * Counterexamples to "one leader per term" WITH freshVoteDelayTicks = 2 × electionTick (the
   * product's setting), each shrunk by fast-check from the disk-loss property and replayed
   * here; 3 members, electionTick 4, clocks at half speed, a lossless network. They pin the
   * gaps the design accepts ("a wiped member can vote twice in one term in rare races"); if
   * raft/ closes one, its case here fails and should become a case of no double leader.
   */
  /** `fixed`: a raft bug this schedule found; it now runs safely and stays as a regression test. */
  const gaps: { name: string; schedule: Schedule; witness: object; fixed?: boolean }[] = [
    {
      // fast-check seed 11. m2 leads term 1; m1, wiped before it ever voted, and m2, wiped
      // after leading, come back empty; m1's term-1 request (empty log) is m2's first
      // message, which by design does not show that the group ran: m2 votes again in term 1.
      name: 'term 1: a brand-new group by the first message',
      schedule: {
        ...calm,
        seed: 0,
        members: 3,
        electionTick: 4,
        clockEighths: [4],
        chaosTicks: 30,
        actions: [
          { atPerMille: 34, action: { kind: 'wipe', member: 0, downTicks: 18 } },
          { atPerMille: 600, action: { kind: 'wipe', member: 4, downTicks: 1 } },
        ],
      },
      witness: { term: 1, first: 'm2', second: 'm1', voter: 'm2', firstDisk: 0, secondDisk: 1, laterVoteFor: 'm1', laterVoteAgeTicks: 4 },
    },
    {
      // fast-check seed 14. m2 votes for m3 in term 2 and is wiped; back empty, it times out
      // before hearing a peer and campaigns in term 1: its own vote response is stepped as
      // the first message, so "the group ran" is decided false (raft.ts noteGroupRan does not
      // skip messages from itself), and m1's term-2 request 5 ticks later is granted.
      name: "term 2: the member's own vote response taken for its first peer message",
      fixed: true, // raft.ts noteGroupRan now skips messages from itself
      schedule: {
        ...calm,
        seed: 0,
        members: 3,
        electionTick: 4,
        clockEighths: [4],
        chaosTicks: 32,
        actions: [
          { atPerMille: 313, action: { kind: 'wipe', member: 1, downTicks: 1 } },
          { atPerMille: 313, action: { kind: 'isolateLeader' } },
          { atPerMille: 0, action: { kind: 'campaign', member: 0 } },
          { atPerMille: 32, action: { kind: 'crashLeader', point: 'idle', downTicks: 12 } },
        ],
      },
      witness: { term: 2, first: 'm3', second: 'm1', voter: 'm2', firstDisk: 0, secondDisk: 1, laterVoteFor: 'm1', laterVoteAgeTicks: 5 },
    },
    {
      // fast-check seed 7 (on a raft.ts patched to skip its own messages, so this gap is
      // independent of the one above). m1 and m3 are both wiped and restart together at the
      // heal; m1's term-1 request (empty log) is m3's first message, so m3 takes no delay and
      // grants m2's term-4 request in the same tick, a term in which it voted for itself before.
      name: 'term 4: the first message came from another wiped member',
      // Closed since members no longer campaign inside their start-up delay (raft.ts hup); the log may
      // still fork (two of three disks lost), which disk loss counts rather than asserts.
      fixed: true,
      schedule: {
        ...calm,
        seed: 41703135,
        members: 3,
        electionTick: 4,
        clockEighths: [4],
        chaosTicks: 64,
        actions: [
          { atPerMille: 125, action: { kind: 'transferLeader', member: 1 } },
          { atPerMille: 454, action: { kind: 'wipe', member: 0, downTicks: 27 } },
          { atPerMille: 297, action: { kind: 'wipe', member: 2, downTicks: 0 } },
          { atPerMille: 282, action: { kind: 'campaign', member: 2 } },
          { atPerMille: 141, action: { kind: 'crashLeader', point: 'afterPersist', downTicks: 40 } },
        ],
      },
      witness: { term: 4, first: 'm3', second: 'm2', voter: 'm3', firstDisk: 0, secondDisk: 1, laterVoteFor: 'm2', laterVoteAgeTicks: 0 },
    },
    {
      // fast-check seed 7, 5 members. m2 voted for m5 in term 4 and is wiped; back at the heal,
      // its first message is m1's heartbeat (the group ran: the delay is on), but a stale leader
      // (m1) hands over to m3, whose CampaignTransfer request is forced past every vote delay
      // (raft.ts step: `!force && (inLease || inVoteDelay())`), and m2 grants it 2 ticks in.
      name: "term 4: a leader transfer's forced vote skips the fresh delay",
      fixed: true, // a transfer now skips the lease and the restart delay, never the fresh delay
      schedule: {
        ...calm,
        seed: 41703135,
        members: 5,
        electionTick: 4,
        clockEighths: [4],
        chaosTicks: 64,
        actions: [
          { atPerMille: 125, action: { kind: 'transferLeader', member: 2 } },
          { atPerMille: 500, action: { kind: 'crashLeader', point: 'idle', downTicks: 0 } },
          { atPerMille: 407, action: { kind: 'wipe', member: 1, downTicks: 0 } },
          { atPerMille: 969, action: { kind: 'transferLeader', member: 2 } },
          { atPerMille: 282, action: { kind: 'partition', mask: 1 } },
          { atPerMille: 141, action: { kind: 'crashLeader', point: 'idle', downTicks: 0 } },
        ],
      },
      witness: { term: 4, first: 'm5', second: 'm3', voter: 'm2', firstDisk: 0, secondDisk: 1, laterVoteFor: 'm3', laterVoteAgeTicks: 2 },
    },
  ];

  it.each(gaps.filter((g) => g.fixed))('fixed: no double leader any more: $name', ({ schedule }) => {
    expect(schedule.freshVoteDelay).toBe(true);
    // (Committed logs may still fork after a wipe: that is counted, not asserted, under disk loss.)
    expect(() => runSchedule(schedule)).not.toThrow(/\[one-leader-per-term\]/);
    expect(runSchedule(schedule, diskLoss).doubleLeaders).toEqual([]);
  });

  it.each(gaps.filter((g) => !g.fixed))('a double leader despite the fresh delay: $name', ({ schedule, witness }) => {
    expect(schedule.freshVoteDelay).toBe(true);
    expect(() => runSchedule(schedule)).toThrow(/\[one-leader-per-term\]/);
    const r = runSchedule(schedule, diskLoss);
    expect(r.doubleLeaders).toHaveLength(1);
    expect(r.doubleLeaders[0]).toMatchObject(witness);
    expect(r.stats.wipes).toBeGreaterThanOrEqual(1);
  });

  it('a double leader can outlive the heal: two leaders of term 1 that never step down (PreVote, no CheckQuorum)', () => {
    // Found by the disk-loss property (fast-check seed 1, among its first 4,000 schedules): the
    // only such schedule in about 34,000 run while writing this, and none in 20,000 more with
    // PreVote and CheckQuorum both on (the product's setting). m2 and m3 both lead term 1 when the network
    // heals; m1 follows whichever heartbeat came last; a leader ignores a same-term heartbeat,
    // and with PreVote no one raises the term, so no leader is ever agreed on.
    const stuck: Schedule = {
      seed: 236438697,
      members: 3,
      electionTick: 7,
      preVote: true,
      checkQuorum: false,
      restartVoteDelay: true,
      dropPercent: 23,
      duplicatePercent: 4,
      maxDelaySlots: 5,
      crashPerMille: 3,
      maxDownTicks: 3,
      clockEighths: [4, 5, 5, 7],
      chaosTicks: 115,
      freshVoteDelay: true,
      wipePercent: 53,
      actions: [
        { atPerMille: 872, action: { kind: 'isolateLeader' } },
        { atPerMille: 344, action: { kind: 'isolateLeader' } },
        { atPerMille: 205, action: { kind: 'partition', mask: 25 } },
        { atPerMille: 638, action: { kind: 'crash', member: 3, downTicks: 39 } },
        { atPerMille: 322, action: { kind: 'wipe', member: 3, downTicks: 6 } },
        { atPerMille: 465, action: { kind: 'partition', mask: 10 } },
        { atPerMille: 362, action: { kind: 'wipe', member: 2, downTicks: 34 } },
        { atPerMille: 631, action: { kind: 'isolateLeader' } },
        { atPerMille: 674, action: { kind: 'partition', mask: 20 } },
        { atPerMille: 223, action: { kind: 'wipe', member: 0, downTicks: 9 } },
      ],
    };
    const r = runSchedule(stuck, diskLoss);
    expect(r.stuckDoubleLeader).toEqual({ term: 1, leaders: ['m2', 'm3'] });
    expect(r.ticksToAgree).toBeUndefined();
    expect(r.doubleLeaders).toMatchObject([{ term: 1, first: 'm2', second: 'm3', voter: 'm1' }]);
    // Without the allowance the same run fails at the second leader; with CheckQuorum on, no double leader here.
    expect(() => runSchedule(stuck)).toThrow(/\[one-leader-per-term\]/);
    expect(runSchedule({ ...stuck, checkQuorum: true }, diskLoss).stuckDoubleLeader).toBeUndefined();
  });
});

/** Runs until every running member follows one leader other than `not`. */
function agree2(s: Simulation, not: string): string {
  const ticks = s.runUntil(() => {
    const up = s.upIds();
    const leaders = s.leaders();
    return leaders.length === 1 && leaders[0]!.id !== not && up.every((id) => s.status(id).lead === leaders[0]!.id);
  }, 10 * E);
  expect(ticks).toBeDefined();
  return s.leaders()[0]!.id;
}
