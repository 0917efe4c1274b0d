import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { MemberInfo, TickTiming } from '../cluster/interfaces.js';
import { FakeMember } from './fake-member.js';
import { ElectorMetrics } from './metrics.js';
import { ApiConfigError, resolveApiOptions, type ApiOptions } from './options.js';
import { createApiServer, leaderBody, type ApiServer, type LeaderBody } from './server.js';

// ---------- helpers ----------

interface Harness {
  member: FakeMember;
  server: ApiServer;
  base: string;
  logs: Record<string, unknown>[];
}

const open: ApiServer[] = [];
const controllers: AbortController[] = [];

afterEach(async () => {
  for (const c of controllers.splice(0)) c.abort();
  await Promise.all(open.splice(0).map((s) => s.close()));
});

const PEERS: MemberInfo[] = [
  { id: 'pod-c', address: '10.0.0.3:4041', connected: true, role: 'follower' },
  { id: 'pod-b', address: '10.0.0.2:4041', connected: true, role: 'leader' },
];

/** A FakeMember with a raft tick the test drives by hand. */
class TickingMember extends FakeMember {
  private readonly tickListeners = new Set<(tick: TickTiming) => void>();
  onTick(listener: (tick: TickTiming) => void): () => void {
    this.tickListeners.add(listener);
    return () => this.tickListeners.delete(listener);
  }
  tick(lateMs: number, nextInMs: number): void {
    for (const l of this.tickListeners) l({ lateMs, nextInMs });
  }
}

async function start(
  opts: { options?: Partial<ApiOptions>; host?: string; member?: FakeMember; metrics?: ElectorMetrics } = {},
): Promise<Harness> {
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  const member = opts.member ?? new FakeMember('pod-a', PEERS);
  const metrics = opts.metrics ?? new ElectorMetrics({ defaultMetrics: false });
  member.metrics = metrics;
  const server = createApiServer({ member, logger, metrics, options: opts.options });
  open.push(server);
  const address = await server.listen(opts.host ?? '127.0.0.1', 0);
  return { member, server, base: `http://127.0.0.1:${address.port}`, logs };
}

/** Waits for `condition` with a deadline; fails naming what it waited for. */
async function waitFor(condition: () => boolean, what: string, deadlineMs = 5_000): Promise<void> {
  const until = performance.now() + deadlineMs;
  while (!condition()) {
    if (performance.now() > until) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function withDeadline<T>(promise: Promise<T>, deadlineMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${deadlineMs} ms waiting for ${what}`)), deadlineMs);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

async function getJson(url: string, init?: RequestInit): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
  const res = await fetch(url, init);
  expect(res.headers.get('content-type')).toMatch(/^application\/json; charset=utf-8$/);
  const text = await res.text();
  expect(text).not.toMatch(/\bat .*\.(ts|js):\d+/); // no stack traces
  return { status: res.status, headers: res.headers, body: JSON.parse(text) as Record<string, unknown> };
}

function leaderOf(h: Harness, leader: string, term: number): void {
  h.member.update({ leader, term, role: leader === h.member.id ? 'Leader' : 'Follower', since: '2025-01-01T00:00:00.000Z' });
}

function becomeLeader(h: Harness, term: number): void {
  h.member.update({ leader: 'pod-a', term, role: 'Leader', isLeader: true, leaseExpiresInMs: 900.7, since: '2025-01-01T00:00:00.000Z' });
}

type SseItem = { kind: 'event'; id: string | undefined; data: string } | { kind: 'comment'; text: string };

/** A strict enough text/event-stream parser (WHATWG rules: LF lines, blank line dispatches, ':' comments). */
class SseReader {
  private buffer = '';
  private readonly queue: SseItem[] = [];
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new TextDecoder();
  private pending: { id: string | undefined; data: string[] } = { id: undefined, data: [] };

  constructor(body: ReadableStream<Uint8Array>) {
    this.reader = body.getReader();
  }

  /** The next event or comment, within the deadline. */
  async next(deadlineMs = 5_000, what = 'the next SSE item'): Promise<SseItem> {
    return withDeadline(this.read(), deadlineMs, what);
  }

  /** The next event, skipping heartbeat comments. */
  async nextEvent(deadlineMs = 5_000): Promise<{ id: number; body: LeaderBody }> {
    const until = performance.now() + deadlineMs;
    for (;;) {
      const item = await this.next(Math.max(1, until - performance.now()), 'the next SSE event');
      if (item.kind === 'event') return { id: Number(item.id), body: JSON.parse(item.data) as LeaderBody };
    }
  }

  private async read(): Promise<SseItem> {
    for (;;) {
      const item = this.queue.shift();
      if (item) return item;
      const chunk = await this.reader.read();
      if (chunk.done) throw new Error('the stream ended');
      this.buffer += this.decoder.decode(chunk.value, { stream: true });
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        this.parseLine(line);
      }
    }
  }

  private parseLine(line: string): void {
    if (line === '') {
      if (this.pending.data.length > 0) this.queue.push({ kind: 'event', id: this.pending.id, data: this.pending.data.join('\n') });
      this.pending = { id: undefined, data: [] };
      return;
    }
    if (line.startsWith(':')) {
      this.queue.push({ kind: 'comment', text: line.slice(1).trim() });
      return;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.pending.data.push(value);
    else if (field === 'id') this.pending.id = value;
    else if (field === 'retry') expect(value).toMatch(/^\d+$/);
    else throw new Error(`unexpected SSE field ${JSON.stringify(field)}`);
  }
}

async function openWatch(h: Harness): Promise<{ res: Response; reader: SseReader; controller: AbortController }> {
  const controller = new AbortController();
  controllers.push(controller);
  const res = await fetch(`${h.base}/leader/watch`, { signal: controller.signal });
  if (!res.body) throw new Error('no body');
  return { res, reader: new SseReader(res.body), controller };
}

// ---------- GET /leader ----------

describe('GET /leader', () => {
  it('answers the view with members sorted by id', async () => {
    const h = await start();
    leaderOf(h, 'pod-b', 3);
    const { status, headers, body } = await getJson(`${h.base}/leader`);
    expect(status).toBe(200);
    expect(headers.get('cache-control')).toBe('no-store');
    expect(headers.get('x-powered-by')).toBeNull();
    expect(body).toEqual({
      leader: 'pod-b',
      self: 'pod-a',
      leaderId: 'pod-b',
      selfId: 'pod-a',
      isLeader: false,
      term: 3,
      leaseExpiresInMs: null,
      since: '2025-01-01T00:00:00.000Z',
      members: [
        { id: 'pod-a', pod: 'pod-a', address: null, connected: true, role: 'unknown', membership: 'voter' },
        { id: 'pod-b', pod: 'pod-b', address: '10.0.0.2:4041', connected: true, role: 'leader', membership: 'voter' },
        { id: 'pod-c', pod: 'pod-c', address: '10.0.0.3:4041', connected: true, role: 'follower', membership: 'voter' },
      ],
    });
  });

  it.each([
    ['/leader', 200, 'application/json; charset=utf-8'],
    ['/', 200, 'application/json; charset=utf-8'],
    ['/isLeader', 200, 'application/json; charset=utf-8'],
    ['/healthz', 200, 'application/json; charset=utf-8'],
    ['/readyz', 200, 'application/json; charset=utf-8'],
    ['/metrics', 200, 'text/plain; version=0.0.4; charset=utf-8'],
  ])('answers plain GET %s (its fast path, without express) with the bytes and headers of the routed answer', async (path, status, contentType) => {
    const h = await start();
    leaderOf(h, 'pod-b', 3);
    const plain = await fetch(`${h.base}${path}`);
    // A query string, even an empty one, takes the express route.
    const routed = await fetch(`${h.base}${path}?`);
    // A scrape's length follows its values (CPU seconds, requests answered), which move between two scrapes.
    const varying = path === '/metrics' ? ['date', 'content-length'] : ['date'];
    const headersOf = (r: Response): [string, string][] => [...r.headers.entries()].filter(([name]) => !varying.includes(name));
    expect(plain.status).toBe(status);
    expect(routed.status).toBe(status);
    expect(headersOf(plain)).toEqual(headersOf(routed));
    expect(plain.headers.get('content-type')).toBe(contentType);
    const [plainText, routedText] = [await plain.text(), await routed.text()];
    // Two scrapes differ in values, not in the metrics they hold.
    const names = (text: string): string[] => text.split('\n').filter((l) => l.startsWith('# HELP '));
    if (path === '/metrics') expect(names(plainText)).toEqual(names(routedText));
    else expect(plainText).toBe(routedText);
    if (path === '/metrics') expect(names(plainText).length).toBeGreaterThan(10);
    // Other methods on the path still get express's answers.
    const post = await fetch(`${h.base}/leader`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
  });

  it('names pods in leader and self (what apps compare with POD_NAME) and incarnations in leaderId and selfId', () => {
    const view = { self: 'web-0@u1', leader: 'web-1@u2', term: 2, role: 'Follower' as const, isLeader: false, leaseExpiresInMs: null, since: null };
    const body = leaderBody(view, {
      members: () => [
        { id: 'web-1@u2', address: '10.0.0.2:4041', connected: true, role: 'leader' as const },
        { id: 'web-0@u1', address: null, connected: true, role: 'follower' as const, membership: 'learner' },
      ],
    });
    expect(body).toMatchObject({ leader: 'web-1', self: 'web-0', leaderId: 'web-1@u2', selfId: 'web-0@u1' });
    expect(body.members.map((m) => [m.id, m.pod, m.membership])).toEqual([
      ['web-0@u1', 'web-0', 'learner'],
      ['web-1@u2', 'web-1', 'voter'],
    ]);
  });

  it('shows isLeader and the lease, rounded down, on the leader', async () => {
    const h = await start();
    becomeLeader(h, 4);
    const { body } = await getJson(`${h.base}/leader`);
    expect(body).toMatchObject({ leader: 'pod-a', isLeader: true, term: 4, leaseExpiresInMs: 900 });
  });

  it('answers leader null when none is known', async () => {
    const h = await start();
    const { body } = await getJson(`${h.base}/leader`);
    expect(body).toMatchObject({ leader: null, isLeader: false, since: null });
  });
});

// ---------- long-poll ----------

describe('GET /leader?waitForChange', () => {
  it('answers at once when the term already differs', async () => {
    const h = await start();
    leaderOf(h, 'pod-b', 5);
    const { status, body } = await getJson(`${h.base}/leader?waitForChange=4&timeoutMs=60000`);
    expect(status).toBe(200);
    expect(body).toMatchObject({ term: 5, leader: 'pod-b' });
    expect(h.server.stats().longPollWaiters).toBe(0);
  });

  it('answers as soon as the term changes', async () => {
    const h = await start();
    leaderOf(h, 'pod-b', 5);
    const pending = getJson(`${h.base}/leader?waitForChange=5&timeoutMs=60000`);
    await waitFor(() => h.server.stats().longPollWaiters === 1, 'the long-poll to wait');
    h.member.update({ role: 'PreCandidate' }); // not a term change: keeps waiting
    expect(h.server.stats().longPollWaiters).toBe(1);
    leaderOf(h, 'pod-c', 6);
    const { status, body } = await withDeadline(pending, 5_000, 'the long-poll answer');
    expect(status).toBe(200);
    expect(body).toMatchObject({ term: 6, leader: 'pod-c' });
    expect(h.server.stats().longPollWaiters).toBe(0);
  });

  it('answers at the timeout with the unchanged view', async () => {
    const h = await start();
    leaderOf(h, 'pod-b', 5);
    const startedAt = performance.now();
    const { status, body } = await getJson(`${h.base}/leader?waitForChange=5&timeoutMs=150`);
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(140);
    expect(status).toBe(200);
    expect(body).toMatchObject({ term: 5, leader: 'pod-b' });
  });

  it('with isLeader=true also wakes when the lease is lost in the same term', async () => {
    const h = await start();
    becomeLeader(h, 7);
    const pending = getJson(`${h.base}/leader?waitForChange=7&isLeader=true&timeoutMs=60000`);
    await waitFor(() => h.server.stats().longPollWaiters === 1, 'the long-poll to wait');
    h.member.update({ isLeader: false, leaseExpiresInMs: null });
    const { body } = await withDeadline(pending, 5_000, 'the long-poll answer');
    expect(body).toMatchObject({ term: 7, isLeader: false });
  });

  it('with leader= (empty) wakes when a leader becomes known in the same term', async () => {
    const h = await start();
    h.member.update({ term: 8 });
    const pending = getJson(`${h.base}/leader?waitForChange=8&leader=&timeoutMs=60000`);
    await waitFor(() => h.server.stats().longPollWaiters === 1, 'the long-poll to wait');
    leaderOf(h, 'pod-b', 8);
    const { body } = await withDeadline(pending, 5_000, 'the long-poll answer');
    expect(body).toMatchObject({ term: 8, leader: 'pod-b' });
  });

  it('answers waiting long-polls with the current view when the server closes', async () => {
    const h = await start();
    leaderOf(h, 'pod-b', 2);
    const pending = getJson(`${h.base}/leader?waitForChange=2&timeoutMs=60000`);
    await waitFor(() => h.server.stats().longPollWaiters === 1, 'the long-poll to wait');
    await h.server.close();
    const { status, body } = await withDeadline(pending, 5_000, 'the long-poll answer at shutdown');
    expect(status).toBe(200);
    expect(body).toMatchObject({ term: 2, leader: 'pod-b' });
  });

  it('rejects bad values with 400 naming the parameter', async () => {
    const h = await start({ options: { maxLongPollTimeoutMs: 10_000, defaultLongPollTimeoutMs: 5_000 } });
    const cases: [string, string][] = [
      ['waitForChange=-1', 'waitForChange'],
      ['waitForChange=abc', 'waitForChange'],
      ['waitForChange=1.5', 'waitForChange'],
      ['waitForChange=', 'waitForChange'],
      ['waitForChange=1&timeoutMs=10001', 'timeoutMs'],
      ['waitForChange=1&timeoutMs=1e3', 'timeoutMs'],
      ['waitForChange=1&waitForChange=2', 'waitForChange'],
      ['waitForChange=1&isLeader=yes', 'isLeader'],
      ['timeoutMs=100', 'timeoutMs'],
      ['waitforchange=1', 'waitforchange'],
    ];
    for (const [query, parameter] of cases) {
      const { status, body } = await getJson(`${h.base}/leader?${query}`);
      expect({ query, status }).toEqual({ query, status: 400 });
      expect(body).toMatchObject({ error: 'bad_parameter', parameter });
      expect(body.message).toContain(parameter);
    }
  });

  it('bounds concurrent waiters (503 when full) and forgets a waiter whose client left', async () => {
    const h = await start({ options: { maxLongPollWaiters: 2, localReservedLongPollWaiters: 0 } });
    const abort = new AbortController();
    controllers.push(abort);
    const first = fetch(`${h.base}/leader?waitForChange=0&timeoutMs=60000`, { signal: abort.signal }).catch(() => null);
    const second = getJson(`${h.base}/leader?waitForChange=0&timeoutMs=60000`);
    await waitFor(() => h.server.stats().longPollWaiters === 2, 'two waiters');
    const third = await getJson(`${h.base}/leader?waitForChange=0&timeoutMs=60000`);
    expect(third.status).toBe(503);
    expect(third.headers.get('retry-after')).toBe('1');
    expect(third.body).toMatchObject({ error: 'too_many_waiters' });
    abort.abort();
    await first;
    await waitFor(() => h.server.stats().longPollWaiters === 1, 'the aborted waiter to be forgotten');
    leaderOf(h, 'pod-b', 1);
    expect((await withDeadline(second, 5_000, 'the second waiter')).body).toMatchObject({ term: 1 });
  });
});

// ---------- SSE ----------

describe('GET /leader/watch', () => {
  it('sends the current view at once, then each change in order with increasing ids', async () => {
    const h = await start();
    leaderOf(h, 'pod-b', 2);
    const { res, reader } = await openWatch(h);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const initial = await reader.nextEvent();
    expect(initial.body).toMatchObject({ leader: 'pod-b', term: 2, isLeader: false });

    const ids = [initial.id];
    // Leader lost, new term, then this member leads, loses its lease, regains it.
    h.member.update({ leader: null, since: null });
    h.member.update({ term: 3, role: 'Candidate' });
    h.member.update({ role: 'Leader', leader: 'pod-a' }); // leader known, lease not yet claimed
    h.member.update({ isLeader: true, leaseExpiresInMs: 1000 });
    h.member.update({ leaseExpiresInMs: 950 }); // the lease ticking down is not an event
    h.member.update({ isLeader: false, leaseExpiresInMs: null });
    h.member.update({ isLeader: true, leaseExpiresInMs: 1000 });
    const expected = [
      { leader: null, term: 2, isLeader: false },
      { leader: null, term: 3, isLeader: false },
      { leader: 'pod-a', term: 3, isLeader: false, leaseExpiresInMs: null },
      { leader: 'pod-a', term: 3, isLeader: true, leaseExpiresInMs: 1000 },
      { leader: 'pod-a', term: 3, isLeader: false, leaseExpiresInMs: null },
      { leader: 'pod-a', term: 3, isLeader: true, leaseExpiresInMs: 1000 },
    ];
    for (const want of expected) {
      const event = await reader.nextEvent();
      expect(event.body).toMatchObject(want);
      ids.push(event.id);
    }
    for (let i = 1; i < ids.length; i++) expect(ids[i]).toBe((ids[i - 1] ?? 0) + 1);
  });

  it('sends heartbeat comments at the configured interval', async () => {
    const h = await start({ options: { watchHeartbeatMs: 50 } });
    const { reader } = await openWatch(h);
    await reader.nextEvent();
    const item = await reader.next(5_000, 'a heartbeat');
    expect(item).toEqual({ kind: 'comment', text: 'heartbeat' });
  });

  it('bounds the number of streams and forgets a stream whose client left', async () => {
    const h = await start({ options: { maxWatchStreams: 2, localReservedWatchStreams: 0 } });
    const a = await openWatch(h);
    await a.reader.nextEvent();
    const b = await openWatch(h);
    await b.reader.nextEvent();
    const third = await getJson(`${h.base}/leader/watch`);
    expect(third.status).toBe(503);
    expect(third.body).toMatchObject({ error: 'too_many_streams' });
    a.controller.abort();
    await waitFor(() => h.server.stats().watchStreams === 1, 'the closed stream to be forgotten');
    const c = await openWatch(h);
    expect((await c.reader.nextEvent()).body).toMatchObject({ self: 'pod-a' });
    expect(h.member.listenerCount()).toBe(1); // one subscription for the server, not one per stream
  });

  it('cuts a stream whose client stopped reading once its buffer bound is passed, and logs it', async () => {
    const h = await start({ options: { maxWatchBufferBytes: 4096 } });
    // A raw client that sends the request and then never reads: the kernel buffers fill, then ours.
    const socket = connect(h.server.port ?? 0, '127.0.0.1');
    socket.pause();
    socket.write('GET /leader/watch HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => h.server.stats().watchStreams === 1, 'the raw stream to open');
    const until = performance.now() + 20_000;
    let term = 1;
    while (h.server.stats().watchStreams === 1) {
      if (performance.now() > until) throw new Error(`stream not cut after ${term} events`);
      for (let i = 0; i < 200; i++) h.member.update({ term: term++ });
      await new Promise((r) => setImmediate(r));
    }
    socket.destroy();
    const cut = h.logs.filter((l) => l.msg === 'closing a /leader/watch stream whose client stopped reading');
    expect(cut).toHaveLength(1);
    expect(cut[0]).toMatchObject({ level: 40, remoteAddress: '127.0.0.1' });
    expect(cut[0]?.unreadBytes).toBeGreaterThan(4096);
    // A reading client is unaffected.
    const { reader } = await openWatch(h);
    expect((await reader.nextEvent()).body).toMatchObject({ term: term - 1 });
  });

  it('ends the streams when the server closes', async () => {
    const h = await start();
    const { reader } = await openWatch(h);
    await reader.nextEvent();
    await h.server.close();
    await expect(reader.next(5_000, 'the end of the stream')).rejects.toThrow(/ended|terminated/);
    expect(h.member.listenerCount()).toBe(0);
  });
});

// ---------- leader-elector compatibility ----------

describe('leader-elector compatibility', () => {
  it('GET / answers {"name":"<leader>"} byte for byte', async () => {
    const h = await start();
    leaderOf(h, 'pod-b', 1);
    const res = await fetch(`${h.base}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(await res.text()).toBe('{"name":"pod-b"}');
  });

  it('GET / answers {"name":""} when no leader is known, as the sidecar did', async () => {
    const h = await start();
    const res = await fetch(`${h.base}/`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('{"name":""}');
  });

  it('GET /isLeader answers the leader-elector example shape', async () => {
    const h = await start();
    expect(await (await fetch(`${h.base}/isLeader`)).text()).toBe('{"isLeader": false}');
    becomeLeader(h, 1);
    expect(await (await fetch(`${h.base}/isLeader`)).text()).toBe('{"isLeader": true}');
  });
});

// ---------- health ----------

describe('GET /healthz and /readyz', () => {
  it('/healthz answers 200, then 503 after the event loop stalled, then 200 again', async () => {
    // The bound sits well above what a busy shared machine causes, the stall well above the bound.
    const h = await start({ options: { eventLoopProbeIntervalMs: 20, eventLoopWindowMs: 1_000, maxEventLoopDelayMs: 300 } });
    const ok = await getJson(`${h.base}/healthz`);
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ status: 'ok', maxEventLoopDelayMs: 300 });
    const until = performance.now() + 800;
    while (performance.now() < until) {
      // a synchronous stall of the event loop, as a runaway computation would cause
    }
    const stalled = await getJson(`${h.base}/healthz`);
    expect(stalled.status).toBe(503);
    expect(stalled.body).toMatchObject({ status: 'event_loop_blocked' });
    expect(stalled.body.eventLoopDelayMs).toBeGreaterThan(300);
    const recoverBy = performance.now() + 5_000;
    let status = 503;
    while (status !== 200) {
      if (performance.now() > recoverBy) throw new Error('/healthz did not recover within 5 s of the stall');
      await new Promise((r) => setTimeout(r, 20));
      status = (await getJson(`${h.base}/healthz`)).status;
    }
  });

  it('/healthz reads the raft tick when the member runs one: a late tick is 503 for the window, and so is a tick that stops', async () => {
    const member = new TickingMember('pod-a', PEERS);
    const h = await start({ member, options: { eventLoopProbeIntervalMs: 20, eventLoopWindowMs: 1_000, maxEventLoopDelayMs: 300 } });
    member.tick(0, 50);
    expect((await getJson(`${h.base}/healthz`)).status).toBe(200);
    member.tick(800, 50); // the loop was stuck for 800 ms before this tick could run
    const stalled = await getJson(`${h.base}/healthz`);
    expect(stalled.status).toBe(503);
    expect(stalled.body).toMatchObject({ status: 'event_loop_blocked' });
    expect(stalled.body.eventLoopDelayMs).toBeGreaterThanOrEqual(800);
    // Ticks on time for longer than the window: healthy again.
    const onTime = setInterval(() => member.tick(0, 50), 20);
    try {
      const recoverBy = performance.now() + 5_000;
      while ((await getJson(`${h.base}/healthz`)).status !== 200) {
        if (performance.now() > recoverBy) throw new Error('/healthz did not recover within 5 s of the late tick');
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      clearInterval(onTime);
    }
    // No tick for longer than the bound (the loop, or the raft loop, is stuck): 503.
    await new Promise((r) => setTimeout(r, 450));
    expect((await getJson(`${h.base}/healthz`)).status).toBe(503);
    // A member that stopped has no next tick: nothing is overdue (the late samples are older than the window).
    member.tick(0, Infinity);
    await new Promise((r) => setTimeout(r, 1_100));
    expect((await getJson(`${h.base}/healthz`)).status).toBe(200);
  });

  it('/readyz: ready while following a known leader', async () => {
    const h = await start();
    leaderOf(h, 'pod-b', 1);
    const { status, body } = await getJson(`${h.base}/readyz`);
    expect(status).toBe(200);
    expect(body).toMatchObject({ ready: true, reason: 'leader_known' });
  });

  it('/readyz: 503 for a member outside the configuration (a joiner not added yet), even with a leader known', async () => {
    const h = await start();
    leaderOf(h, 'pod-b', 1);
    h.member.setMembers([
      { id: 'pod-a', address: null, connected: true, role: 'follower', membership: 'joining' },
      { id: 'pod-b', address: 'b:4041', connected: true, role: 'leader', membership: 'voter' },
    ]);
    const { status, body } = await getJson(`${h.base}/readyz`);
    expect(status).toBe(503);
    expect(body).toMatchObject({ ready: false, reason: 'not_yet_a_member' });
  });

  it('/readyz: 503 for a fresh member still in its fresh-vote delay (it cannot take over yet), then ready', async () => {
    const h = await start();
    leaderOf(h, 'pod-b', 1);
    h.member.freshVoteDelayMs = 700;
    const { status, body } = await getJson(`${h.base}/readyz`);
    expect(status).toBe(503);
    expect(body).toMatchObject({ ready: false, reason: 'fresh_vote_delay' });
    h.member.freshVoteDelayMs = 0;
    expect((await getJson(`${h.base}/readyz`)).body).toMatchObject({ ready: true, reason: 'leader_known' });
  });

  it('/readyz: ready without a leader while a quorum is connected, 503 without', async () => {
    const h = await start();
    h.member.setMembers([
      { id: 'pod-a', address: null, connected: true, role: 'unknown' },
      { id: 'pod-b', address: 'b:4041', connected: true, role: 'unknown' },
      { id: 'pod-c', address: 'c:4041', connected: false, role: 'unknown' },
    ]);
    expect((await getJson(`${h.base}/readyz`)).body).toMatchObject({ ready: true, reason: 'quorum_connected', connected: 2, quorum: 2 });
    h.member.setMembers([
      { id: 'pod-a', address: null, connected: true, role: 'unknown' },
      { id: 'pod-b', address: 'b:4041', connected: false, role: 'unknown' },
      { id: 'pod-c', address: null, connected: false, role: 'unknown' },
    ]);
    const { status, body } = await getJson(`${h.base}/readyz`);
    expect(status).toBe(503);
    expect(body).toMatchObject({ ready: false, reason: 'no_leader_and_no_quorum', connected: 1, quorum: 2 });
  });

  it('/readyz?leader=true: 503 on a follower and on a leader without its lease, 200 on the lease holder', async () => {
    const h = await start();
    leaderOf(h, 'pod-b', 1);
    expect((await getJson(`${h.base}/readyz?leader=true`)).status).toBe(503);
    h.member.update({ leader: 'pod-a', term: 2, role: 'Leader', isLeader: false });
    expect((await getJson(`${h.base}/readyz?leader=true`)).status).toBe(503);
    becomeLeader(h, 2);
    const { status, body } = await getJson(`${h.base}/readyz?leader=true`);
    expect(status).toBe(200);
    expect(body).toMatchObject({ ready: true, reason: 'leader' });
    expect((await getJson(`${h.base}/readyz?leader=false`)).status).toBe(200);
    const bad = await getJson(`${h.base}/readyz?leader=1`);
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ parameter: 'leader' });
  });
});

// ---------- admin ----------

describe('admin routes', () => {
  const post = (url: string, body?: string, type = 'application/json'): Promise<Awaited<ReturnType<typeof getJson>>> =>
    getJson(url, { method: 'POST', body, headers: body === undefined ? {} : { 'content-type': type } });

  it('POST /leader/transfer hands over to the named member', async () => {
    const h = await start();
    becomeLeader(h, 3);
    const { status, body } = await post(`${h.base}/leader/transfer`, '{"to":"pod-c"}');
    expect(status).toBe(200);
    expect(body).toEqual({ transferred: true, from: 'pod-a', leader: 'pod-c' });
    expect(h.member.transferCalls).toEqual(['pod-c']);
    const line = h.logs.find((l) => l.msg === 'leadership transfer requested');
    expect(line).toMatchObject({ component: 'api', to: 'pod-c', from: 'pod-a' });
  });

  it('POST /leader/transfer with no body or {} and POST /leader/step-down go to the best follower', async () => {
    const h = await start();
    becomeLeader(h, 3);
    expect((await post(`${h.base}/leader/transfer`)).status).toBe(200);
    expect((await post(`${h.base}/leader/transfer`, '{}')).status).toBe(200);
    expect((await post(`${h.base}/leader/step-down`)).status).toBe(200);
    expect(h.member.transferCalls).toEqual([undefined, undefined, undefined]);
  });

  it('answers 409 naming the leader on a non-leader', async () => {
    const h = await start();
    leaderOf(h, 'pod-b', 3);
    for (const path of ['/leader/transfer', '/leader/step-down']) {
      const { status, body } = await post(`${h.base}${path}`);
      expect(status).toBe(409);
      expect(body).toMatchObject({ error: 'not_leader', leader: 'pod-b' });
    }
    expect(h.member.transferCalls).toEqual([]);
  });

  it('rejects bad bodies without calling the member', async () => {
    const h = await start();
    becomeLeader(h, 3);
    const cases: [string | undefined, string, number, string][] = [
      ['{"to":"pod-z"}', 'application/json', 400, 'bad_body'],
      ['{"to":"pod-a"}', 'application/json', 400, 'bad_body'],
      ['{"to":7}', 'application/json', 400, 'bad_body'],
      ['{"target":"pod-b"}', 'application/json', 400, 'bad_body'],
      ['["pod-b"]', 'application/json', 400, 'bad_body'],
      ['{"to":', 'application/json', 400, 'entity.parse.failed'],
      ['{"to":"pod-b"}', 'text/plain', 415, 'unsupported_media_type'],
      [`{"to":"${'x'.repeat(10_000)}"}`, 'application/json', 413, 'entity.too.large'],
    ];
    for (const [body, type, status, error] of cases) {
      const res = await post(`${h.base}/leader/transfer`, body, type);
      expect({ body: body?.slice(0, 20), status: res.status, error: res.body.error }).toEqual({ body: body?.slice(0, 20), status, error });
    }
    expect(h.member.transferCalls).toEqual([]);
  });

  it('answers 503 when the transfer did not complete, and 409 to a second transfer while one runs', async () => {
    const h = await start();
    becomeLeader(h, 3);
    let finish: (v: { leader: string | null; transferred: boolean }) => void = () => {};
    h.member.transferImpl = () => new Promise((resolve) => (finish = resolve));
    const first = post(`${h.base}/leader/step-down`);
    await waitFor(() => h.member.transferCalls.length === 1, 'the transfer to start');
    const second = await post(`${h.base}/leader/transfer`, '{"to":"pod-b"}');
    expect(second.status).toBe(409);
    expect(second.body).toMatchObject({ error: 'transfer_in_progress' });
    finish({ leader: 'pod-a', transferred: false });
    const { status, body } = await withDeadline(first, 5_000, 'the step-down answer');
    expect(status).toBe(503);
    expect(body).toMatchObject({ error: 'transfer_incomplete', leader: 'pod-a' });
  });

  it("maps the member's typed refusals to 409/503, and anything else to 500 without details", async () => {
    const h = await start();
    becomeLeader(h, 3);
    const refuse = (code: string, message: string) => () => Promise.reject(Object.assign(new Error(message), { code }));
    const cases: [string, number, string][] = [
      ['NOT_LEADER', 409, 'not_leader'],
      ['INVALID_TRANSFER_TARGET', 409, 'no_transfer_target'],
      ['TRANSFER_IN_PROGRESS', 409, 'transfer_in_progress'],
      ['MEMBER_STOPPED', 503, 'member_stopped'],
    ];
    for (const [code, status, error] of cases) {
      h.member.transferImpl = refuse(code, `refused: ${code}`);
      const res = await post(`${h.base}/leader/step-down`);
      expect({ code, status: res.status, body: res.body }).toMatchObject({ code, status, body: { error, message: `refused: ${code}` } });
    }
    h.member.transferImpl = refuse('EIO', 'disk on fire at /var/lib/secret');
    const res = await post(`${h.base}/leader/step-down`);
    expect(res.status).toBe(500);
    expect(res.body).toEqual({ error: 'internal', message: 'internal error' });
    // The transfer guard is released after a failure.
    h.member.transferImpl = async () => ({ leader: 'pod-b', transferred: true });
    expect((await post(`${h.base}/leader/step-down`)).status).toBe(200);
  });

  it('answers 405 with Allow: POST to a GET', async () => {
    const h = await start();
    const { status, headers, body } = await getJson(`${h.base}/leader/transfer`);
    expect(status).toBe(405);
    expect(headers.get('allow')).toBe('POST');
    expect(body).toMatchObject({ error: 'method_not_allowed' });
  });

  const nonLoopback = Object.values(networkInterfaces())
    .flat()
    .find((i) => i !== undefined && i.family === 'IPv4' && !i.internal)?.address;

  it.skipIf(nonLoopback === undefined)(
    `answers 403 and logs one line naming the address to a request from a non-loopback address (${nonLoopback ?? 'none on this machine'})`,
    async () => {
      const h = await start({ host: '0.0.0.0' });
      becomeLeader(h, 3);
      const port = h.server.port;
      // Connecting to this machine's own non-loopback address makes that address the source.
      for (const path of ['/leader/transfer', '/leader/step-down']) {
        const { status, body } = await getJson(`http://${nonLoopback}:${port}${path}`, { method: 'POST' });
        expect(status).toBe(403);
        expect(body).toMatchObject({ error: 'forbidden' });
      }
      expect(h.member.transferCalls).toEqual([]);
      const refused = h.logs.filter((l) => l.msg === 'admin request from a non-loopback address refused');
      expect(refused).toHaveLength(2);
      expect(refused[0]).toMatchObject({ level: 40, remoteAddress: nonLoopback, path: '/leader/transfer' });
      // Reads stay open to every address; the same server still accepts admin calls over loopback.
      expect((await getJson(`http://${nonLoopback}:${port}/leader`)).status).toBe(200);
      expect((await getJson(`http://127.0.0.1:${port}/leader/step-down`, { method: 'POST' })).status).toBe(200);
    },
  );
});

// ---------- request handling ----------

describe('request handling', () => {
  it('answers unknown paths with 404 JSON', async () => {
    const h = await start();
    const { status, body } = await getJson(`${h.base}/nope?x=1`);
    expect(status).toBe(404);
    expect(body).toEqual({ error: 'not_found', message: 'no route for GET /nope' });
  });

  it('answers wrong methods with 405 JSON and an Allow header', async () => {
    const h = await start();
    for (const path of ['/', '/leader', '/leader/watch', '/healthz', '/readyz', '/metrics', '/isLeader']) {
      const { status, headers } = await getJson(`${h.base}${path}`, { method: 'DELETE' });
      expect({ path, status, allow: headers.get('allow') }).toEqual({ path, status: 405, allow: 'GET, HEAD' });
    }
  });

  it('rejects unknown query parameters with 400 naming them', async () => {
    const h = await start();
    for (const path of ['/healthz?verbose=1', '/leader/watch?from=3', '/readyz?lader=true']) {
      const { status, body } = await getJson(`${h.base}${path}`);
      expect(status).toBe(400);
      expect(body.message).toContain(path.split('?')[1]?.split('=')[0]);
    }
  });

  it('answers 500 JSON without a stack trace when the member throws, and logs it', async () => {
    const h = await start();
    h.member.view = () => {
      throw new Error('view exploded');
    };
    const { status, body } = await getJson(`${h.base}/leader`);
    expect(status).toBe(500);
    expect(body).toEqual({ error: 'internal', message: 'internal error' });
    const line = h.logs.find((l) => l.msg === 'request failed');
    expect(line).toMatchObject({ level: 50, path: '/leader', err: { message: 'view exploded' } });
  });

  it('keeps the connection alive between requests', async () => {
    const h = await start();
    const res = await fetch(`${h.base}/leader`);
    await res.text();
    expect(res.headers.get('connection')).not.toBe('close');
    expect(res.headers.get('keep-alive')).toBe('timeout=5');
  });
});

// ---------- construction ----------

describe('options', () => {
  it('rejects broken relations with an error naming them', () => {
    expect(() => resolveApiOptions({ keepAliveTimeoutMs: 10_000, headersTimeoutMs: 10_000 })).toThrow(
      /headersTimeoutMs \(10000\) must exceed keepAliveTimeoutMs \(10000\)/,
    );
    expect(() => resolveApiOptions({ defaultLongPollTimeoutMs: 90_000 })).toThrow(/must not exceed maxLongPollTimeoutMs/);
    expect(() => resolveApiOptions({ maxWatchStreams: 0 })).toThrow(ApiConfigError);
    expect(() => resolveApiOptions({ maxWatchStreams: 1.5 })).toThrow(/maxWatchStreams must be a positive integer/);
    expect(() => resolveApiOptions({ bogus: 1 } as Partial<ApiOptions>)).toThrow(/bogus is not a known option/);
    try {
      resolveApiOptions({ maxWatchStreams: -1 });
    } catch (err) {
      expect(err).toMatchObject({ code: 'API_CONFIG_INVALID', setting: 'maxWatchStreams' });
    }
  });

  it('fails listen with the OS error when the port is taken', async () => {
    const h = await start();
    const other = createApiServer({ member: h.member, logger: pino({ level: 'silent' }) });
    await expect(other.listen('127.0.0.1', h.server.port ?? 0)).rejects.toMatchObject({ code: 'EADDRINUSE' });
    await other.close();
  });
});
