/**
 * What a closed connection is worth a log line for: a link dropped (the peer's reason when it
 * says one), a dial the peer refused or that failed, a stranger's refusal. Rate-limited where
 * a retry would repeat it. Split from transport.ts, which keeps the state changes of a close.
 */
import { CloseCodes, refusalForCloseCode } from './handshake.js';
import type { TransportLog } from './log-limits.js';
import { refusalHint, type Connection, type PeerState } from './peer-link.js';

/** `wasOpen`: the connection was an established link (then it was `peer`'s link). */
export function logClosed(conn: Connection, peer: PeerState, code: number, reason: string, wasOpen: boolean, tlog: TransportLog, selfId: string): void {
  if (wasOpen) {
    const fields = { remote: conn.remote, code, reason: reason || undefined, error: conn.lastError ?? undefined };
    if (code === CloseCodes.messageTooBig && !conn.closedByUs) {
      peer.log.warn(fields, 'peer closed the link: a frame from this member exceeded its frame limit (1009)');
    } else if (code === CloseCodes.frame_auth_failed && !conn.closedByUs) {
      peer.log.warn(fields, 'peer closed the link: a frame it received on it failed authentication (tampering on the path?)');
    } else {
      peer.log.info(fields, 'peer link closed');
    }
  } else if (conn.role === 'dialer') {
    const refusal = refusalForCloseCode(code);
    if (!conn.closedByUs && refusal) {
      tlog.warnOnce(peer.id, conn.remote, `refused_by_peer:${refusal}`, `peer refused our handshake: ${refusal}${reason ? ` (${reason})` : ''}${refusalHint(refusal, selfId)}`);
    } else if (!conn.closedByUs) {
      const n = tlog.limiter.check(`${peer.id}:connect_failed`);
      if (n !== undefined) {
        peer.log.info({ remote: conn.remote, code, error: conn.lastError ?? undefined, repeated: n }, 'cannot connect to peer; retrying with backoff');
      }
    }
  } else if (!conn.closedByUs) {
    // Not authenticated: the id is only claimed, and the close code is the stranger's to forge.
    const refusal = refusalForCloseCode(code);
    if (refusal) tlog.warnStranger(conn.peerId, conn.remote, `refused_by_peer:${refusal}`, `peer refused our handshake: ${refusal}${reason ? ` (${reason})` : ''}`);
  }
}
