/**
 * Poison frames against the built member (issue 9, finding 4): an authenticated peer sends
 * frames that break raft's invariants; the members drop them, say so once per peer and
 * reason, keep running and keep their leader. A huge but allowed term is adopted, and the
 * group elects above it within a bound once the sender is gone. A state file whose term has
 * no headroom stops the start with exit 2 and a recovery hint.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { STATE_FILE_NAME, serializeState } from '../../cluster/state-file.js';
import { makeMessage, MaxRestoredTerm, MaxTerm } from '../../raft/index.js';
import { ProcessCluster, waitFor } from './harness.js';
import { connectAsPeer } from './peer-client.js';
import { assertSafe, sampleWhile } from './sampling.js';

let cluster: ProcessCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

describe('poison frames from an authenticated peer', () => {
  it('are dropped and logged; the members keep running and keep their leader; a huge allowed term still elects', async () => {
    cluster = await ProcessCluster.start({ size: 3 });
    const c = cluster;
    await c.agreedLeader(15_000);
    // m1 goes away; the poison comes "from m1" (the smallest id dials the others).
    await c.signal('m1', 'SIGKILL');
    const before = await c.agreedLeader(15_000, ['m2', 'm3']);
    const secret = Buffer.from(readFileSync(c.secretFile, 'utf8').trim(), 'utf8');
    const peers = await Promise.all(
      ['m2', 'm3'].map((to) => connectAsPeer({ host: '127.0.0.1', port: c.member(to).peerPort, cluster: 'raft-elector', secret, from: 'm1', to, timing: { tickMs: 100, electionTicks: 10, maxClockDriftMs: 100 } })),
    );
    const { samples } = await sampleWhile(c, async () => {
      for (const [i, to] of ['m2', 'm3'].entries()) {
        const peer = peers[i]!;
        for (let n = 0; n < 5; n++) {
          peer.send(makeMessage({ type: 'MsgHeartbeat', from: 'm1', to, term: 0 }));
          peer.send(makeMessage({ type: 'MsgApp', from: 'm1', to, term: before.term, index: 1, logTerm: 1, entries: [{ index: 2, term: before.term + 9 }] }));
          peer.send(makeMessage({ type: 'MsgHeartbeat', from: 'm1', to, term: Number.MAX_SAFE_INTEGER }));
        }
      }
      await waitFor('both members to log the three refusals', 10_000, () =>
        ['m2', 'm3'].every((id) => c.logs(id, 'peer message refused by raft').length >= 3) ? true : undefined,
      );
      // Two election timeouts later the same leader still leads in the same term.
      await new Promise((r) => setTimeout(r, 2 * c.electionTicks * c.tickMs));
      return undefined;
    });
    assertSafe(samples);
    const after = await c.agreedLeader(5_000, ['m2', 'm3']);
    expect({ leader: after.self, term: after.term }).toEqual({ leader: before.self, term: before.term });
    for (const id of ['m2', 'm3']) {
      const reasons = c.logs(id, 'peer message refused by raft').map((l) => `${String(l.peer)}:${String(l.reason)}`);
      // Once per peer and reason per interval, not once per frame.
      expect(reasons.sort()).toEqual(['m1:log_term_above_term', 'm1:term_missing', 'm1:term_no_headroom']);
      expect(c.member(id).exits).toEqual([]);
    }

    // A huge but allowed term is adopted; once its sender is gone the group elects above it.
    const { samples: more, result } = await sampleWhile(c, async () => {
      for (const [i, to] of ['m2', 'm3'].entries()) peers[i]!.send(makeMessage({ type: 'MsgHeartbeat', from: 'm1', to, term: MaxTerm }));
      await new Promise((r) => setTimeout(r, 50));
      for (const p of peers) await p.close();
      const gone = Date.now();
      const next = await waitFor('a leader above the huge term', 30_000, async () => {
        const a = await c.agreedLeader(1_000, ['m2', 'm3']).catch(() => undefined);
        return a && a.term > MaxTerm ? a : undefined;
      });
      return { next, afterMs: Date.now() - gone };
    });
    assertSafe(more);
    console.log(`poison: ${result.next.self} leads term ${result.next.term} ${result.afterMs} ms after the sender left`);
    // The link close makes the followers forget the sender at once; the bound is two of the
    // longest randomized election timeouts (2 x electionTicks x tickMs), for a loaded machine.
    expect(result.afterMs).toBeLessThan(2 * 2 * c.electionTicks * c.tickMs);
  }, 120_000);

  it('a state file whose term has no headroom stops the start with exit 2 and says how to recover', async () => {
    cluster = await ProcessCluster.start({ size: 3 });
    const c = cluster;
    await c.agreedLeader(15_000);
    await c.signal('m3', 'SIGKILL');
    const m3 = c.member('m3');
    writeFileSync(
      join(m3.dataDir, STATE_FILE_NAME),
      serializeState({ hardState: { term: MaxRestoredTerm + 1, vote: '', commit: 0 }, snapshot: { index: 0, term: 0 }, entries: [] }),
    );
    const child = c.spawn(m3);
    const exit = await new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    expect(exit).toBe(2);
    const fatal = c.logs('m3', 'member cannot start');
    expect(fatal.at(-1)).toMatchObject({ code: 'STATE_TERM_NO_HEADROOM' });
    expect(String(fatal.at(-1)!.err)).toMatch(/deleting every member's state file/);
    expect(m3.lines.some((l) => l.includes('    at '))).toBe(false); // no stack trace
  }, 60_000);
});
