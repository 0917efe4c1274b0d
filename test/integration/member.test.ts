import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ProcessCluster, waitFor } from './harness.js';
import { assertSafe, sampleWhile } from './sampling.js';

let cluster: ProcessCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

describe('a cluster of real processes on loopback', () => {
  it.each([3, 5])('a %i-member cluster elects exactly one leader that every member names', async (size) => {
    cluster = await ProcessCluster.start({ size });
    const leader = await cluster.agreedLeader(10_000);
    const answers = await Promise.all(cluster.members.map((m) => cluster!.leader(m.id)));
    expect(answers.filter((a) => a.isLeader).map((a) => a.self)).toEqual([leader.self]);
    expect(new Set(answers.map((a) => a.term)).size).toBe(1);
    expect(leader.members.map((m) => m.id)).toEqual(cluster.members.map((m) => m.id));
    expect(leader.members.every((m) => m.connected)).toBe(true);
  });

  it('SIGKILL of the leader gives a new leader in a higher term', async () => {
    cluster = await ProcessCluster.start({ size: 3 });
    const old = await cluster.agreedLeader(10_000);
    const { samples } = await sampleWhile(cluster, async () => {
      await cluster!.signal(old.self, 'SIGKILL');
      return cluster!.agreedLeader(10_000);
    });
    const next = await cluster.agreedLeader(1_000);
    expect(next.self).not.toBe(old.self);
    expect(next.term).toBeGreaterThan(old.term);
    assertSafe(samples);
  });

  it.each(['SIGTERM', 'SIGINT'] as const)('%s of the leader hands over through TransferLeadership and exits 0', async (signal) => {
    cluster = await ProcessCluster.start({ size: 3 });
    const old = await cluster.agreedLeader(10_000);
    const { result: exit, samples } = await sampleWhile(cluster, () => cluster!.signal(old.self, signal));
    expect(exit).toEqual({ code: 0, signal: null });
    const handedOver = cluster.logs(old.self, 'handed leadership over');
    expect(handedOver).toHaveLength(1);
    const next = await cluster.agreedLeader(5_000);
    expect(next.self).toBe(handedOver[0]!.leader);
    expect(next.term).toBe(old.term + 1);
    // The successor campaigned on MsgTimeoutNow (a transfer election), not after a timeout.
    const metrics = await (await fetch(`http://127.0.0.1:${cluster.member(next.self).httpPort}/metrics`)).text();
    expect(metrics).toMatch(/raft_elector_elections_started_total\{kind="transfer"\} 1/);
    assertSafe(samples);
  });

  it('SIGSTOP of the leader past the election timeout, then SIGCONT, never shows two leaders', async () => {
    cluster = await ProcessCluster.start({ size: 3 });
    const old = await cluster.agreedLeader(10_000);
    const others = cluster.members.map((m) => m.id).filter((id) => id !== old.self);
    const { samples } = await sampleWhile(cluster, async () => {
      await cluster!.signal(old.self, 'SIGSTOP');
      const next = await cluster!.agreedLeader(10_000, others);
      await cluster!.signal(old.self, 'SIGCONT');
      // The resumed member learns the new term and follows.
      await waitFor('the paused member to follow the new leader', 5_000, async () => {
        const a = await cluster!.leader(old.self);
        return a.leader === next.self && a.term === next.term ? a : undefined;
      });
      return next;
    });
    expect(samples.length).toBeGreaterThan(100);
    assertSafe(samples);
  });

  it('a member restarted with its data dir rejoins without raising the term (PreVote)', async () => {
    cluster = await ProcessCluster.start({ size: 3 });
    const leader = await cluster.agreedLeader(10_000);
    const follower = cluster.members.find((m) => m.id !== leader.self)!;
    await cluster.signal(follower.id, 'SIGKILL');
    // Let the restarted member time out on its own at least once while it is away.
    await new Promise((r) => setTimeout(r, cluster!.tickMs * cluster!.electionTicks));
    cluster.spawn(follower);
    const rejoined = await waitFor('the restarted member to follow the leader', 10_000, async () => {
      const a = await cluster!.leader(follower.id);
      return a.leader === leader.self ? a : undefined;
    });
    expect(rejoined.term).toBe(leader.term);
    expect((await cluster.leader(leader.self)).term).toBe(leader.term);
    expect(cluster.logs(follower.id, 'member starting from its state file')).toHaveLength(1);
  });

  it('a peer with the wrong secret is refused, and the refusal is logged naming it', async () => {
    cluster = await ProcessCluster.start({ size: 3 });
    await cluster.agreedLeader(10_000);
    const intruder = cluster.members.find((m) => m.id === 'm3')!;
    await cluster.signal('m3', 'SIGKILL');
    const wrongSecret = join(cluster.dir, 'wrong-secret');
    writeFileSync(wrongSecret, 'this-is-not-the-shared-secret-at-all', { mode: 0o600 });
    cluster.spawn(intruder, ['--secret-file', wrongSecret]);
    const refusal = await waitFor('a logged refusal of m3', 10_000, () => {
      const lines = [...cluster!.member('m1').lines, ...cluster!.member('m2').lines]
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => l.peer === 'm3' && /wrong_secret/.test(String(l.reason)));
      return lines.length > 0 ? lines : undefined;
    });
    expect(refusal[0]!.level).toBe(40);
    // The intruder's side names the member whose proof it could not verify, as the id it claimed (unproven).
    expect(
      cluster.member('m3').lines.some((l) => l.includes('"reason":"wrong_secret"') && /"claimedId":"m[12]"/.test(l)),
    ).toBe(true);
    const answer = await cluster.leader('m3');
    expect(answer.leader).toBeNull();
    expect(answer.members.filter((m) => m.id !== 'm3').every((m) => !m.connected)).toBe(true);
  });
});
