import { performance } from 'node:perf_hooks';
import { expect } from 'vitest';
import type { LeaderAnswer, ProcessCluster } from './harness.js';

export interface Sample {
  /** Test-process monotonic times bracketing the request: the answer held at some instant in between. */
  sentMs: number;
  receivedMs: number;
  answer: LeaderAnswer;
}

/**
 * Samples every member's /leader on its own loop, about every 10 ms, while `during` runs.
 * A paused member simply answers late; its samples still count once they arrive.
 */
export async function sampleWhile<T>(c: ProcessCluster, during: () => Promise<T>): Promise<{ result: T; samples: Sample[] }> {
  const samples: Sample[] = [];
  let done = false;
  const loops = c.members.map(async (m) => {
    while (!done) {
      const sentMs = performance.now();
      if (m.child) {
        try {
          const answer = await c.leader(m.id, 5_000);
          samples.push({ sentMs, receivedMs: performance.now(), answer });
        } catch {
          // down or restarting: no answer is not a claim
        }
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  });
  try {
    const result = await during();
    return { result, samples };
  } finally {
    done = true;
    await Promise.all(loops);
  }
}

/**
 * Two isLeader answers from different members whose request windows overlap could have
 * held at the same instant: that is the violation. Also no two members lead one term.
 */
export function assertSafe(samples: Sample[]): void {
  const claims = samples.filter((s) => s.answer.isLeader).sort((a, b) => a.sentMs - b.sentMs);
  for (let i = 0; i < claims.length; i++) {
    for (let j = i + 1; j < claims.length && claims[j]!.sentMs <= claims[i]!.receivedMs; j++) {
      const a = claims[i]!;
      const b = claims[j]!;
      expect(a.answer.self === b.answer.self, `${a.answer.self} and ${b.answer.self} both answered isLeader at once`).toBe(true);
    }
  }
  const leaderOfTerm = new Map<number, string>();
  for (const s of samples) {
    if (s.answer.leader !== s.answer.self) continue;
    const seen = leaderOfTerm.get(s.answer.term);
    expect(seen ?? s.answer.self, `two leaders in term ${s.answer.term}`).toBe(s.answer.self);
    leaderOfTerm.set(s.answer.term, s.answer.self);
  }
}

