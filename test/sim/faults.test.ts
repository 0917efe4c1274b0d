import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { memberIds, runSchedule, scheduleArb, type Schedule } from './schedule.js';
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
