/**
 * A secret holder that is not the leader sends MsgTimeoutNow to a follower. A transfer
 * campaign's votes skip the voters' lease (only a leader that gave its lease up may start
 * one), so honoring it from anyone lets honest voters elect the target while the leader,
 * cut from the target only, still holds its lease: two members answer isLeader at once.
 * Five real members; the forger takes the id of a stopped voter. Whether the two claims
 * overlap here depends on timing (test/sim/hostile-transfer.test.ts forces it); that the
 * target starts no election does not.
 */
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { makeMessage } from '../../raft/index.js';
import { ProcessCluster, waitFor, type Relay } from './harness.js';
import { connectAsPeer } from './peer-client.js';
import { assertSafe, sampleWhile } from './sampling.js';

let cluster: ProcessCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const timing = { tickMs: 100, electionTicks: 10, maxClockDriftMs: 100 };

function cutBetween(c: ProcessCluster, a: string, b: string): void {
  // The harness only isolates whole members; one link is enough here.
  const proxies = (c as unknown as { proxies: Map<string, Relay> }).proxies;
  for (const key of [`${a}->${b}`, `${b}->${a}`]) proxies.get(key)?.cut();
}

async function counter(c: ProcessCluster, id: string, name: string, label: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${c.member(id).httpPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name) && l.includes(label));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('a forged MsgTimeoutNow from a member that does not lead', () => {
  it('starts no election, and never gives two isLeader at once', async () => {
    // No forget-on-disconnect: the cut link alone must not make the target campaign.
    cluster = await ProcessCluster.start({ size: 5, proxied: true, args: ['--no-forget-on-disconnect'] });
    const c = cluster;
    await c.agreedLeader(20_000);
    await c.signal('m1', 'SIGKILL');
    const leader = await c.agreedLeader(20_000, ['m2', 'm3', 'm4', 'm5']);
    const target = ['m2', 'm3', 'm4', 'm5'].find((id) => id !== leader.self)!;
    const secret = readFileSync(c.secretFile, 'utf8').trim();
    const peer = await connectAsPeer({ host: '127.0.0.1', port: c.member(target).peerPort, cluster: 'raft-elector', secret, from: 'm1', to: target, timing });
    try {
      const { samples } = await sampleWhile(c, async () => {
        await new Promise((r) => setTimeout(r, 200));
        cutBetween(c, leader.self, target);
        peer.send(makeMessage({ type: 'MsgTimeoutNow', from: 'm1', to: target, term: leader.term }));
        // Long enough for the forged campaign to win and claim (a few ms on loopback), short of an election timeout.
        await new Promise((r) => setTimeout(r, 600));
      });
      const claims = samples.filter((s) => s.answer.isLeader);
      console.log(`forged MsgTimeoutNow to ${target} (leader ${leader.self}): ${samples.length} samples, isLeader from ${[...new Set(claims.map((s) => s.answer.self))].join(',')}`);
      assertSafe(samples);
      expect(await counter(c, target, 'raft_elector_elections_started_total', 'kind="transfer"')).toBe(0);
    } finally {
      await peer.close();
    }
    // The cut link alone leaves the group its leader.
    await waitFor('the leader to stay', 5_000, async () => ((await c.leader(leader.self)).isLeader ? true : undefined));
  }, 120_000);
});
