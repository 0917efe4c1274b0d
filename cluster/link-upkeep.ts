/**
 * The periodic work on established links, on one timer for the whole transport: pings and
 * their pong deadlines, and the deadline of a liveness question (see WsTransport's duplicate
 * check). An idle member wakes for nothing here but the pings of links that carry no traffic.
 *
 * - A link is pinged when it has not been for pingIntervalMs; its pong must be back within
 *   pongTimeoutMs, or the link is terminated. The timer's ping on an idle link goes with a
 *   sealed keepalive frame, in the same wake-up: even a link that carries no raft messages
 *   shows, now and then, an authenticated frame from the process behind it.
 * - A link the member sends on anyway (heartbeats, their answers) takes its ping along with a
 *   send once three quarters of the interval have passed, so a busy link never needs the timer.
 * - The timer is armed for the earliest due moment of any link, and re-armed when that moves.
 */
import type { Connection } from './peer-link.js';

export interface UpkeepHost {
  /** The links the member has established now. */
  links(): Iterable<Connection>;
  /** The pong did not come back in time. */
  pongOverdue(conn: Connection): void;
  /** Nothing authenticated arrived on `conn` before its liveness question's deadline. */
  questionUnanswered(conn: Connection): void;
}

export class LinkUpkeep {
  private timer: NodeJS.Timeout | null = null;
  private armedAt = 0;
  private closed = false;

  constructor(
    private readonly o: { pingIntervalMs: number; pongTimeoutMs: number },
    private readonly host: UpkeepHost,
    /** Monotonic ms (a wall-clock step must not fire or postpone the deadlines). */
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** A link was established, lost a question or got its pong: its due moments moved. */
  changed(): void {
    this.arm();
  }

  /** Called after a frame went out on `conn`: the ping leaves with it if it is nearly due. */
  sent(conn: Connection): void {
    if (conn.pongDueAt === 0 && this.now() - conn.lastPingAt >= (this.o.pingIntervalMs * 3) / 4) this.ping(conn);
  }

  pong(conn: Connection): void {
    if (conn.pongDueAt === 0) return;
    conn.pongDueAt = 0;
    this.arm();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private ping(conn: Connection, rearm = true, keepalive = false): void {
    if (conn.state !== 'open') return;
    const now = this.now();
    conn.lastPingAt = now;
    conn.pongDueAt = now + this.o.pongTimeoutMs;
    if (keepalive) conn.sendSealed('k', '');
    conn.ws.ping();
    if (rearm) this.arm();
  }

  private run(): void {
    this.timer = null;
    const now = this.now();
    for (const conn of [...this.host.links()]) {
      if (conn.state !== 'open') continue;
      if (conn.question && now >= conn.question.dueAt) this.host.questionUnanswered(conn);
      if (conn.state !== 'open') continue;
      if (conn.pongDueAt !== 0 && now >= conn.pongDueAt) this.host.pongOverdue(conn);
      else if (conn.pongDueAt === 0 && now - conn.lastPingAt >= this.o.pingIntervalMs) this.ping(conn, false, true);
    }
    this.arm();
  }

  private arm(): void {
    if (this.closed) return;
    let due = Infinity;
    for (const conn of this.host.links()) {
      if (conn.state !== 'open') continue;
      due = Math.min(due, conn.pongDueAt !== 0 ? conn.pongDueAt : conn.lastPingAt + this.o.pingIntervalMs);
      if (conn.question) due = Math.min(due, conn.question.dueAt);
    }
    if (this.timer && this.armedAt === due) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (due === Infinity) return;
    this.armedAt = due;
    this.timer = setTimeout(() => this.run(), Math.max(0, due - this.now()));
  }
}
