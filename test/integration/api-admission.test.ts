/**
 * Issue 9, findings 5 and 6 (the app-API half), against real servers on loopback:
 * strangers (127.0.0.2, outside --api-local-cidrs 127.0.0.1/32) flood the API, and
 * the app (127.0.0.1) must still get its watch stream, its long-poll and its
 * answers; the refusals must be counted and logged once per interval; silent
 * sockets must be capped and closed. Every loop is bounded, every socket is closed.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeMember } from '../../api/fake-member.js';
import { ElectorMetrics } from '../../api/metrics.js';
import type { ApiOptions } from '../../api/options.js';
import { createApiServer, type ApiServer } from '../../api/server.js';
import { rawGet, rawSocket, sample, silentSockets, type RawExchange } from '../harness/raw-http.js';
import { ProcessCluster, waitFor } from './harness.js';

const Local = '127.0.0.1';
const Stranger = '127.0.0.2';
/** Strangers from 60 addresses (127.0.0.2 ... 127.0.0.61): each stays under the per-address cap (32), together they fill the share. */
const strangerAt = (i: number): string => `127.0.0.${2 + (i % 60)}`;
const StrangerAddress = /^127\.0\.0\.([2-9]|[1-5]\d|6[01])$/;
const RefusedMsg = 'api request refused: no free slot';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function startServer(options: Partial<ApiOptions>): Promise<{
  server: ApiServer;
  member: FakeMember;
  port: number;
  logs: Record<string, unknown>[];
}> {
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const member = new FakeMember('pod-a');
  const metrics = new ElectorMetrics({ defaultMetrics: false });
  const server = createApiServer({ member, logger: pino({ level: 'info' }, sink), metrics, options: { localCidrs: ['127.0.0.1/32'], ...options } });
  const { port } = await server.listen(Local, 0);
  cleanups.push(() => server.close());
  return { server, member, port, logs };
}

function track<T extends { socket: { destroy(): void } }>(items: T[]): T[] {
  cleanups.push(() => {
    for (const item of items) item.socket.destroy();
  });
  return items;
}

async function scrape(port: number): Promise<string> {
  const res = await fetch(`http://${Local}:${port}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

const refusedLines = (logs: Record<string, unknown>[], route: string, client = 'stranger'): Record<string, unknown>[] =>
  logs.filter((l) => l.msg === RefusedMsg && l.route === route && l.client === client);

describe('the API under a stranger flood (in-process server, real sockets)', () => {
  it('strangers fill only their share of watch streams and long-polls; the app still gets its stream and its long-poll', async () => {
    // A long log interval: within it, each route logs exactly one line however many refusals.
    const { server, member, port, logs } = await startServer({ refusalLogIntervalMs: 600_000 });
    const streams = track(Array.from({ length: 60 }, (_, i) => rawGet(port, '/leader/watch', strangerAt(i))));
    const watchStatuses = await Promise.all(streams.map((s) => s.status));
    expect(watchStatuses.filter((s) => s === 200)).toHaveLength(48); // 64 minus the 16 kept for local clients
    expect(watchStatuses.filter((s) => s === 503)).toHaveLength(12);
    const refusedWatch = streams.find((_, i) => watchStatuses[i] === 503)!;
    await waitFor('the 503 body', 5_000, () => (refusedWatch.body().includes('too_many_streams') ? true : undefined));
    expect(refusedWatch.body()).toContain('"client":"stranger"');

    const polls: RawExchange[] = track(Array.from({ length: 220 }, (_, i) => rawGet(port, '/leader?waitForChange=0&timeoutMs=60000', strangerAt(i))));
    await waitFor('192 stranger long-polls waiting and 28 refused', 10_000, async () => {
      const answered = polls.filter((p) => p.body().includes('too_many_waiters')).length;
      return server.stats().byClient.long_poll.stranger === 192 && answered === 28 ? true : undefined;
    });

    // The app, from 127.0.0.1: its watch stream and its long-poll are admitted.
    const watcher = track([rawGet(port, '/leader/watch', Local)])[0]!;
    expect(await watcher.status).toBe(200);
    await waitFor('the initial event', 5_000, () => (watcher.body().includes('"self":"pod-a"') ? true : undefined));
    const appPoll = track([rawGet(port, '/leader?waitForChange=0&timeoutMs=60000', Local)])[0]!;
    await waitFor('the local long-poll to wait', 5_000, () => (server.stats().byClient.long_poll.local === 1 ? true : undefined));
    member.update({ leader: 'pod-b', term: 1 });
    expect(await appPoll.status).toBe(200);
    await waitFor('the change on the local stream', 5_000, () => (watcher.body().includes('"term":1') ? true : undefined));

    // Counted by route and client...
    const text = await scrape(port);
    expect(sample(text, 'raft_elector_api_refused_total', { route: 'watch', client: 'stranger' })).toBe(12);
    expect(sample(text, 'raft_elector_api_refused_total', { route: 'long_poll', client: 'stranger' })).toBe(28);
    expect(sample(text, 'raft_elector_api_refused_total', { route: 'watch', client: 'local' })).toBe(0);
    expect(sample(text, 'raft_elector_api_slots_in_use', { route: 'watch', client: 'stranger' })).toBe(48);
    expect(sample(text, 'raft_elector_api_slots_in_use', { route: 'watch', client: 'local' })).toBe(1);
    // ...and logged once for the interval, naming the address.
    expect(refusedLines(logs, 'watch')).toEqual([expect.objectContaining({ refused: 1, remoteAddress: expect.stringMatching(StrangerAddress), limit: 48, level: 40 })]);
    expect(refusedLines(logs, 'long_poll')).toEqual([expect.objectContaining({ refused: 1, remoteAddress: expect.stringMatching(StrangerAddress), limit: 192 })]);

    // At close, what the interval held back is written: every refusal is in the log once.
    await server.close();
    const sum = (route: string): number => refusedLines(logs, route).reduce((n, l) => n + (l.refused as number), 0);
    expect(refusedLines(logs, 'watch')).toHaveLength(2);
    expect(sum('watch')).toBe(12);
    expect(sum('long_poll')).toBe(28);
    const held = refusedLines(logs, 'watch')[1]!;
    expect(held).toMatchObject({ refused: 11, suppressed: 10 });
    expect(Object.values(held.remoteAddresses as Record<string, number>).reduce((a, b) => a + b, 0)).toBe(11);
  });

  it('caps 1,100 silent stranger sockets at their share; local requests still answer', async () => {
    const { server, port, logs } = await startServer({ idleConnectionTimeoutMs: 600_000, refusalLogIntervalMs: 600_000 });
    const sockets = track(await silentSockets(port, strangerAt, 1_100));
    await waitFor('384 stranger connections held and the rest closed', 10_000, () =>
      server.stats().byClient.connection.stranger === 384 && sockets.filter((s) => s.isClosed()).length === 716 ? true : undefined,
    );
    const res = await fetch(`http://${Local}:${port}/leader`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ self: 'pod-a' });
    const watcher = track([rawGet(port, '/leader/watch', Local)])[0]!;
    expect(await watcher.status).toBe(200);
    const text = await scrape(port);
    expect(sample(text, 'raft_elector_api_refused_total', { route: 'connection', client: 'stranger' })).toBe(716);
    expect(sample(text, 'raft_elector_api_slots_in_use', { route: 'connection', client: 'stranger' })).toBe(384);
    expect(refusedLines(logs, 'connection')).toEqual([expect.objectContaining({ refused: 1, remoteAddress: expect.stringMatching(StrangerAddress), limit: 384 })]);
  });

  it('caps the connections of one stranger address at 32, so one pod cannot take the stranger share alone', async () => {
    const { server, port } = await startServer({ idleConnectionTimeoutMs: 600_000 });
    const sockets = track(await silentSockets(port, Stranger, 200));
    await waitFor('32 held and 168 closed', 10_000, () =>
      server.stats().byClient.connection.stranger === 32 && sockets.filter((s) => s.isClosed()).length === 168 ? true : undefined,
    );
    // Another stranger (the kubelet's probe, a Prometheus scrape) still gets in.
    const probe = track([rawGet(port, '/healthz', '127.0.0.3')])[0]!;
    expect(await probe.status).toBe(200);
  });

  it('closes silent sockets at the idle timeout, and keeps a waiting long-poll and a watch stream open past it', async () => {
    const idleConnectionTimeoutMs = 1_000;
    const { server, port } = await startServer({ idleConnectionTimeoutMs });
    const poll = track([rawGet(port, '/leader?waitForChange=0&timeoutMs=60000', Stranger)])[0]!;
    const watch = track([rawGet(port, '/leader/watch', Stranger)])[0]!;
    expect(await watch.status).toBe(200);
    await waitFor('the long-poll to wait', 5_000, () => (server.stats().longPollWaiters === 1 ? true : undefined));
    const openedAt = performance.now();
    const sockets = track(await silentSockets(port, strangerAt, 1_100));
    await waitFor('every silent socket closed', 20_000, () => (sockets.every((s) => s.isClosed()) ? true : undefined), 50);
    // Closed by the timeout, not at once: the admitted ones lived at least the idle timeout.
    expect(performance.now() - openedAt).toBeGreaterThanOrEqual(idleConnectionTimeoutMs);
    const text = await scrape(port);
    // Each silent socket was either refused at once (its share full) or closed idle; at least the 382 free slots were idle-closed.
    const idleClosed = sample(text, 'raft_elector_api_idle_connections_closed_total', { client: 'stranger' })!;
    expect(idleClosed + sample(text, 'raft_elector_api_refused_total', { route: 'connection', client: 'stranger' })!).toBe(1_100);
    expect(idleClosed).toBeGreaterThanOrEqual(382); // 384 minus the poll and the stream
    expect(poll.isClosed()).toBe(false);
    expect(watch.isClosed()).toBe(false);
    expect(server.stats()).toMatchObject({ longPollWaiters: 1, watchStreams: 1, connections: 3 }); // and the scrape's keep-alive
  });
});

describe('the API header and idle timeouts (in-process server, real sockets)', () => {
  it('closes a connection that sends half a request header, and a keep-alive request whose headers stall', async () => {
    const { server, port } = await startServer({ idleConnectionTimeoutMs: 500, keepAliveTimeoutMs: 2_000, headersTimeoutMs: 2_500 });
    // Slowloris: a first request whose headers never end is closed by the idle timeout.
    const half = track([rawSocket(port, Stranger)])[0]!;
    await half.connected;
    half.socket.write('GET /leader HTTP/1.1\r\nHost: x\r\n');
    const openedAt = performance.now();
    await waitFor('the half-sent request closed', 10_000, () => (half.isClosed() ? true : undefined));
    expect(performance.now() - openedAt).toBeGreaterThanOrEqual(400);

    // A keep-alive connection answers once, then stalls on its second request's headers: it is
    // closed (by keepAliveTimeout, which a request only resets once its headers are complete, or
    // by headersTimeout, whichever comes first), not kept.
    const ka = track([rawGet(port, '/leader', Stranger)])[0]!;
    expect(await ka.status).toBe(200);
    await waitFor('the first answer', 5_000, () => (ka.body().includes('"self":"pod-a"') ? true : undefined));
    ka.socket.write('GET /leader HTTP/1.1\r\nHost: x\r\n');
    const stalledAt = performance.now();
    await waitFor('the stalled request closed', 10_000, () => (ka.isClosed() ? true : undefined));
    expect(performance.now() - stalledAt).toBeGreaterThanOrEqual(1_500);
    expect(server.stats().connections).toBe(0);
  });
});

describe('the built member under a stranger flood (real process)', () => {
  it('serves the app while strangers hold every slot they may, logs the refusals once per interval, and closes silent sockets', async () => {
    const idleMs = 5_000;
    const cluster = await ProcessCluster.start({
      size: 1,
      args: ['--api-local-cidrs', '127.0.0.1/32', '--api-idle-connection-timeout-ms', String(idleMs)],
    });
    cleanups.push(() => cluster.stop());
    const m = cluster.member('m1');
    const { term } = await cluster.agreedLeader(20_000);
    const started = performance.now();
    const refused = (route: string): Record<string, unknown>[] => cluster.logs('m1', RefusedMsg).filter((l) => l.route === route);

    // Strangers (60 addresses) take every watch stream and long-poll they may, then flood silent sockets.
    const streams = track(Array.from({ length: 60 }, (_, i) => rawGet(m.httpPort, '/leader/watch', strangerAt(i))));
    const statuses = await Promise.all(streams.map((s) => s.status));
    expect(statuses.filter((s) => s === 200)).toHaveLength(48);
    const polls = track(Array.from({ length: 220 }, (_, i) => rawGet(m.httpPort, `/leader?waitForChange=${term}&timeoutMs=60000`, strangerAt(i))));
    await waitFor('28 long-polls refused', 10_000, () =>
      polls.filter((p) => p.body().includes('too_many_waiters')).length === 28 ? true : undefined,
    );
    const metricsText = async (): Promise<string> => (await fetch(`http://${Local}:${m.httpPort}/metrics`)).text();
    const strangerConnections = async (): Promise<number | undefined> =>
      sample(await metricsText(), 'raft_elector_api_slots_in_use', { route: 'connection', client: 'stranger' });
    // The refused clients hang up, so the strangers hold 48 + 192 connections.
    for (const x of [...streams, ...polls]) if (x.body().includes('"error"')) x.socket.destroy();
    await waitFor('240 stranger connections', 10_000, async () => ((await strangerConnections()) === 240 ? true : undefined), 100);
    const sockets = track(await silentSockets(m.httpPort, strangerAt, 1_100));
    // Connected is not yet accepted: wait until the member has taken every socket off its backlog.
    const text = await waitFor('every silent socket accepted or refused', 20_000, async () => {
      const t = await metricsText();
      const held = sample(t, 'raft_elector_api_slots_in_use', { route: 'connection', client: 'stranger' })!;
      const refusedNow = sample(t, 'raft_elector_api_refused_total', { route: 'connection', client: 'stranger' })!;
      const idleNow = sample(t, 'raft_elector_api_idle_connections_closed_total', { client: 'stranger' })!;
      return refusedNow + idleNow + held - 240 === 1_100 ? t : undefined;
    }, 100);
    const held = sample(text, 'raft_elector_api_slots_in_use', { route: 'connection', client: 'stranger' })!;
    expect(held).toBeLessThanOrEqual(384);
    if (sample(text, 'raft_elector_api_idle_connections_closed_total', { client: 'stranger' }) === 0) {
      // No idle close yet: 144 silent sockets fill the stranger share, the other 956 were closed at once.
      expect(held).toBe(384);
      expect(sample(text, 'raft_elector_api_refused_total', { route: 'connection', client: 'stranger' })).toBe(956);
    }

    // The app's own watcher and answers, while strangers hold their whole share.
    const watcher = track([rawGet(m.httpPort, '/leader/watch', Local)])[0]!;
    expect(await watcher.status).toBe(200);
    await waitFor('the initial event', 5_000, () => (watcher.body().includes('"isLeader":true') ? true : undefined));
    expect((await cluster.leader('m1', 2_000)).isLeader).toBe(true);

    expect(sample(text, 'raft_elector_api_refused_total', { route: 'watch', client: 'stranger' })).toBe(12);
    expect(sample(text, 'raft_elector_api_refused_total', { route: 'long_poll', client: 'stranger' })).toBe(28);
    // Within the 10 s interval: one line per route, naming the stranger.
    if (performance.now() - started < 10_000) {
      for (const route of ['watch', 'long_poll', 'connection']) {
        expect(refused(route)).toEqual([expect.objectContaining({ client: 'stranger', remoteAddress: expect.stringMatching(StrangerAddress), refused: 1 })]);
      }
    }

    // Silent sockets are closed by the idle timeout; streams and long-polls keep their own lifetimes.
    await waitFor('every silent socket closed', 30_000, () => (sockets.every((s) => s.isClosed()) ? true : undefined), 50);
    expect(m.exits).toEqual([]);
    expect((await cluster.leader('m1', 2_000)).isLeader).toBe(true);
    expect(watcher.isClosed()).toBe(false);
    expect(polls.filter((p) => !p.isClosed())).toHaveLength(192);
    const after = await metricsText();
    const refusedConnections = sample(after, 'raft_elector_api_refused_total', { route: 'connection', client: 'stranger' })!;
    const idleClosed = sample(after, 'raft_elector_api_idle_connections_closed_total', { client: 'stranger' })!;
    expect(idleClosed + refusedConnections).toBe(1_100);
    expect(idleClosed).toBeGreaterThanOrEqual(144);
    // The interval's remainder is written at its end: summed over the lines, every refusal once.
    await waitFor('the suppressed count logged', 15_000, () => {
      const total = refused('connection').reduce((n, l) => n + (l.refused as number), 0);
      return total === refusedConnections ? true : undefined;
    }, 200);
    expect(refused('connection').length).toBeLessThanOrEqual(1 + Math.ceil((performance.now() - started) / 10_000));
  });
});

const prlimitPath = ['/usr/bin/prlimit', '/bin/prlimit'].find((p) => existsSync(p));
if (!prlimitPath) console.log('[fd-limit test skipped] prlimit (util-linux) is not installed');

describe.skipIf(!prlimitPath)('the built member under a low fd limit (real processes)', () => {
  it('holds at most --api-max-connections sockets, so 1,100 silent ones cannot starve its next state write', async () => {
    const cluster = await ProcessCluster.start({
      size: 3,
      args: ['--api-local-cidrs', '127.0.0.1/32', '--api-idle-connection-timeout-ms', '60000'],
    });
    cleanups.push(() => cluster.stop());
    const before = await cluster.agreedLeader(20_000);
    const follower = cluster.members.find((m) => m.id !== before.leader)!;
    const pid = follower.child!.pid!;
    // 1,024 descriptors, as under a common container default.
    execFileSync(prlimitPath!, ['--pid', String(pid), '--nofile=1024:1024']);

    const sockets = track(await silentSockets(follower.httpPort, strangerAt, 1_100));
    // With a 60 s idle timeout only refusals close sockets: wait until the member took the flood off its backlog.
    await waitFor('the stranger share full and the other sockets refused', 20_000, async () => {
      const text = await (await fetch(`http://${Local}:${follower.httpPort}/metrics`)).text();
      const held = sample(text, 'raft_elector_api_slots_in_use', { route: 'connection', client: 'stranger' });
      return held === 384 && sockets.filter((s) => !s.isClosed()).length === 384 ? true : undefined;
    }, 100);
    const fds = readdirSync(`/proc/${pid}/fd`).length;
    console.log(`[fd-limit] ${follower.id} holds ${fds} fds with 1,100 silent sockets against it (limit 1024, --api-max-connections 512)`);
    expect(fds).toBeLessThan(1024 - 128);
    expect((await cluster.leader(follower.id, 2_000)).leader).toBe(before.leader); // the app still asks

    // The leader dies: the flooded follower must persist a vote in a new term.
    await cluster.signal(before.leader!, 'SIGKILL');
    const after = await cluster.agreedLeader(20_000);
    expect(after.term).toBeGreaterThan(before.term);
    expect(follower.exits).toEqual([]);
    expect((await cluster.leader(follower.id, 2_000)).term).toBe(after.term);
    expect(sockets.filter((s) => !s.isClosed())).toHaveLength(384);
  });
});
