import { describe, expect, it } from 'vitest';
import { netnsUnavailable } from './netns.js';
import { replayHint, runFaults } from './run.js';

const unavailable = netnsUnavailable();
if (unavailable) process.stdout.write(`faults: skipped: ${unavailable}\n`);

/** FAULTS_SEEDS=1,2,3 replays given seeds; otherwise three fresh ones, printed. */
function seeds(): number[] {
  const given = process.env.FAULTS_SEEDS;
  if (given) return given.split(',').map((s) => Number(s.trim()));
  const base = Date.now() % 1_000_000;
  return [base, base + 1, base + 2];
}

const budgetMs = Number(process.env.FAULTS_BUDGET_MS ?? 25_000);

describe.skipIf(unavailable !== undefined)('real network faults in namespaces', () => {
  for (const seed of seeds()) {
    it(`seed ${seed}: 0 violations`, { timeout: budgetMs + 90_000 }, async () => {
      const r = await runFaults({ seed, budgetMs });
      expect(r.verdict.violations, `${r.line}\n${replayHint(seed)}`).toEqual([]);
    });
  }
});
