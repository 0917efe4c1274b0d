import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { runSchedule, scheduleArb, wipeScheduleArb, type Schedule, type ScheduleResult } from './schedule.js';

/**
 * The election invariants over thousands of hostile schedules (see schedule.ts for what
 * one schedule does and simulator.ts for the invariants checked after every event).
 *
 *   RAFT_SIM_RUNS=n   number of schedules (default 10,000)
 *   RAFT_SIM_SEED=s   fast-check seed (default: random, printed)
 *   RAFT_SIM_PATH=p   replay one counterexample (printed on failure with its seed)
 *
 * The disk-loss properties take RAFT_SIM_WIPE_RUNS (default 4,000 each), RAFT_SIM_WIPE_SEED
 * and RAFT_SIM_WIPE_PATH the same way; both run the same schedules, with and without the
 * fresh-member vote delay.
 */

const DEFAULT_RUNS = 10_000;
/**
 * Each disk-loss property takes about 3 s per 4,000 schedules on the 2-core machine; with
 * them, `npx vitest run test/sim` took 26 s (22 s with 2,000 each), inside its 40 s budget.
 */
const DEFAULT_WIPE_RUNS = 4_000;

function envInt(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw new Error(`${name} must be an integer, got ${JSON.stringify(raw)}`);
  return n;
}

// Test code may use Math.random: the seeds are printed, and it is their only source.
const randomSeed = (): number => (Date.now() ^ Math.floor(Math.random() * 0x7fffffff)) | 0;
const runs = envInt('RAFT_SIM_RUNS') ?? DEFAULT_RUNS;
const seed = envInt('RAFT_SIM_SEED') ?? randomSeed();
const path = process.env.RAFT_SIM_PATH || undefined;
const wipeRuns = envInt('RAFT_SIM_WIPE_RUNS') ?? DEFAULT_WIPE_RUNS;
const wipeSeed = envInt('RAFT_SIM_WIPE_SEED') ?? randomSeed();
const wipePath = process.env.RAFT_SIM_WIPE_PATH || undefined;

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
  /** Schedules run with preVote and successorCampaign, the product's election rules. */
  successorCampaign = 0;
  /** Schedules in which a handing-over leader gave its vote with MsgTimeoutNow (transferGrantsVote). */
  transferGrantsVote = 0;

  add(s: Schedule, r: ScheduleResult): void {
    const st = r.stats;
    if (r.ticksToAgree === undefined) throw new Error('a schedule without an agreed leader cannot be totalled');
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
    if (s.preVote && s.successorCampaign) this.successorCampaign++;
    if (s.transferGrantsVote) this.transferGrantsVote++;
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
      `  modes: ${modes.join(' ')}; with successorCampaign: ${this.successorCampaign}; with transferGrantsVote: ${this.transferGrantsVote}`,
    ].join('\n');
  }
}

it(`keeps the election invariants over ${path ? 'a replayed' : runs} hostile schedule${path ? '' : 's'}`, () => {
  const replayAll = `RAFT_SIM_SEED=${seed} RAFT_SIM_RUNS=${runs} npx vitest run test/sim/property.test.ts -t 'keeps the election invariants'`;
  console.log(`raft sim: fast-check seed ${seed}, ${path ? `path ${path}` : `${runs} runs`} (replay: ${replayAll})`);
  const totals = new Totals();
  const details = fc.check(
    fc.property(scheduleArb, (s) => {
      totals.add(s, runSchedule(s));
    }),
    { seed, numRuns: runs, ...(path !== undefined ? { path } : {}) },
  );
  if (details.failed) {
    const replay = `RAFT_SIM_SEED=${seed} RAFT_SIM_PATH=${details.counterexamplePath ?? ''} npx vitest run test/sim/property.test.ts -t 'keeps the election invariants'`;
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
    expect(totals.successorCampaign).toBeGreaterThan(totals.schedules / 10);
    expect(totals.transferGrantsVote).toBeGreaterThan(totals.schedules / 10);
  }
}, 300_000); // CPU-bound and deterministic: about 30 s at load 10 on 2 cores, more beside a CI run

/**
 * Disk loss: members restart with their state wiped (a pod recreated on an emptyDir). The
 * design accepts that a wiped member may vote twice in one term (docs/design.md, README
 * "Durability"), so these properties assert what stays true, and count what does not:
 *
 *  - one vote per term, terms and commits never going back: per disk identity (the
 *    simulator starts a new identity at each wipe; a restart that keeps the disk does not);
 *  - at most one leader per term, unless a member voted for both leaders of that term under
 *    two disk identities (a double leader with no such witness still fails the run);
 *  - committed entries agree until the first wipe of a written disk (after that, forks are
 *    Raft's own consequence of losing a disk, and are counted);
 *  - liveness after the heal, except when two members still lead the same term at the
 *    bound: neither ever steps down (a leader ignores a same-term heartbeat, etcd's rule, and
 *    with CheckQuorum both count the follower that answers both). Counted and printed.
 *
 * Election safety does NOT hold with disk loss, even with freshVoteDelayTicks = 2 × electionTick:
 * every run of 2,000 or more schedules has found double leaders, with the delay and without it,
 * in 3-4% of schedules either way (see the printed figures, and the shrunk schedules pinned in
 * faults.test.ts). These schedules wipe about 3 disks each, far above any real rate, so the
 * percentage is no field estimate. What the delay changes is which terms: over 20,000
 * schedules (RAFT_SIM_WIPE_SEED=2024) double leaders of terms above 1 fell from 306 to 218
 * (afterDelay 256 to 114), while term-1 ones rose from 383 to 523 (741 in all, against 689). The figures show what
 * the delay buys, and where its gaps are:
 *   firstTerm    a double leader of term 1: a fresh member's first message is a term-1 vote
 *                request with an empty log, which by design does not count as "the group ran";
 *   ownCampaign  the wiped member campaigned and voted for itself: the delay stops only grants;
 *   withinDelay  another candidate got the vote before the delay could have run out (the
 *                first peer message did not show the group ran, or a transfer's forced vote);
 *   afterDelay   the delay ran out while the old vote's term was still contested.
 */
type DoubleLeaderKind = 'firstTerm' | 'ownCampaign' | 'withinDelay' | 'afterDelay';

class DiskLossTotals {
  schedules = 0;
  ticks = 0;
  wipes = 0;
  restarts = 0;
  leaders = 0;
  votesPersisted = 0;
  forkedCommittedEntries = 0;
  doubleLeaderTerms = 0;
  schedulesWithDoubleLeader = 0;
  readonly byKind: Record<DoubleLeaderKind, number> = { firstTerm: 0, ownCampaign: 0, withinDelay: 0, afterDelay: 0 };
  /** fast-check paths (run indexes) of schedules with a double leader, and of those stuck at the bound. */
  readonly doubleLeaderPaths: string[] = [];
  readonly stuckPaths: string[] = [];
  stuck = 0;
  agreed = 0;
  sumTicksToAgree = 0;
  maxTicksToAgree = 0;

  add(s: Schedule, r: ScheduleResult, runPath: string): void {
    const st = r.stats;
    this.schedules++;
    this.ticks += st.ticks;
    this.wipes += st.wipes;
    this.restarts += st.restarts;
    this.leaders += st.leaders;
    this.votesPersisted += st.votesPersisted;
    this.forkedCommittedEntries += st.forkedCommittedEntries;
    const freshDelayTicks = s.freshVoteDelay ? 2 * s.electionTick : 0;
    for (const d of r.doubleLeaders) {
      this.doubleLeaderTerms++;
      const kind: DoubleLeaderKind =
        d.term === 1 ? 'firstTerm' : d.laterVoteFor === d.voter ? 'ownCampaign' : d.laterVoteAgeTicks < freshDelayTicks ? 'withinDelay' : 'afterDelay';
      this.byKind[kind]++;
    }
    if (r.doubleLeaders.length > 0) {
      this.schedulesWithDoubleLeader++;
      if (this.doubleLeaderPaths.length < 3) this.doubleLeaderPaths.push(runPath);
    }
    if (r.stuckDoubleLeader) {
      this.stuck++;
      if (this.stuckPaths.length < 3) this.stuckPaths.push(runPath);
    }
    if (r.ticksToAgree !== undefined) {
      this.agreed++;
      this.sumTicksToAgree += r.ticksToAgree;
      this.maxTicksToAgree = Math.max(this.maxTicksToAgree, r.ticksToAgree);
    }
  }

  report(label: string, replayPath: (p: string) => string): string {
    const kinds = (Object.keys(this.byKind) as DoubleLeaderKind[]).map((k) => `${k}=${this.byKind[k]}`).join(' ');
    return [
      `raft sim, disk loss, ${label}: ${this.schedules} schedules, ${this.ticks} ticks, ${this.wipes} wipes, ${this.restarts} restarts, ` +
        `${this.leaders} leaders elected, ${this.votesPersisted} votes persisted`,
      `  election safety: ${this.doubleLeaderTerms} terms with two leaders in ${this.schedulesWithDoubleLeader} schedules ` +
        `(${((100 * this.schedulesWithDoubleLeader) / Math.max(1, this.schedules)).toFixed(1)}%), each explained by a wiped member's double vote; ${kinds}`,
      ...this.doubleLeaderPaths.map((p) => `  double leader: ${replayPath(p)}`),
      `  logs: ${this.forkedCommittedEntries} committed entries forked after a written disk was lost`,
      `  liveness: ${this.agreed} schedules agreed on one leader after the heal (mean ${(this.sumTicksToAgree / Math.max(1, this.agreed)).toFixed(1)} ticks, ` +
        `at most ${this.maxTicksToAgree}); ${this.stuck} stuck with two leaders of one term at the bound`,
      ...this.stuckPaths.map((p) => `  stuck double leader: ${replayPath(p)}`),
    ].join('\n');
  }
}

function checkDiskLoss(freshVoteDelay: boolean): DiskLossTotals {
  const label = `freshVoteDelayTicks=${freshVoteDelay ? '2×electionTick' : '0'}`;
  const test = `test/sim/property.test.ts -t '${freshVoteDelay ? 'disk loss keeps' : 'disk loss the same schedules'}'`;
  const replayAll = `RAFT_SIM_WIPE_SEED=${wipeSeed} RAFT_SIM_WIPE_RUNS=${wipeRuns} npx vitest run ${test}`;
  const replayPath = (p: string): string => `RAFT_SIM_WIPE_SEED=${wipeSeed} RAFT_SIM_WIPE_PATH=${p} npx vitest run ${test}`;
  console.log(`raft sim, disk loss, ${label}: fast-check seed ${wipeSeed}, ${wipePath ? `path ${wipePath}` : `${wipeRuns} runs`} (replay: ${replayAll})`);
  const totals = new DiskLossTotals();
  // Without shrinking, fast-check's path for run i is "i"; a replayed path starts there.
  let runIndex = wipePath ? Number(wipePath.split(':')[0]) : 0;
  const details = fc.check(
    fc.property(wipeScheduleArb(freshVoteDelay), (s) => {
      const runPath = String(runIndex++);
      if (wipePath !== undefined) console.log(`schedule: ${JSON.stringify(s)}`);
      totals.add(s, runSchedule(s, { allowWipedDoubleVotes: true, allowLostCommittedEntries: true }), runPath);
    }),
    // A path replays from that run on, for numRuns runs: one is the schedule asked for.
    { seed: wipeSeed, numRuns: wipePath !== undefined ? 1 : wipeRuns, ...(wipePath !== undefined ? { path: wipePath } : {}) },
  );
  if (details.failed) {
    const replay = replayPath(details.counterexamplePath ?? '');
    console.error(`raft sim, disk loss, ${label} FAILED: seed ${wipeSeed}, path ${details.counterexamplePath ?? '?'}\nreplay: ${replay}`);
    throw new Error(`${String(details.errorInstance)}\n${fc.defaultReportMessage(details) ?? 'property failed'}\nreplay: ${replay}`);
  }
  console.log(totals.report(label, replayPath));
  if (wipePath === undefined && wipeRuns >= 1000) {
    // Disk loss really happens, and wiped members really come back and take part.
    expect(totals.wipes).toBeGreaterThan(totals.schedules);
    expect(totals.leaders).toBeGreaterThan(2 * totals.schedules);
    expect(totals.agreed + totals.stuck).toBe(totals.schedules);
  }
  return totals;
}

describe('disk loss', () => {
  it(`keeps the per-disk invariants and liveness, and explains every double leader, over ${wipePath ? 'a replayed' : wipeRuns} schedules with freshVoteDelayTicks = 2 × electionTick`, () => {
    checkDiskLoss(true);
  }, 180_000);

  it(`the same schedules with freshVoteDelayTicks = 0 (what the delay buys)`, () => {
    checkDiskLoss(false);
  }, 180_000);
});
