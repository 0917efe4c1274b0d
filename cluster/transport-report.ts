/**
 * What the transport reports besides its links: drops (counted every time, logged at a bounded
 * rate), unreachable peers (at a bounded rate), the member's event handlers (a throw is logged,
 * never let into ws), and its own bugs. Split from transport.ts.
 */
import type { Logger } from 'pino';
import { HandshakeRefusal } from './handshake.js';
import type { DropReason, TransportEvents } from './interfaces.js';
import type { TransportLog } from './log-limits.js';
import type { Connection, PeerState } from './peer-link.js';

export class TransportReporter {
  constructor(
    private readonly log: Logger,
    private readonly tlog: TransportLog,
    private readonly events: TransportEvents,
    private readonly o: { unreachableReportIntervalMs: number; now: () => number },
  ) {}

  /** Outgoing drop: counted every time, logged once per (peer, reason) per interval. */
  drop(reason: DropReason, peerId: string | null, detail: string, key?: string, quiet = false): void {
    this.emitDrop(reason, peerId);
    const n = this.tlog.limiter.check(key ?? `${peerId}:send:${reason}`);
    if (n === undefined) return;
    const fields = { peer: peerId ?? undefined, reason, repeated: n };
    // Not being connected is the normal state of a down peer: the link logs already say why.
    if (quiet) this.log.debug(fields, `dropped a message: ${detail}`);
    else this.log.warn(fields, `dropped a message: ${detail}`);
  }

  emitDrop(reason: DropReason, peerId: string | null): void {
    if (this.events.onDrop) this.callEvent('onDrop', () => this.events.onDrop!(reason, peerId));
  }

  /** `force` for a failed dial or a dropped link; message drops report at most once per interval. */
  reportUnreachable(peer: PeerState, force: boolean): void {
    const now = this.o.now();
    if (!force && now - peer.lastUnreachableAt < this.o.unreachableReportIntervalMs) return;
    peer.lastUnreachableAt = now;
    this.callEvent('onUnreachable', () => this.events.onUnreachable(peer.id));
  }

  callEvent(name: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      // Once per frame would be a line per message for as long as the bug lasts.
      const n = this.tlog.limiter.check(`handler-threw:${name}`);
      if (n !== undefined) this.log.error({ event: name, err: (err as Error)?.message, repeated: n }, 'transport event handler threw');
    }
  }

  /** A bug, not bad input: logged at error level, and the frame is treated as malformed. */
  unexpected(conn: Connection, err: unknown): HandshakeRefusal {
    const n = this.tlog.limiter.check('unexpected-frame-error');
    if (n !== undefined) {
      const who = conn.state === 'open' || conn.role === 'dialer' ? { peer: conn.peerId ?? undefined } : { claimedId: conn.peerId ?? undefined };
      this.log.error({ ...who, remote: conn.remote, err: (err as Error)?.message, repeated: n }, 'unexpected error handling a peer frame');
    }
    return new HandshakeRefusal('malformed', 'frame could not be handled');
  }
}
