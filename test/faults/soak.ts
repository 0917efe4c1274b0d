/**
 * The long fault run (`npm run soak -- --minutes N`): seeded rounds back to back until the
 * time is up, one line per round and a summary. Not part of `npm test` (its config,
 * test/faults/vitest.soak.config.ts, is the only one that includes this file).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { netnsUnavailable } from './netns.js';
import { replayHint, runFaults, summarize, type RunResult } from './run.js';

const minutes = Number(process.env.FAULTS_SOAK_MINUTES ?? 10);
const roundBudgetMs = Number(process.env.FAULTS_BUDGET_MS ?? 40_000);
const size = Number(process.env.FAULTS_MEMBERS ?? 5);
const firstSeed = Number(process.env.FAULTS_SEEDS ?? Date.now() % 1_000_000);
// In-cluster members with pods added and deleted: `size` slots, three pods at the start.
const membership = process.env.FAULTS_MEMBERSHIP === '1' ? { initialPods: 3 } : undefined;
const unavailable = netnsUnavailable();
if (unavailable) process.stdout.write(`faults soak: skipped: ${unavailable}\n`);
const results: RunResult[] = [];

afterAll(() => {
  if (results.length > 0) process.stdout.write(`${summarize(results)}\n`);
});

describe.skipIf(unavailable !== undefined)(`fault soak, ${minutes} min`, () => {
  it('keeps every invariant round after round', { timeout: (minutes * 60 + 300) * 1000 }, async () => {
    const end = Date.now() + minutes * 60_000;
    for (let seed = firstSeed; Date.now() < end; seed++) {
      const r = await runFaults({ seed, budgetMs: roundBudgetMs, size, ...(membership ? { membership } : {}) });
      results.push(r);
      if (r.verdict.violationCount > 0) process.stdout.write(`${replayHint(seed, roundBudgetMs, size, membership !== undefined)}\n`);
    }
    expect(results.filter((r) => r.verdict.violationCount > 0).map((r) => r.line)).toEqual([]);
  });
});
