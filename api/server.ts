/**
 * The HTTP API the app container talks to (localhost:4040): who leads, whether
 * this pod may act as leader right now, a push stream and a long-poll for
 * changes, leader-elector compatibility, health, admin (api/admin.ts) and Prometheus metrics.
 * It codes against the `Member` interface only; see docs/api.md.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express, NextFunction, Request, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import type { LeadershipView, Member } from '../cluster/interfaces.js';
import { podNameOf } from '../cluster/member-id.js';
import { http } from '../cluster/node-http.js';
import { createAdminRoutes } from './admin.js';
import { ConnectionGuard, RefusalLog, SlotPool, type AdmissionRoute, type Refusal, type Slot } from './admission.js';
import { EventLoopLagProbe } from './event-loop.js';
import { HttpError, badParam, isClientError, parseBoolean, parseInteger, readQuery, sendJson } from './http.js';
import { LocalNetworks, type ClientClass } from './local-networks.js';
import { answerPlain, jsonAnswer, JsonContentType, writePlain, type PlainRoute } from './plain-answers.js';
import { ElectorMetrics } from './metrics.js';
import { resolveApiOptions, type ApiOptions } from './options.js';

export { HttpError } from './http.js';

export interface ApiServerDeps {
  member: Member;
  logger: Logger;
  /** The registry the member reports into; the server reads its gauges from `member`. A fresh one when omitted. */
  metrics?: ElectorMetrics;
  options?: Partial<ApiOptions>;
}

export interface ApiServer {
  /** Binds and resolves with the bound address (port 0 picks a free port). */
  listen(host: string, port: number): Promise<AddressInfo>;
  /** The bound port, or null before listen / after close. */
  readonly port: number | null;
  readonly metrics: ElectorMetrics;
  readonly options: Readonly<ApiOptions>;
  /** Open streams, waiting long-polls and open connections, in total and by client class (for tests and debugging). */
  stats(): {
    watchStreams: number;
    longPollWaiters: number;
    connections: number;
    byClient: Record<AdmissionRoute, Readonly<Record<ClientClass, number>>>;
  };
  /** Ends watch streams, answers waiting long-polls with the current view, then closes every connection. */
  close(): Promise<void>;
}

/** A member's place in the configuration (issue 11); a member without the field is a voter. */
export type MembershipRole = 'voter' | 'learner' | 'joining' | 'removed';

/** The body of GET /leader, of each /leader/watch event and of a long-poll answer. */
export interface LeaderBody {
  /** Pod names (what apps compare with POD_NAME); the incarnation ids are leaderId and selfId. */
  leader: string | null;
  self: string;
  leaderId: string | null;
  selfId: string;
  isLeader: boolean;
  term: number;
  leaseExpiresInMs: number | null;
  since: string | null;
  members: {
    id: string;
    pod: string;
    address: string | null;
    connected: boolean;
    role: 'leader' | 'follower' | 'unknown';
    membership: MembershipRole;
  }[];
}

export function leaderBody(view: LeadershipView, member: Pick<Member, 'members'>): LeaderBody {
  const members = member
    .members()
    .map((m) => ({
      id: m.id,
      pod: podNameOf(m.id),
      address: m.address,
      connected: m.connected,
      role: m.role,
      membership: (m as { membership?: MembershipRole }).membership ?? 'voter',
    }))
    .sort((a, b) => compareIds(a.id, b.id));
  return {
    leader: view.leader === null ? null : podNameOf(view.leader),
    self: podNameOf(view.self),
    leaderId: view.leader,
    selfId: view.self,
    isLeader: view.isLeader,
    term: view.term,
    // Rounded down: telling the app it holds the lease longer than it does is the unsafe direction.
    leaseExpiresInMs: view.leaseExpiresInMs === null ? null : Math.max(0, Math.floor(view.leaseExpiresInMs)),
    since: view.since,
    members,
  };
}

/** What makes a watch event: leader, term, isLeader, and holding a lease or not. Role churn alone does not. */
function changeKey(view: LeadershipView): string {
  return JSON.stringify([view.leader, view.term, view.isLeader, view.leaseExpiresInMs !== null]);
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

interface WatchStream {
  res: ServerResponse;
  remoteAddress: string | undefined;
  slot: Slot;
}

interface LongPollWaiter {
  res: Response;
  /** True when `view` differs from what the client said it has. */
  changed(view: LeadershipView): boolean;
  timer: NodeJS.Timeout;
  slot: Slot;
}

const GET_ONLY = 'GET, HEAD';
const POST_ONLY = 'POST';

export function createApiServer(deps: ApiServerDeps): ApiServer {
  const options = resolveApiOptions(deps.options);
  const { member } = deps;
  const log = deps.logger.child({ component: 'api' });
  const metrics = deps.metrics ?? new ElectorMetrics();
  metrics.track(member);
  const networks = new LocalNetworks(options.localCidrs);
  const watchSlots = new SlotPool('watch', options.maxWatchStreams, options.localReservedWatchStreams);
  const longPollSlots = new SlotPool('long_poll', options.maxLongPollWaiters, options.localReservedLongPollWaiters);
  const refusalLog = new RefusalLog(log, options.refusalLogIntervalMs);
  const refuse = (refusal: Refusal): void => {
    metrics.apiRefused(refusal.route, refusal.client);
    refusalLog.refused(refusal);
  };
  const guard = new ConnectionGuard(options, networks, {
    refused: refuse,
    // Counted, not logged: a stranger opens these at will, and an idle close is the normal end of one.
    idleClosed: (client) => metrics.apiIdleConnectionClosed(client),
  });
  const slotCounts = (): Record<AdmissionRoute, Readonly<Record<ClientClass, number>>> => ({
    connection: guard.counts(),
    long_poll: longPollSlots.counts(),
    watch: watchSlots.counts(),
  });
  metrics.trackAdmission(slotCounts);

  const lagProbe = new EventLoopLagProbe(options.eventLoopProbeIntervalMs, options.eventLoopWindowMs);
  // The raft tick is a timer the member runs anyway: its lateness is the probe (one wake-up, not two).
  const unsubscribeTicks = member.onTick?.((tick) => lagProbe.record(tick.lateMs, tick.nextInMs));
  const streams = new Set<WatchStream>();
  const waiters = new Set<LongPollWaiter>();
  let eventId = 1;
  let lastKey = changeKey(member.view());
  let heartbeatTimer: NodeJS.Timeout | null = null;
  let httpServer: Server | null = null;
  let boundPort: number | null = null;
  let closing = false;

  const unsubscribe = member.onChange((view) => {
    try {
      onViewChange(view);
    } catch (err) {
      // The member's loop must never fail because of a client of ours.
      log.error({ err }, 'failed to publish a leadership change');
    }
  });

  function onViewChange(view: LeadershipView): void {
    for (const waiter of waiters) {
      if (waiter.changed(view)) finishWaiter(waiter, view);
    }
    const key = changeKey(view);
    if (key === lastKey) return;
    lastKey = key;
    eventId += 1;
    const frame = sseEvent(eventId, leaderBody(view, member));
    for (const stream of streams) writeStream(stream, frame);
  }

  function sseEvent(id: number, body: LeaderBody): string {
    return `id: ${id}\ndata: ${JSON.stringify(body)}\n\n`;
  }

  function writeStream(stream: WatchStream, chunk: string): void {
    if (stream.res.writableLength > options.maxWatchBufferBytes) {
      log.warn(
        { remoteAddress: stream.remoteAddress, unreadBytes: stream.res.writableLength },
        'closing a /leader/watch stream whose client stopped reading',
      );
      streams.delete(stream);
      stream.slot.release();
      stream.res.destroy();
      return;
    }
    stream.res.write(chunk);
  }

  function finishWaiter(waiter: LongPollWaiter, view: LeadershipView): void {
    waiters.delete(waiter);
    waiter.slot.release();
    clearTimeout(waiter.timer);
    if (!waiter.res.headersSent) sendJson(waiter.res, 200, leaderBody(view, member));
  }

  /**
   * express is loaded at the first request the plain answers leave to it (a query string, a
   * watch, an admin route, another method): a member that is only polled, probed and scraped
   * never pays its RSS. A failed load is retried at the next such request.
   */
  let routedApp: Promise<Express> | undefined;
  function routed(req: IncomingMessage, res: ServerResponse): void {
    routedApp ??= import('express').then((m) => buildApp(m.default));
    routedApp.then(
      (app) => void app(req, res),
      (err: unknown) => {
        routedApp = undefined;
        log.error({ err, method: req.method, url: req.url }, 'could not load the HTTP router');
        if (res.headersSent) return void res.destroy();
        writePlain(res, jsonAnswer(500, { error: 'internal', message: 'internal error' }));
      },
    );
  }

  const plainRoutes = new Map<string, PlainRoute>([
    ['/leader', () => jsonAnswer(200, leaderBody(member.view(), member))],
    ['/', () => jsonAnswer(200, rootBody())],
    ['/isLeader', () => ({ status: 200, contentType: JsonContentType, body: isLeaderText() })],
    ['/healthz', () => jsonAnswer(...healthAnswer())],
    ['/readyz', () => jsonAnswer(...readyAnswer(false))],
    ['/metrics', async () => ({ status: 200, contentType: metrics.contentType, body: await metrics.scrape() })],
  ]);

  function rootBody(): { name: string } {
    return { name: leaderBody(member.view(), { members: () => [] }).leader ?? '' };
  }

  /** Byte for byte what the later leader-elector example answered. */
  function isLeaderText(): string {
    return `{"isLeader": ${member.view().isLeader ? 'true' : 'false'}}`;
  }

  function buildApp(express: typeof import('express')): Express {
    const app = express();
    app.disable('x-powered-by');
    app.set('etag', false);
    app.set('query parser', 'simple');

    app.use((_req, res, next) => {
      // Leadership answers are only true at the instant they are made.
      res.set('Cache-Control', 'no-store');
      next();
    });

    // GET / as the classic leader-elector sidecar answered: {"name":"<leader>"}, "" when none is known.
    route('/', { GET: (_req, res) => sendJson(res, 200, rootBody()) });

    // GET /isLeader as the later leader-elector example answered, byte for byte.
    route('/isLeader', { GET: (_req, res) => void res.status(200).type('application/json').send(isLeaderText()) });

    route('/leader', { GET: getLeader });
    route('/leader/watch', { GET: watchLeader });
    route('/healthz', { GET: healthz });
    route('/readyz', { GET: readyz });
    route('/metrics', {
      GET: async (_req, res) => {
        const text = await metrics.scrape();
        res.status(200).type(metrics.contentType).send(text);
      },
    });
    const admin = createAdminRoutes({ member, log, maxBodyBytes: options.maxBodyBytes, express });
    route('/leader/transfer', { POST: admin.transfer });
    route('/leader/step-down', { POST: admin.stepDown });

    app.use((req, _res, next) => {
      next(new HttpError(404, 'not_found', `no route for ${req.method} ${req.path}`));
    });
    app.use(errorHandler);

    function route(path: string, handlers: { GET?: RequestHandler; POST?: RequestHandler | RequestHandler[] }): void {
      const r = app.route(path);
      if (handlers.GET) r.get(handlers.GET);
      if (handlers.POST) r.post(...[handlers.POST].flat());
      const allow = handlers.GET ? GET_ONLY : POST_ONLY;
      r.all((req, _res, next) => {
        next(new HttpError(405, 'method_not_allowed', `${req.method} is not allowed on ${path}; use ${allow}`, {}, { Allow: allow }));
      });
    }
    return app;
  }

  function getLeader(req: Request, res: Response): void {
    const query = readQuery(req, ['waitForChange', 'timeoutMs', 'isLeader', 'leader']);
    const waitTerm = query.has('waitForChange') ? parseInteger(query, 'waitForChange', 0, Number.MAX_SAFE_INTEGER) : null;
    if (waitTerm === null) {
      for (const name of ['timeoutMs', 'isLeader', 'leader']) {
        if (query.has(name)) throw badParam(name, `only applies together with waitForChange`);
      }
      sendJson(res, 200, leaderBody(member.view(), member));
      return;
    }
    const timeoutMs = query.has('timeoutMs')
      ? parseInteger(query, 'timeoutMs', 0, options.maxLongPollTimeoutMs)
      : options.defaultLongPollTimeoutMs;
    const knownIsLeader = query.has('isLeader') ? parseBoolean(query, 'isLeader') : undefined;
    // leader= (empty) means "I know of no leader".
    const knownLeader = query.has('leader') ? query.get('leader') || null : undefined;
    const changed = (view: LeadershipView): boolean =>
      view.term !== waitTerm ||
      (knownIsLeader !== undefined && view.isLeader !== knownIsLeader) ||
      (knownLeader !== undefined && (view.leader === null ? null : podNameOf(view.leader)) !== knownLeader && view.leader !== knownLeader);

    const view = member.view();
    if (changed(view) || timeoutMs === 0 || closing) {
      sendJson(res, 200, leaderBody(view, member));
      return;
    }
    const client = guard.classOf(req.socket);
    const slot = longPollSlots.tryAcquire(client);
    if (!slot) {
      const limit = longPollSlots.limitFor(client);
      refuse({ route: 'long_poll', client, remoteAddress: req.socket.remoteAddress, limit });
      throw new HttpError(
        503,
        'too_many_waiters',
        `${limit} long-polls ${client === 'local' ? '' : 'from non-local clients '}are already waiting; retry, or use /leader/watch`,
        { client },
        { 'Retry-After': '1' },
      );
    }
    const waiter: LongPollWaiter = {
      res,
      changed,
      timer: setTimeout(() => finishWaiter(waiter, member.view()), timeoutMs),
      slot,
    };
    waiters.add(waiter);
    res.on('close', () => {
      waiters.delete(waiter);
      slot.release();
      clearTimeout(waiter.timer);
      // A client that left half-closes its socket; ours would stay open waiting for an answer nobody reads.
      if (!res.writableEnded) res.destroy();
    });
  }

  function watchLeader(req: Request, res: Response): void {
    readQuery(req, []);
    if (closing) throw new HttpError(503, 'shutting_down', 'the server is shutting down');
    // A HEAD answers the headers and ends: it holds no stream, so it takes no slot.
    const slot = req.method === 'HEAD' ? null : acquireWatchSlot(req);
    res.status(200);
    res.set({
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      // Tells nginx-style proxies not to buffer the stream.
      'X-Accel-Buffering': 'no',
    });
    if (!slot) {
      res.end();
      return;
    }
    res.flushHeaders();
    // A stream is idle between changes for far longer than any socket timeout should cut it.
    req.socket.setTimeout(0);
    req.socket.setNoDelay(true);
    req.socket.setKeepAlive(true);
    const stream: WatchStream = { res, remoteAddress: req.socket.remoteAddress, slot };
    streams.add(stream);
    res.on('close', () => {
      streams.delete(stream);
      slot.release();
      if (!res.writableEnded) res.destroy();
    });
    res.write(`retry: 1000\n`);
    writeStream(stream, sseEvent(eventId, leaderBody(member.view(), member)));
  }

  function acquireWatchSlot(req: Request): Slot {
    const client = guard.classOf(req.socket);
    const slot = watchSlots.tryAcquire(client);
    if (slot) return slot;
    const limit = watchSlots.limitFor(client);
    refuse({ route: 'watch', client, remoteAddress: req.socket.remoteAddress, limit });
    throw new HttpError(
      503,
      'too_many_streams',
      `${limit} /leader/watch streams ${client === 'local' ? '' : 'from non-local clients '}are already open`,
      { client },
      { 'Retry-After': '5' },
    );
  }

  function healthz(req: Request, res: Response): void {
    readQuery(req, []);
    sendJson(res, ...healthAnswer());
  }

  function healthAnswer(): [number, unknown] {
    const eventLoopDelayMs = Math.round(lagProbe.worstLagMs());
    const healthy = eventLoopDelayMs <= options.maxEventLoopDelayMs;
    return [
      healthy ? 200 : 503,
      { status: healthy ? 'ok' : 'event_loop_blocked', eventLoopDelayMs, maxEventLoopDelayMs: options.maxEventLoopDelayMs },
    ];
  }

  function readyz(req: Request, res: Response): void {
    const query = readQuery(req, ['leader']);
    sendJson(res, ...readyAnswer(query.has('leader') ? parseBoolean(query, 'leader') : false));
  }

  function readyAnswer(requireLeader: boolean): [number, unknown] {
    const view = member.view();
    const all = member.members();
    const others = all.filter((m) => m.id !== view.self);
    const selfPlace = all.find((m) => m.id === view.self)?.membership;
    const membersCount = others.length + 1;
    const connected = 1 + others.filter((m) => m.connected).length;
    const quorum = Math.floor(membersCount / 2) + 1;
    let reason: string;
    let ready: boolean;
    if (selfPlace === 'joining' || selfPlace === 'removed') {
      // Not in the configuration: a rolling update must not count this pod (and retire an old voter) yet.
      ready = false;
      reason = selfPlace === 'joining' ? 'not_yet_a_member' : 'removed';
    } else if ((member.freshVoteDelayMsLeft?.() ?? 0) > 0) {
      // Started with no state in a group that ran: nothing lets it take leadership over before the
      // delay ends, so a rolling update must not retire an old pod (maybe the leader) for it yet.
      ready = false;
      reason = 'fresh_vote_delay';
    } else if (requireLeader) {
      ready = view.isLeader;
      reason = ready ? 'leader' : 'not_leader';
    } else if (view.leader !== null) {
      ready = true;
      reason = 'leader_known';
    } else if (connected >= quorum) {
      ready = true;
      reason = 'quorum_connected';
    } else {
      ready = false;
      reason = 'no_leader_and_no_quorum';
    }
    return [ready ? 200 : 503, { ready, reason, leader: view.leader, isLeader: view.isLeader, connected, quorum, members: membersCount }];
  }

  function errorHandler(err: unknown, req: Request, res: Response, _next: NextFunction): void {
    let status = 500;
    let body: Record<string, unknown> = { error: 'internal', message: 'internal error' };
    let headers: Record<string, string> = {};
    if (err instanceof HttpError) {
      status = err.status;
      body = { error: err.code, message: err.message, ...err.extra };
      headers = err.headers;
    } else if (isClientError(err)) {
      // body-parser's errors (bad JSON, too large) carry a 4xx status and a message safe to show.
      status = err.status;
      body = { error: err.type ?? 'bad_request', message: err.message };
    } else {
      log.error({ err, method: req.method, path: req.path }, 'request failed');
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.set(headers);
    sendJson(res, status, body);
  }

  function startHeartbeats(): void {
    heartbeatTimer = setInterval(() => {
      for (const stream of streams) writeStream(stream, ': heartbeat\n\n');
    }, options.watchHeartbeatMs);
    heartbeatTimer.unref();
  }

  return {
    get port() {
      return boundPort;
    },
    metrics,
    options,
    stats: () => ({
      watchStreams: streams.size,
      longPollWaiters: waiters.size,
      connections: guard.pool.size,
      byClient: slotCounts(),
    }),

    listen(host: string, port: number): Promise<AddressInfo> {
      if (httpServer) return Promise.reject(new Error('api server is already listening'));
      // Node checks headersTimeout and requestTimeout on this period (30 s by default, too coarse for a 10 s bound).
      const server = http.createServer({ connectionsCheckingInterval: Math.min(1_000, options.headersTimeoutMs) }, (req, res) => {
        if (!answerPlain(req, res, plainRoutes, () => routed(req, res))) routed(req, res);
      });
      guard.attach(server);
      server.keepAliveTimeout = options.keepAliveTimeoutMs;
      server.headersTimeout = options.headersTimeoutMs;
      server.requestTimeout = options.requestTimeoutMs;
      httpServer = server;
      return new Promise((resolve, reject) => {
        const onError = (err: Error): void => {
          httpServer = null;
          reject(err);
        };
        server.once('error', onError);
        server.listen(port, host, () => {
          server.off('error', onError);
          server.on('error', (err) => log.error({ err }, 'api server error'));
          const address = server.address() as AddressInfo;
          boundPort = address.port;
          if (!unsubscribeTicks) lagProbe.start();
          startHeartbeats();
          log.info({ host: address.address, port: address.port }, 'api listening');
          resolve(address);
        });
      });
    },

    async close(): Promise<void> {
      closing = true;
      unsubscribe();
      unsubscribeTicks?.();
      lagProbe.stop();
      lagProbe.detach();
      if (heartbeatTimer) clearInterval(heartbeatTimer);
      heartbeatTimer = null;
      refusalLog.close();
      for (const waiter of [...waiters]) {
        try {
          finishWaiter(waiter, member.view());
        } catch (err) {
          log.error({ err }, 'could not answer a long-poll at shutdown');
          waiter.res.destroy();
        }
      }
      for (const stream of streams) stream.res.end();
      streams.clear();
      const server = httpServer;
      httpServer = null;
      boundPort = null;
      if (!server) return;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Idle keep-alive sockets, and sockets a client opened but never used, close now; busy ones
        // close when their answer is written (above), a transfer in flight at the latest after 1 s.
        guard.closeIdle();
        setTimeout(() => server.closeAllConnections(), 1_000).unref();
      });
    },
  };
}
