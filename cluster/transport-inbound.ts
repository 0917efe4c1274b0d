/**
 * The frames of an established link on their way in: authenticity and order first (a frame
 * that fails its seal closes the link), then the envelope (a bad one is dropped, logged at a
 * bounded rate and counted against the link: too many close it), then who may send what. Also
 * ws's own frame errors (too big, too fragmented). Split from transport.ts.
 */
import type { Logger } from 'pino';
import type { Message } from '../raft/index.js';
import { decodeFrame } from './codec.js';
import { ClusterError, type ClusterErrorCode } from './errors.js';
import { FrameAuthError } from './frame-auth.js';
import { CloseCodes } from './handshake.js';
import type { DropReason } from './interfaces.js';
import type { TransportLog } from './log-limits.js';
import { LivenessQuestion } from './duplicate-check.js';
import type { Connection } from './peer-link.js';
import type { TransportReporter } from './transport-report.js';
import { MAX_FRAGMENTS_PER_MESSAGE, type ResolvedOptions } from './transport-options.js';

const dropReasonForCode: Partial<Record<ClusterErrorCode, DropReason>> = {
  FRAME_OVERSIZED: 'frame_oversized',
  FRAME_WRONG_CLUSTER: 'wrong_cluster',
};

export interface InboundHost {
  o: Pick<ResolvedOptions, 'selfId' | 'clusterName' | 'maxFrameBytes' | 'maxBadFrames' | 'badFrameWindowMs' | 'now'>;
  log: Logger;
  tlog: TransportLog;
  report: TransportReporter;
  isPeer(id: string): boolean;
  /** The peer's own logger (with its id), while it is a peer. */
  peerLog(id: string): Logger | undefined;
  /** An authenticated frame came on a link asked whether it was alive (duplicate-check.ts). */
  answered(conn: Connection): void;
  deliver(message: Message): void;
}

export class LinkInbound {
  constructor(private readonly h: InboundHost) {}

  /** One frame of an open link (conn.state 'open'). */
  receive(conn: Connection, buf: Buffer, isBinary: boolean): void {
    const { o } = this.h;
    const peerId = conn.peerId!;
    if (isBinary) {
      this.frameAuthFailed(conn, 'a binary frame (peers send sealed text frames)');
      return;
    }
    // Authenticity and order first: an injected, altered, replayed, reordered or cut frame never gets parsed.
    let opened: { kind: 'm' | 'k'; payload: string };
    try {
      opened = conn.opener!.open(buf.toString('utf8'));
    } catch (err) {
      if (!(err instanceof FrameAuthError)) throw err;
      this.frameAuthFailed(conn, err.message);
      return;
    }
    conn.lastAuthAt = o.now();
    // Whatever came, the process behind the link is alive: a newcomer claiming its id is a duplicate.
    if (conn.question) this.h.answered(conn);
    if (opened.kind === 'k') {
      if (opened.payload === LivenessQuestion) conn.sendSealed('k', '');
      return;
    }
    let message: Message;
    try {
      message = decodeFrame(opened.payload, { clusterName: o.clusterName, maxFrameBytes: o.maxFrameBytes });
    } catch (err) {
      if (!(err instanceof ClusterError)) this.h.report.unexpected(conn, err);
      this.badFrame(conn, err instanceof ClusterError ? (dropReasonForCode[err.code] ?? 'frame_invalid') : 'frame_invalid', (err as Error).message);
      return;
    }
    if (message.to !== o.selfId) {
      this.badFrame(conn, 'frame_invalid', `${message.type} is addressed to ${JSON.stringify(message.to)}, not to this member`);
      return;
    }
    if (message.from !== peerId) {
      // etcd forwards MsgTransferLeader from a follower to the leader unchanged, with
      // `from` = the transferee; any other message must come from the peer itself.
      const forwardedTransfer = message.type === 'MsgTransferLeader' && (this.h.isPeer(message.from) || message.from === o.selfId);
      if (!forwardedTransfer) {
        this.badFrame(conn, 'unauthenticated', `${message.type} claims to be from ${JSON.stringify(message.from)}`);
        return;
      }
    }
    this.h.report.callEvent('onMessage', () => this.h.deliver(message));
  }

  /** ws refused an incoming frame (any state): too big (ws closes with 1009) or in too many parts (1008). */
  wsFrameError(conn: Connection, code: string | undefined): void {
    const { tlog, report } = this.h;
    if (code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
      const peerId = conn.state === 'open' ? conn.peerId : null;
      const message = `peer sent a frame above maxFrameBytes (${this.h.o.maxFrameBytes}); closing the link with 1009`;
      if (peerId === null && conn.role === 'acceptor') tlog.warnStranger(conn.peerId, conn.remote, 'frame_oversized', message);
      else tlog.warnOnce(peerId, conn.remote, 'frame_oversized', message);
      report.emitDrop('frame_oversized', peerId);
    } else if (code === 'WS_ERR_TOO_MANY_BUFFERED_PARTS') {
      const peerId = conn.state === 'open' ? conn.peerId : null;
      const message = `peer split a message into more than ${MAX_FRAGMENTS_PER_MESSAGE} fragments; closing the link with 1008`;
      if (peerId === null && conn.role === 'acceptor') tlog.warnStranger(conn.peerId, conn.remote, 'frame_fragmented', message);
      else tlog.warnOnce(peerId, conn.remote, 'frame_fragmented', message);
      report.emitDrop('frame_invalid', peerId);
    }
  }

  /** A sealed-frame check failed: nothing of it reaches raft, and the link cannot be trusted any more. */
  private frameAuthFailed(conn: Connection, detail: string): void {
    const peerId = conn.peerId!;
    const n = this.h.tlog.limiter.check(`${peerId}:frame_auth_failed`);
    if (n !== undefined) {
      this.h.log.warn(
        { peer: peerId, remote: conn.remote, reason: 'frame_auth_failed', expectedSeq: conn.opener?.expected, repeated: n },
        `closing the link: a frame from peer failed authentication: ${detail} (tampering on the path?)`,
      );
    }
    this.h.report.emitDrop('frame_auth_failed', peerId);
    conn.close(CloseCodes.frame_auth_failed, 'frame failed authentication');
  }

  private badFrame(conn: Connection, reason: DropReason, detail: string): void {
    const { o } = this.h;
    const peerId = conn.peerId!;
    this.h.tlog.warnOnce(peerId, conn.remote, reason, `dropped a frame from peer: ${detail}`);
    this.h.report.emitDrop(reason, peerId);
    const now = o.now();
    conn.badFrameTimes = conn.badFrameTimes.filter((t) => now - t < o.badFrameWindowMs);
    conn.badFrameTimes.push(now);
    if (conn.badFrameTimes.length > o.maxBadFrames) {
      this.h.peerLog(peerId)?.warn(
        { remote: conn.remote, badFrames: conn.badFrameTimes.length, windowMs: o.badFrameWindowMs },
        'peer keeps sending bad frames; closing the link',
      );
      conn.close(CloseCodes.misbehaving, 'too many bad frames');
    }
  }
}
