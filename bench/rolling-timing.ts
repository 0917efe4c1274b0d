/**
 * A rolling change of timing settings on a three-member group of real processes on loopback:
 * one member at a time is stopped (SIGTERM: a leader hands over first) and started again with
 * the new flags, as a StatefulSet rolls from the highest ordinal down; then the same back.
 * Every member's /leader is sampled every few ms throughout. Prints the isLeader overlaps
 * (must be 0) and the longest time without any isLeader, and the ratio of that gap to the
 * same roll with unchanged timing, measured in the same run (the anchor).
 */
import { performance } from 'node:perf_hooks';
import type { LeaderAnswer } from '../test/integration/harness.js';
import { ProcessCluster } from '../test/integration/harness.js';

const From = (process.env.ROLL_FROM_FLAGS ?? '--tick-ms 100 --election-ticks 10 --max-clock-drift-ms 100').split(' ');
const To = (process.env.ROLL_TO_FLAGS ?? '--tick-ms 50 --election-ticks 20 --max-clock-drift-ms 150').split(' ');
const SampleEveryMs = 3;
/** After a member is back and the group agrees, before the next member rolls (a readiness gate). */
const SettleMs = Number(process.env.ROLL_SETTLE_MS ?? 2_000);

interface Sample {
  sentMs: number;
  receivedMs: number;
  answer: LeaderAnswer;
}

interface RollResult {
  samples: number;
  claims: number;
  overlaps: number;
  longestGapMs: number;
  durationMs: number;
}

/** Two isLeader answers from different members whose request windows overlap: both could hold at once. */
function countOverlaps(samples: Sample[]): number {
  const claims = samples.filter((s) => s.answer.isLeader).sort((a, b) => a.sentMs - b.sentMs);
  let overlaps = 0;
  for (let i = 0; i < claims.length; i++) {
    for (let j = i + 1; j < claims.length && claims[j]!.sentMs <= claims[i]!.receivedMs; j++) {
      if (claims[i]!.answer.self !== claims[j]!.answer.self) overlaps++;
    }
  }
  return overlaps;
}

/** The longest stretch between two isLeader answers (by response time), bracketed by the run. */
function longestGapMs(samples: Sample[], startMs: number, endMs: number): number {
  const times = samples.filter((s) => s.answer.isLeader).map((s) => s.receivedMs).sort((a, b) => a - b);
  let last = startMs;
  let longest = 0;
  for (const t of [...times, endMs]) {
    longest = Math.max(longest, t - last);
    last = t;
  }
  return longest;
}

async function roll(c: ProcessCluster, legs: string[][]): Promise<RollResult> {
  const samples: Sample[] = [];
  let done = false;
  const loops = c.members.map(async (m) => {
    while (!done) {
      if (m.child) {
        const sentMs = performance.now();
        try {
          const answer = await c.leader(m.id, 2_000);
          samples.push({ sentMs, receivedMs: performance.now(), answer });
        } catch {
          // stopping or starting: no answer is no claim
        }
      }
      await new Promise((r) => setTimeout(r, SampleEveryMs));
    }
  });
  await c.agreedLeader(15_000);
  const startMs = performance.now();
  for (const flags of legs) {
    for (const m of [...c.members].reverse()) {
      await c.signal(m.id, 'SIGTERM');
      c.spawn(m, flags);
      await c.agreedLeader(20_000, c.members.map((x) => x.id));
      await new Promise((r) => setTimeout(r, SettleMs));
    }
  }
  const endMs = performance.now();
  done = true;
  await Promise.all(loops);
  const inRun = samples.filter((s) => s.sentMs >= startMs && s.receivedMs <= endMs);
  return {
    samples: inRun.length,
    claims: inRun.filter((s) => s.answer.isLeader).length,
    overlaps: countOverlaps(inRun),
    longestGapMs: longestGapMs(inRun, startMs, endMs),
    durationMs: endMs - startMs,
  };
}

function report(name: string, r: RollResult): void {
  console.log(
    `${name}: ${(r.durationMs / 1000).toFixed(1)} s, ${r.samples} samples, ${r.claims} isLeader answers, ` +
      `isLeader overlaps ${r.overlaps} (must be 0), longest time without any isLeader ${r.longestGapMs.toFixed(0)} ms`,
  );
}

async function main(): Promise<void> {
  console.log(`rolling-timing: 3 members on loopback, sampling every member every ${SampleEveryMs} ms`);
  console.log(`  from: ${From.join(' ')}`);
  console.log(`  to:   ${To.join(' ')}`);
  const results: { name: string; r: RollResult }[] = [];
  for (const [name, legs] of [
    ['anchor: the same roll with unchanged timing', [From, From]],
    ['roll to the new timing and back', [To, From]],
  ] as const) {
    const c = await ProcessCluster.start({ size: 3, args: From });
    try {
      const r = await roll(c, legs as unknown as string[][]);
      report(name, r);
      results.push({ name, r });
    } finally {
      await c.stop();
    }
  }
  const [anchor, mixed] = [results[0]!.r, results[1]!.r];
  console.log(`  longest gap ratio (mixed / anchor): ${(mixed.longestGapMs / Math.max(anchor.longestGapMs, 1)).toFixed(2)}`);
  if (mixed.overlaps + anchor.overlaps > 0) {
    console.log('  FAILED: two members answered isLeader at once');
    process.exitCode = 1;
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
