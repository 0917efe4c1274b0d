import { afterEach, describe, expect, it } from 'vitest';
import { ProcessCluster, waitFor, type LeaderAnswer } from './harness.js';
import { assertSafe, sampleWhile } from './sampling.js';

let cluster: ProcessCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

/** Reads a /leader/watch stream into `events` until aborted. */
function watch(port: number): { events: LeaderAnswer[]; abort(): void; done: Promise<void> } {
  const controller = new AbortController();
  const events: LeaderAnswer[] = [];
  const done = (async () => {
    const res = await fetch(`http://127.0.0.1:${port}/leader/watch`, { signal: controller.signal });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block
          .split('\n')
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).trim())
          .join('\n');
        if (data) events.push(JSON.parse(data) as LeaderAnswer);
      }
    }
  })().catch((err: unknown) => {
    if ((err as Error).name !== 'AbortError') throw err;
  });
  return { events, abort: () => controller.abort(), done };
}

describe('the app API over three real processes', () => {
  it('every member agrees on leader and term; GET / answers like leader-elector; /metrics counts the change', async () => {
    cluster = await ProcessCluster.start({ size: 3 });
    const leader = await cluster.agreedLeader(10_000);
    for (const m of cluster.members) {
      const answer = await cluster.leader(m.id);
      expect(answer).toMatchObject({ leader: leader.self, term: leader.term, self: m.id, isLeader: m.id === leader.self });
      const compat = await fetch(`http://127.0.0.1:${m.httpPort}/`);
      expect(compat.headers.get('content-type')).toMatch(/^application\/json/);
      expect(await compat.json()).toEqual({ name: leader.self });
    }
    const metrics = await (await fetch(`http://127.0.0.1:${cluster.member(leader.self).httpPort}/metrics`)).text();
    expect(metrics).toMatch(/^raft_elector_is_leader 1$/m);
    expect(metrics).toMatch(/^raft_elector_has_leader 1$/m);
    expect(metrics).toMatch(new RegExp(`^raft_elector_term ${leader.term}$`, 'm'));
    expect(metrics).toMatch(/^raft_elector_leader_changes_seen_total [1-9]/m);
  });

  it('after the leader is killed, every survivor\'s watch stream delivers the new leader', async () => {
    cluster = await ProcessCluster.start({ size: 3 });
    const old = await cluster.agreedLeader(10_000);
    const survivors = cluster.members.filter((m) => m.id !== old.self);
    const streams = survivors.map((m) => ({ id: m.id, ...watch(m.httpPort) }));
    await waitFor('the initial watch events', 5_000, () => (streams.every((s) => s.events.length > 0) ? true : undefined));
    for (const s of streams) expect(s.events[0]).toMatchObject({ leader: old.self, term: old.term });
    await cluster.signal(old.self, 'SIGKILL');
    const next = await cluster.agreedLeader(10_000, survivors.map((m) => m.id));
    await waitFor('every stream to announce the new leader', 5_000, () =>
      streams.every((s) => s.events.some((e) => e.leader === next.self && e.term === next.term)) ? true : undefined,
    );
    for (const s of streams) {
      const terms = s.events.map((e) => e.term);
      expect(terms, `terms on ${s.id}'s stream only grow`).toEqual([...terms].sort((a, b) => a - b));
      s.abort();
      await s.done;
    }
  });

  it('at no sampled instant do two members answer isLeader: true, through kills, pauses and partitions', async () => {
    cluster = await ProcessCluster.start({ size: 3, proxied: true });
    const c = cluster;
    await c.agreedLeader(10_000);
    const { samples } = await sampleWhile(c, async () => {
      // 1. crash failover
      const first = await c.agreedLeader(10_000);
      await c.signal(first.self, 'SIGKILL');
      const second = await c.agreedLeader(10_000);
      c.spawn(c.member(first.self));
      await c.agreedLeader(10_000);
      // 2. the leader pauses past its lease and the election timeout, then resumes
      await c.signal(second.self, 'SIGSTOP');
      const others = c.members.map((m) => m.id).filter((id) => id !== second.self);
      await c.agreedLeader(10_000, others);
      await c.signal(second.self, 'SIGCONT');
      const third = await c.agreedLeader(10_000);
      // 3. the leader is partitioned from both followers while it keeps running
      c.isolate(third.self);
      const majority = c.members.map((m) => m.id).filter((id) => id !== third.self);
      const fourth = await c.agreedLeader(10_000, majority);
      expect(fourth.term).toBeGreaterThan(third.term);
      // The cut-off leader gave up isLeader on its own (its lease ran out).
      expect((await c.leader(third.self)).isLeader).toBe(false);
      c.isolate(third.self, false);
      return c.agreedLeader(10_000);
    });
    const claims = samples.filter((s) => s.answer.isLeader).length;
    console.log(`isLeader sampling: ${samples.length} samples, ${claims} isLeader answers`);
    expect(samples.length).toBeGreaterThan(300);
    assertSafe(samples);
  }, 120_000);
});
