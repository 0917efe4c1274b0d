/**
 * Issue 9, finding 2, against the built member: m2 and m3 tick every 20 ms, the leader m1 every
 * 100 ms; m1's links are cut through the relay. Every member's /leader is sampled every few ms:
 * no two isLeader answers may overlap, and m2 or m3 takes over.
 * The leader knows its followers' windows from the timing each member announces in the
 * authenticated handshake.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ProcessCluster, waitFor } from './harness.js';
import { assertSafe, sampleWhile } from './sampling.js';

let cluster: ProcessCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

describe('a group with mixed timing settings', () => {
  it('m2, m3 at --tick-ms 20 and leader m1 at 100, m1 cut off: no isLeader overlap', async () => {
    cluster = await ProcessCluster.start({ size: 3, proxied: true });
    const c = cluster;
    // Make m1 lead: a SIGTERMed leader hands over to the most up-to-date follower, ties to the smaller id.
    for (let i = 0; i < 5; i++) {
      const leader = await c.agreedLeader(15_000);
      if (leader.self === 'm1') break;
      await c.signal(leader.self, 'SIGTERM');
      c.spawn(c.member(leader.self));
    }
    expect((await c.agreedLeader(15_000)).self).toBe('m1');
    // Roll the followers to 20 ms ticks (a follower's SIGTERM moves no leadership).
    for (const id of ['m2', 'm3']) {
      await c.signal(id, 'SIGTERM');
      c.spawn(c.member(id), ['--tick-ms', '20']);
      await c.agreedLeader(15_000);
    }
    expect((await c.agreedLeader(5_000)).self).toBe('m1');
    const { samples, result } = await sampleWhile(c, async () => {
      await new Promise((r) => setTimeout(r, 300));
      c.isolate('m1');
      return waitFor('m2 or m3 to claim isLeader', 15_000, async () => {
        const answers = await Promise.all(['m2', 'm3'].map((id) => c.leader(id).catch(() => undefined)));
        return answers.find((a) => a?.isLeader);
      });
    });
    assertSafe(samples);
    expect(['m2', 'm3']).toContain(result.self);
    console.log(`mixed timing: ${samples.length} samples, ${samples.filter((s) => s.answer.isLeader).length} isLeader answers, no overlap`);
  }, 120_000);
});
