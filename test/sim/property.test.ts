import fc from 'fast-check';
import { expect, it } from 'vitest';
import { runSchedule, scheduleArb, type Schedule, type ScheduleResult } from './schedule.js';

/**
 * The election invariants over thousands of hostile schedules (see schedule.ts for what
 * one schedule does and simulator.ts for the invariants checked after every event).
 *
 *   RAFT_SIM_RUNS=n   number of schedules (default 10,000)
 *   RAFT_SIM_SEED=s   fast-check seed (default: random, printed)
 *   RAFT_SIM_PATH=p   replay one counterexample (printed on failure with its seed)
 */

const DEFAULT_RUNS = 10_000;

function envInt(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw new Error(`${name} must be an integer, got ${JSON.stringify(raw)}`);
  return n;
}

const runs = envInt('RAFT_SIM_RUNS') ?? DEFAULT_RUNS;
// Test code may use Math.random: the seed is printed, and it is the only source.
const seed = envInt('RAFT_SIM_SEED') ?? (Date.now() ^ Math.floor(Math.random() * 0x7fffffff)) | 0;
const path = process.env.RAFT_SIM_PATH || undefined;

/** Totals over all schedules, so a reader can see that the schedules are hostile. */
class Totals {
  schedules = 0;
  ticks = 0;
  delivered = 0;
  dropped = 0;
  duplicated = 0;
  delayed = 0;
  reordered = 0;
  cutOff = 0;
  partitions = 0;
  crashes = 0;
  crashesAfterPersist = 0;
  crashesBeforePersist = 0;
  restarts = 0;
  leaders = 0;
  votesPersisted = 0;
  maxTerm = 0;
  sumMaxTerm = 0;
  /** Schedules in which three or more terms had a leader. */
  manyLeaders = 0;
  maxTicksToAgree = 0;
  sumTicksToAgree = 0;
  minLivenessBound = Infinity;
  readonly byMode = new Map<string, number>();

  add(s: Schedule, r: ScheduleResult): void {
    const st = r.stats;
    this.schedules++;
    this.ticks += st.ticks;
    this.delivered += st.delivered;
    this.dropped += st.dropped;
    this.duplicated += st.duplicated;
    this.delayed += st.delayed;
    this.reordered += st.reordered;
    this.cutOff += st.cutOff;
    this.partitions += st.partitions;
    this.crashes += st.crashes;
    this.crashesAfterPersist += st.crashesAfterPersist;
    this.crashesBeforePersist += st.crashesBeforePersist;
    this.restarts += st.restarts;
    this.leaders += st.leaders;
    this.votesPersisted += st.votesPersisted;
    this.maxTerm = Math.max(this.maxTerm, st.maxTerm);
    this.sumMaxTerm += st.maxTerm;
    if (st.leaders >= 3) this.manyLeaders++;
    this.maxTicksToAgree = Math.max(this.maxTicksToAgree, r.ticksToAgree);
    this.sumTicksToAgree += r.ticksToAgree;
    this.minLivenessBound = Math.min(this.minLivenessBound, r.livenessBound);
    const mode = `${s.preVote ? 'preVote' : 'noPreVote'}+${s.checkQuorum ? 'checkQuorum' : 'noCheckQuorum'}`;
    this.byMode.set(mode, (this.byMode.get(mode) ?? 0) + 1);
  }

  report(): string {
    const n = Math.max(1, this.schedules);
    const modes = [...this.byMode.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`);
    return [
      `raft sim: ${this.schedules} schedules, ${this.ticks} ticks, ${this.delivered} messages delivered`,
      `  faults: ${this.dropped} dropped, ${this.duplicated} duplicated, ${this.delayed} delayed, ${this.reordered} reordered, ` +
        `${this.cutOff} lost to partitions or down members, ${this.partitions} partitions`,
      `  crashes: ${this.crashes} (${this.crashesBeforePersist} before a write, ${this.crashesAfterPersist} between write and send), ${this.restarts} restarts`,
      `  elections: ${this.leaders} leaders elected (${(this.leaders / n).toFixed(1)} per schedule), ${this.votesPersisted} votes persisted, ` +
        `max term ${this.maxTerm} (mean of per-schedule max ${(this.sumMaxTerm / n).toFixed(1)}), ${this.manyLeaders} schedules with 3+ leaders`,
      `  liveness: all followed one leader ${(this.sumTicksToAgree / n).toFixed(1)} ticks after the heal on average, ` +
        `${this.maxTicksToAgree} at most (smallest bound ${this.minLivenessBound})`,
      `  modes: ${modes.join(' ')}`,
    ].join('\n');
  }
}

it(`keeps the election invariants over ${path ? 'a replayed' : runs} hostile schedule${path ? '' : 's'}`, () => {
  const replayAll = `RAFT_SIM_SEED=${seed} RAFT_SIM_RUNS=${runs} npx vitest run test/sim/property.test.ts`;
  console.log(`raft sim: fast-check seed ${seed}, ${path ? `path ${path}` : `${runs} runs`} (replay: ${replayAll})`);
  const totals = new Totals();
  const details = fc.check(
    fc.property(scheduleArb, (s) => {
      totals.add(s, runSchedule(s));
    }),
    { seed, numRuns: runs, ...(path !== undefined ? { path } : {}) },
  );
  if (details.failed) {
    const replay = `RAFT_SIM_SEED=${seed} RAFT_SIM_PATH=${details.counterexamplePath ?? ''} npx vitest run test/sim/property.test.ts`;
    console.error(`raft sim FAILED: seed ${seed}, path ${details.counterexamplePath ?? '?'}\nreplay: ${replay}`);
    throw new Error(`${String(details.errorInstance)}\n${fc.defaultReportMessage(details) ?? 'property failed'}\nreplay: ${replay}`);
  }
  console.log(totals.report());
  if (path === undefined && runs >= 1000) {
    // The schedules really are hostile; a simulator that injected nothing would fail here.
    expect(totals.leaders).toBeGreaterThan(2 * totals.schedules);
    expect(totals.manyLeaders).toBeGreaterThan(totals.schedules / 4);
    for (const count of [
      totals.dropped,
      totals.duplicated,
      totals.delayed,
      totals.reordered,
      totals.partitions,
      totals.crashesBeforePersist,
      totals.crashesAfterPersist,
      totals.restarts,
    ]) {
      expect(count).toBeGreaterThan(totals.schedules / 10);
    }
    expect(totals.byMode.size).toBe(4);
  }
});
