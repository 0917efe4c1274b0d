import { afterAll, describe, expect, it } from 'vitest';
import { netnsUnavailable } from './netns.js';
import { replayHint, runFaults, summarize, type RunResult } from './run.js';

const unavailable = netnsUnavailable();
if (unavailable) process.stdout.write(`faults membership: skipped: ${unavailable}\n`);

/** FAULTS_MEMBERSHIP_SEEDS=1,2 replays given seeds; otherwise one fresh one, printed. */
function seeds(): number[] {
  const given = process.env.FAULTS_MEMBERSHIP_SEEDS;
  if (given) return given.split(',').map((s) => Number(s.trim()));
  return [Date.now() % 1_000_000];
}

// One seed in npm test: five slots (three pods at the start), 30 to 65 s on a busy machine.
const budgetMs = Number(process.env.FAULTS_MEMBERSHIP_BUDGET_MS ?? 20_000);
const size = Number(process.env.FAULTS_SLOTS ?? 5);
const results: RunResult[] = [];

afterAll(() => {
  if (results.length > 0) process.stdout.write(`${summarize(results)}\n`);
});

describe.skipIf(unavailable !== undefined)('pods added and deleted during real network faults (in-cluster members, test API server)', () => {
  for (const seed of seeds()) {
    it(`seed ${seed}: 0 violations`, { timeout: budgetMs + 120_000 }, async () => {
      const r = await runFaults({ seed, budgetMs, size, membership: { initialPods: 3 } });
      results.push(r);
      expect(r.verdict.violations, `${r.line}\n${replayHint(seed, budgetMs, size, true)}`).toEqual([]);
      // A real history: leaders, votes on disk, committed configuration changes, membership changes made.
      expect(r.history.roles.some((e) => e.role === 'Leader')).toBe(true);
      expect(r.history.votes.some((v) => v.source === 'state-file' && v.vote !== '')).toBe(true);
      expect(new Set(r.history.configs?.flatMap((c) => c.configs.map((x) => x.index))).size).toBeGreaterThan(2);
      expect(r.memberChanges.length).toBeGreaterThan(0);
    });
  }
});

// A broken build for the removal rule: /leader keeps answering isLeader 4 s past the lease
// (the test-only switch), and the leader's pod is deleted with a 3 s preStop, so the old leader
// runs on after the new leader removed it. About 35 s: run with FAULTS_MEMBERSHIP_BROKEN=1
// (npm test keeps to one membership seed; the checker's own tests cover the rule every run).
const broken = process.env.FAULTS_MEMBERSHIP_BROKEN === '1';
describe.skipIf(unavailable !== undefined || !broken)('the checker against a build whose removed leader answers isLeader', () => {
  it('reports a removed member answering isLeader', { timeout: 150_000 }, async () => {
    const seed = Number(process.env.FAULTS_BROKEN_SEED ?? 13);
    const r = await runFaults({
      seed,
      budgetMs: 8_000,
      size,
      kinds: ['lossy'],
      membership: { initialPods: 3, kinds: ['delete-leader'], preStopMs: 3_000 },
      env: { RAFT_ELECTOR_TEST_RUN: '1', RAFT_ELECTOR_TEST_UNSAFE: 'lease-overrun:4000' },
    });
    const kinds = r.verdict.violations.map((v) => v.kind);
    expect(kinds, r.line).toContain('removed-isLeader');
    // The broken view is only the API's: raft and its configurations stay safe.
    expect(kinds.filter((k) => k !== 'removed-isLeader' && k !== 'overlapping-isLeader'), r.line).toEqual([]);
  });
});
