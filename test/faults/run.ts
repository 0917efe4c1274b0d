/**
 * One fault run: start a namespaced cluster, let it elect, play the seeded schedule, heal
 * everything, watch it converge, and judge the history. Prints the schedule as it goes and
 * one summary line at the end.
 */
import { check, ConvergenceElectionTimeouts, type FaultRecord, type History, type Verdict } from './checker.js';
import { NsCluster, nowMs } from './cluster.js';
import { cleanStale } from './netns.js';
import { applyMemberAction, describeStep, inject, prng, schedule, type MemberActionKind, type NemesisKind } from './nemesis.js';

export interface RunOptions {
  seed: number;
  size?: number;
  tickMs?: number;
  electionTicks?: number;
  /** Time for the faulty part of the run. */
  budgetMs?: number;
  kinds?: readonly NemesisKind[];
  env?: Record<string, string>;
  /** Skew every member's clock rate from the seed, within the drift bound (default on). */
  clockSkew?: boolean;
  /**
   * In-cluster members against the test API server, with pods added and deleted during the
   * faults: `size` slots, pods in the first `initialPods` (default 3).
   */
  membership?: { initialPods?: number; kinds?: readonly MemberActionKind[]; preStopMs?: number };
  log?: (line: string) => void;
}

export interface RunResult {
  seed: number;
  verdict: Verdict;
  line: string;
  elapsedMs: number;
  history: History;
  /** Recent log lines per member, for a failing run's report. */
  tails: Record<string, string[]>;
  /** In-cluster runs: each membership change made, as logged. */
  memberChanges: string[];
}

/** The member's --max-clock-drift-ms default; the harness does not change it. */
const MaxClockDriftMs = 100;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The schedule depends on the seed and the budget, so both are in the hint. */
export function replayHint(seed: number, budgetMs: number, size: number, membership = false): string {
  if (membership) return `replay: FAULTS_MEMBERSHIP_SEEDS=${seed} FAULTS_MEMBERSHIP_BUDGET_MS=${budgetMs} FAULTS_SLOTS=${size} npx vitest run test/faults/membership.test.ts`;
  return `replay: FAULTS_SEEDS=${seed} FAULTS_BUDGET_MS=${budgetMs} FAULTS_MEMBERS=${size} npx vitest run test/faults/faults.test.ts`;
}

export async function runFaults(o: RunOptions): Promise<RunResult> {
  const log = o.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const started = nowMs();
  const size = o.size ?? 3;
  const tickMs = o.tickMs ?? 100;
  const electionTicks = o.electionTicks ?? 10;
  const et = tickMs * electionTicks;
  for (const ns of cleanStale()) log(`faults: removed stale namespace ${ns}`);
  const budgetMs = o.budgetMs ?? 25_000;
  const membership = o.membership !== undefined;
  const steps = schedule({
    seed: o.seed,
    size,
    budgetMs,
    electionTimeoutMs: et,
    ...(o.kinds ? { kinds: o.kinds } : {}),
    membership,
    ...(o.membership?.kinds ? { memberKinds: o.membership.kinds } : {}),
    ...(o.membership?.preStopMs !== undefined ? { memberPreStopMs: o.membership.preStopMs } : {}),
  });
  // Rates in [1 - s, 1 + s]: two members drift apart by at most 2s of an election timeout,
  // 80 ms at the defaults, inside the 100 ms --max-clock-drift-ms default.
  const skew = (0.4 * MaxClockDriftMs) / et;
  const rateOf = prng(o.seed ^ 0x5eed);
  const clockRates = o.clockSkew === false ? undefined : Array.from({ length: size }, () => 1 - skew + 2 * skew * rateOf());
  log(`faults seed ${o.seed}: ${steps.length} steps (${replayHint(o.seed, budgetMs, size, membership)})${clockRates ? `, clock rates ${clockRates.map((r) => r.toFixed(4)).join(' ')}` : ''}`);
  const c = new NsCluster({
    size,
    tickMs,
    electionTicks,
    ...(o.env ? { env: o.env } : {}),
    ...(clockRates ? { clockRates } : {}),
    ...(membership ? { kube: { initialPods: o.membership?.initialPods ?? 3 } } : {}),
  });
  let generation = 0;
  const memberChanges: string[] = [];
  const faults: FaultRecord[] = [];
  let healedMs = 0;
  let convergeMembers: string[];
  // When each phase ended, for the time-per-seed figures.
  const phases: Record<string, number> = {};
  try {
    await c.start();
    phases.setUp = nowMs();
    // In-cluster the group forms through bootstrap and the reconciler: one voter, then the others join.
    await until(() => c.agreedSince(0), (membership ? 30 : 10) * et);
    phases.elected = nowMs();
    for (const [i, step] of steps.entries()) {
      const startMs = nowMs();
      const { detail, heal } = await inject(c, step);
      log(`  step ${i + 1}: ${describeStep(step)}: ${detail}`);
      const change = step.member;
      const changed = change
        ? sleep(change.delayMs)
            .then(() => applyMemberAction(c, change, () => ++generation))
            .then((what) => {
              memberChanges.push(what);
              log(`  step ${i + 1} membership: ${what}`);
            })
        : Promise.resolve();
      await Promise.all([sleep(step.holdMs), changed]);
      await heal();
      faults.push({ kind: step.kind, detail, startMs, endMs: nowMs() });
      await sleep(step.restMs);
    }
    // Everything healed and running: the convergence clock starts once every process answers
    // (a restarted process takes seconds to boot on a busy machine; that is not the election's time).
    c.net.healAll();
    const restartedMs = nowMs();
    for (const m of c.members) {
      c.resume(m);
      c.restart(m, false);
    }
    // Convergence is judged among the members running now (in-cluster, empty slots stay empty).
    convergeMembers = c.running().map((m) => m.id);
    await until(() => c.allAnsweredSince(restartedMs), 30_000);
    healedMs = nowMs();
    phases.faults = healedMs;
    await until(() => c.agreedSince(healedMs), ConvergenceElectionTimeouts * et + 2_000);
    await sleep(3 * (o.tickMs ?? 100));
    await c.stopSampling();
  } finally {
    phases.checked = nowMs();
    await c.stop();
    phases.stopped = nowMs();
  }
  const history: History = {
    members: convergeMembers,
    electionTimeoutMs: et,
    samples: c.samples,
    lives: c.lives,
    roles: c.roles,
    votes: c.votes,
    ...(membership ? { configs: c.configs } : {}),
    faults,
    healedMs,
    endMs: nowMs(),
  };
  const verdict = check(history);
  const elapsedMs = nowMs() - started;
  const kinds = Object.entries(verdict.worstNoLeaderByKindMs)
    .map(([k, v]) => `${k}=${Math.round(v)}`)
    .join(' ');
  const line =
    `faults seed=${o.seed} faults=${verdict.faultsInjected} leader-changes=${verdict.leaderChanges} violations=${verdict.violationCount} ` +
    `worst-no-leader-ms=${Math.round(verdict.worstNoLeaderMs)} converged-ms=${verdict.convergedAfterMs === null ? 'never' : Math.round(verdict.convergedAfterMs)} ` +
    `samples=${c.samples.length} elapsed-s=${(elapsedMs / 1000).toFixed(1)} (${phaseTimes(started, phases)})` +
    (membership ? ` member-changes=${memberChanges.length} configs=${new Set(c.configs.flatMap((r) => r.configs.map((x) => x.index))).size} pods-at-heal=${convergeMembers.length}` : '') +
    (c.droppedRecords ? ` records-dropped=${c.droppedRecords}` : '') +
    ` | by kind: ${kinds}`;
  log(line);
  for (const v of verdict.violations) log(`  VIOLATION ${v.kind}: ${v.message}`);
  for (const e of c.configErrors) log(`  configuration did not apply: ${e}`);
  const tails = Object.fromEntries(c.members.map((m) => [m.id, m.lines.slice(-30)]));
  return { seed: o.seed, verdict, line, elapsedMs, history, tails, memberChanges };
}

function phaseTimes(startMs: number, phases: Record<string, number>): string {
  let last = startMs;
  const out: string[] = [];
  for (const name of ['setUp', 'elected', 'faults', 'checked', 'stopped']) {
    const at = phases[name];
    if (at === undefined) continue;
    out.push(`${name} ${((at - last) / 1000).toFixed(1)}`);
    last = at;
  }
  return out.join(', ');
}

async function until(probe: () => boolean, deadlineMs: number): Promise<boolean> {
  const end = nowMs() + deadlineMs;
  while (nowMs() < end) {
    if (probe()) return true;
    await sleep(20);
  }
  return false;
}

/** One line over many runs: totals, the worst leaderless stretch per fault kind, time per run. */
export function summarize(results: RunResult[]): string {
  const byKind: Record<string, number> = {};
  for (const r of results) {
    for (const [k, v] of Object.entries(r.verdict.worstNoLeaderByKindMs)) byKind[k] = Math.max(byKind[k] ?? 0, v);
  }
  const times = results.map((r) => r.elapsedMs / 1000).sort((a, b) => a - b);
  const sum = (f: (r: RunResult) => number): number => results.reduce((a, r) => a + f(r), 0);
  const kinds = Object.keys(byKind)
    .sort()
    .map((k) => `${k}=${Math.round(byKind[k]!)}`)
    .join(' ');
  return (
    `faults summary: runs=${results.length} faults=${sum((r) => r.verdict.faultsInjected)} leader-changes=${sum((r) => r.verdict.leaderChanges)} ` +
    `violations=${sum((r) => r.verdict.violationCount)} seconds-per-run p50=${(times[Math.floor(times.length / 2)] ?? 0).toFixed(1)} ` +
    `max=${(times[times.length - 1] ?? 0).toFixed(1)} | worst-no-leader-ms by kind: ${kinds}` +
    (results.some((r) => r.verdict.violationCount > 0) ? ` | failing seeds: ${results.filter((r) => r.verdict.violationCount > 0).map((r) => r.seed).join(',')}` : '')
  );
}
