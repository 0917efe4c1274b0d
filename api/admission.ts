/**
 * Admission of API clients: bounded slots for open connections, watch streams and
 * waiting long-polls, each with a share reserved for local clients (the app in the
 * pod), so that strangers — any pod can reach 0.0.0.0:4040 — can never take the
 * app's watcher away; a per-address cap on stranger connections; an idle timeout for connections that never send a request;
 * and one rate-limited log line per interval for the refusals.
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { ClientClass, LocalNetworks } from './local-networks.js';

/** What a refusal refused: a connection, a /leader/watch stream, or a waiting long-poll. */
export type AdmissionRoute = 'connection' | 'watch' | 'long_poll';

export const ADMISSION_ROUTES: readonly AdmissionRoute[] = ['connection', 'long_poll', 'watch'];

export interface Slot {
  /** Gives the slot back; a second call does nothing. */
  release(): void;
}

/**
 * `max` slots; strangers together hold at most `max - localReserved`, so local
 * clients always find `localReserved` free. Local clients may also use any free slot
 * of the stranger share (the app's own load is not the threat).
 */
export class SlotPool {
  private readonly held: Record<ClientClass, number> = { local: 0, stranger: 0 };

  constructor(
    readonly route: AdmissionRoute,
    readonly max: number,
    readonly localReserved: number,
  ) {
    if (!(Number.isSafeInteger(max) && max >= 1 && Number.isSafeInteger(localReserved) && localReserved >= 0 && localReserved <= max)) {
      throw new RangeError(`slot pool ${route}: need 1 <= max and 0 <= localReserved <= max, got ${max}, ${localReserved}`);
    }
  }

  /** The most slots strangers may hold together. */
  get strangerLimit(): number {
    return this.max - this.localReserved;
  }

  /** The bound a refused client of this class ran into (for the 503 and the log). */
  limitFor(client: ClientClass): number {
    return client === 'local' ? this.max : this.strangerLimit;
  }

  get size(): number {
    return this.held.local + this.held.stranger;
  }

  counts(): Readonly<Record<ClientClass, number>> {
    return { ...this.held };
  }

  tryAcquire(client: ClientClass): Slot | null {
    if (this.size >= this.max) return null;
    if (client === 'stranger' && this.held.stranger >= this.strangerLimit) return null;
    this.held[client] += 1;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.held[client] -= 1;
      },
    };
  }
}

export interface Refusal {
  route: AdmissionRoute;
  client: ClientClass;
  remoteAddress: string | undefined;
  /** The bound that was full. */
  limit: number;
}

/** Distinct addresses remembered per interval; further ones are counted under "other". */
const MaxAddressesPerLine = 8;

interface RefusalWindow {
  refused: number;
  addresses: Map<string, number>;
  timer: NodeJS.Timeout;
  limit: number;
}

/**
 * Refusals are what a stranger triggers at will, so they are logged at most once per
 * interval per (route, client class): the first at once, then at the end of each
 * interval that saw more, one line with how many and from where. Summed over its
 * lines, `refused` equals the refusals (and raft_elector_api_refused_total).
 */
export class RefusalLog {
  static readonly Message = 'api request refused: no free slot';
  private readonly windows = new Map<string, RefusalWindow>();

  constructor(
    private readonly log: Logger,
    private readonly intervalMs: number,
  ) {}

  refused(refusal: Refusal): void {
    const key = `${refusal.route}/${refusal.client}`;
    const window = this.windows.get(key);
    if (window) {
      window.refused += 1;
      window.limit = refusal.limit;
      const address = refusal.remoteAddress ?? 'unknown';
      if (window.addresses.has(address) || window.addresses.size < MaxAddressesPerLine) {
        window.addresses.set(address, (window.addresses.get(address) ?? 0) + 1);
      } else {
        window.addresses.set('other', (window.addresses.get('other') ?? 0) + 1);
      }
      return;
    }
    this.write(refusal.route, refusal.client, refusal.limit, 1, new Map([[refusal.remoteAddress ?? 'unknown', 1]]));
    this.open(key, refusal);
  }

  /** Writes what is pending and stops the timers (server close). */
  close(): void {
    for (const [key, window] of this.windows) {
      clearTimeout(window.timer);
      const [route, client] = key.split('/') as [AdmissionRoute, ClientClass];
      if (window.refused > 0) this.write(route, client, window.limit, window.refused, window.addresses);
    }
    this.windows.clear();
  }

  private open(key: string, refusal: Refusal): void {
    const timer = setTimeout(() => {
      const window = this.windows.get(key);
      this.windows.delete(key);
      if (!window || window.refused === 0) return;
      this.write(refusal.route, refusal.client, window.limit, window.refused, window.addresses);
      // Still flooding: keep one line per interval.
      this.open(key, refusal);
    }, this.intervalMs);
    timer.unref();
    this.windows.set(key, { refused: 0, addresses: new Map(), timer, limit: refusal.limit });
  }

  private write(route: AdmissionRoute, client: ClientClass, limit: number, refused: number, addresses: Map<string, number>): void {
    // Most frequent first, then by address, so the line reads the same for the same flood.
    const top = [...addresses].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    this.log.warn(
      {
        route,
        client,
        limit,
        refused,
        suppressed: refused - 1,
        remoteAddress: top[0]?.[0],
        remoteAddresses: Object.fromEntries(top),
        intervalMs: this.intervalMs,
      },
      RefusalLog.Message,
    );
  }
}

export interface ConnectionGuardOptions {
  maxConnections: number;
  localReservedConnections: number;
  maxConnectionsPerStranger: number;
  idleConnectionTimeoutMs: number;
}

export interface ConnectionGuardEvents {
  refused(refusal: Refusal): void;
  idleClosed(client: ClientClass, remoteAddress: string | undefined): void;
}

interface TrackedSocket {
  client: ClientClass;
  slot: Slot;
  /** Responses in flight on this socket. */
  inFlight: number;
  /** Armed until the first request arrives. */
  idleTimer: NodeJS.Timeout | null;
}

/**
 * Bounds the sockets of one HTTP server (each is a file descriptor the member also needs
 * for its state file and its peers) and closes those that never send a request. A socket
 * over the cap is closed at once, before it costs more than its accept.
 */
export class ConnectionGuard {
  readonly pool: SlotPool;
  private readonly sockets = new Map<Socket, TrackedSocket>();
  /** Open connections per stranger address, so one pod cannot take the whole stranger share. */
  private readonly perStranger = new Map<string, number>();
  private closing = false;

  constructor(
    private readonly options: ConnectionGuardOptions,
    private readonly networks: LocalNetworks,
    private readonly events: ConnectionGuardEvents,
  ) {
    this.pool = new SlotPool('connection', options.maxConnections, options.localReservedConnections);
  }

  /** Call before `listen`. */
  attach(server: Server): void {
    server.on('connection', (socket: Socket) => this.onConnection(socket));
    server.on('request', (req: { socket: Socket }, res: { on(event: 'close', fn: () => void): void }) => {
      const socket = req.socket;
      const tracked = this.sockets.get(socket);
      if (!tracked) return;
      if (tracked.idleTimer) clearTimeout(tracked.idleTimer);
      tracked.idleTimer = null;
      tracked.inFlight += 1;
      res.on('close', () => {
        tracked.inFlight -= 1;
        if (this.closing && tracked.inFlight === 0) socket.destroySoon();
      });
    });
  }

  /** The socket's client class, as classified when it connected. */
  classOf(socket: Socket): ClientClass {
    return this.sockets.get(socket)?.client ?? this.networks.classify(socket.remoteAddress);
  }

  counts(): Readonly<Record<ClientClass, number>> {
    return this.pool.counts();
  }

  /**
   * Shutdown: sockets with no answer in flight (idle keep-alive, or never used) close now;
   * busy ones close when their answer is written.
   */
  closeIdle(): void {
    this.closing = true;
    for (const [socket, tracked] of this.sockets) if (tracked.inFlight === 0) socket.destroy();
  }

  private onConnection(socket: Socket): void {
    const remoteAddress = socket.remoteAddress;
    const client = this.networks.classify(remoteAddress);
    const addressKey = remoteAddress ?? 'unknown';
    const fromAddress = client === 'stranger' ? (this.perStranger.get(addressKey) ?? 0) : 0;
    const slot = fromAddress < this.options.maxConnectionsPerStranger ? this.pool.tryAcquire(client) : null;
    if (!slot) {
      socket.destroy();
      const limit = fromAddress >= this.options.maxConnectionsPerStranger ? this.options.maxConnectionsPerStranger : this.pool.limitFor(client);
      this.events.refused({ route: 'connection', client, remoteAddress, limit });
      return;
    }
    if (client === 'stranger') this.perStranger.set(addressKey, fromAddress + 1);
    const tracked: TrackedSocket = { client, slot, inFlight: 0, idleTimer: null };
    tracked.idleTimer = setTimeout(() => {
      tracked.idleTimer = null;
      if (tracked.inFlight > 0 || socket.destroyed) return;
      socket.destroy();
      this.events.idleClosed(client, remoteAddress);
    }, this.options.idleConnectionTimeoutMs);
    tracked.idleTimer.unref();
    this.sockets.set(socket, tracked);
    socket.once('close', () => {
      if (tracked.idleTimer) clearTimeout(tracked.idleTimer);
      slot.release();
      if (client === 'stranger') {
        const left = (this.perStranger.get(addressKey) ?? 1) - 1;
        if (left > 0) this.perStranger.set(addressKey, left);
        else this.perStranger.delete(addressKey);
      }
      this.sockets.delete(socket);
    });
  }
}
