/** One connection to one peer (Connection), the per-peer state, and small helpers of the transport. */
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocket } from 'ws';
import type { FrameOpener, FrameSealer } from './frame-auth.js';
import type { PeerTiming } from './interfaces.js';
import { MAX_CLOSE_WAIT_MS } from './transport-options.js';

export type Role = 'dialer' | 'acceptor';

/** One WebSocket to one peer, from open through handshake to close. */
export class Connection {
  state: 'handshake' | 'open' | 'closed' = 'handshake';
  /** What the handshake waits for next ('admission': the acceptor's duplicate check, no frame). */
  step: 'hello' | 'challenge' | 'proof' | 'welcome' | 'admission';
  peerId: string | null;
  dialerNonce = '';
  acceptorNonce = '';
  handshakeTimer: NodeJS.Timeout | null = null;
  /** When the last ping left (or the link opened); LinkUpkeep's bookkeeping. */
  lastPingAt = 0;
  /** When the outstanding ping's pong is due; 0 with none outstanding. */
  pongDueAt = 0;
  /**
   * A liveness question this side asked on the link (acceptor), and the newcomer that waits
   * for its answer: any authenticated frame before dueAt refuses the newcomer, none admits it.
   */
  question: { dueAt: number; newcomer: Connection } | null = null;
  badFrameTimes: number[] = [];
  establishedAt = 0;
  /** Set when this side closed it, so the close handler does not log the peer as the cause. */
  closedByUs: { code: number; reason: string } | null = null;
  /** A newer connection took over: its close is not a link drop. */
  superseded = false;
  lastError: string | null = null;
  /** A dialer's connect failed with one of NothingThereYetErrors: nothing answers at the address yet. */
  nothingThereYet = false;
  /** Frees this connection's slot among the unauthenticated ones (acceptor side). */
  releasePending: (() => void) | null = null;
  /** The exact hello and challenge texts: the handshake MACs cover them. */
  helloText = '';
  challengeText = '';
  /** What the peer announced in its authenticated hello or challenge. */
  peerInstance = '';
  peerTiming: PeerTiming | null = null;
  /** The fresh-vote delay the peer announced in its hello or challenge (ms); null: none. */
  peerFreshVoteDelayMs: number | null = null;
  /** What the peer announced when that was out of range and taken adjusted (handshake.ts readFreshVoteDelay); else null. */
  peerFreshVoteDelayAnnounced: number | null = null;
  /** When that delay ends on our clock (set at establish); -Infinity with none to serve. */
  peerFreshVoteDelayEndsAt: number | null = null;
  /** The longest refusal window the peer announced it ever had (its timing record); null: none. */
  peerLongestRefusalWindowMs: number | null = null;
  /** What the peer announced when that was out of range and taken adjusted (handshake.ts readRecordedWindow); else null. */
  peerLongestRefusalWindowAnnounced: number | null = null;
  /** The longest lease window the peer announced it ever had (its timing record); null: none. */
  peerLongestLeaseWindowMs: number | null = null;
  /** As peerLongestRefusalWindowAnnounced, for the lease window. */
  peerLongestLeaseWindowAnnounced: number | null = null;
  sealer: FrameSealer | null = null;
  opener: FrameOpener | null = null;
  /** When the last authenticated frame arrived (or the handshake completed): the liveness of the process behind it. */
  lastAuthAt = 0;

  constructor(
    readonly ws: WebSocket,
    readonly role: Role,
    readonly remote: string,
    peerId: string | null,
  ) {
    this.peerId = peerId;
    this.step = role === 'acceptor' ? 'hello' : 'challenge';
  }

  close(code: number, reason: string): void {
    if (this.closedByUs === null) this.closedByUs = { code, reason };
    if (this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.terminate();
    } else if (this.ws.readyState === WebSocket.OPEN) {
      // A close reason is at most 123 bytes.
      this.ws.close(code, Buffer.from(reason).subarray(0, 123).toString());
    }
  }

  clearTimers(): void {
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    this.pongDueAt = 0;
  }

  /** Seals and sends one frame (the link must be open). */
  sendSealed(kind: 'm' | 'k', payload: string): void {
    this.ws.send(this.sealer!.seal(kind, payload));
  }
}

export interface PeerState {
  id: string;
  host: string | null;
  port: number | null;
  /** Exactly one side of each pair dials: see WsTransport. */
  weDial: boolean;
  /** In the applied configuration (setMembers); a peer known only by address or link is a joiner. */
  member: boolean;
  link: Connection | null;
  /** Our dial in progress (dialer side only). */
  pending: Connection | null;
  reconnectTimer: NodeJS.Timeout | null;
  attempt: number;
  /** When its address was last set (the transport's monotonic clock), and whether a link came up since: see newPeerRedial. */
  addressSetAt: number;
  linkedSinceAddress: boolean;
  lastUnreachableAt: number;
  /** An out-of-range fresh-vote delay from this peer was logged already (once per peer). */
  loggedFreshVoteAdjust: boolean;
  /** An out-of-range window of this peer's timing record was logged already (once per peer). */
  loggedLongestWindowAdjust: boolean;
  log: Logger;
}

/**
 * Connect errors after which an address never linked is redialled fast (redialDelayMs): nothing
 * is there yet, and the error comes at once, so the wait is all the redial's. ECONNREFUSED: the
 * host answers, nothing listens (a pod whose process is starting). EHOSTUNREACH: no route or
 * neighbour yet (a new pod's network being set up, or an ICMP unreachable). Not a timeout
 * (ETIMEDOUT, or the handshake timer cutting a connect): within that dial the kernel kept
 * retrying (SYN, ARP), so a fast redial would win only the backoff's gap, and a blackholed
 * (partitioned) address is what times out. Not ENETUNREACH (no route to the whole network: a
 * configuration, not a start-up), nor DNS errors (each redial would be a lookup). The fast
 * redial is bounded by newPeerRedial.windowMs after the address was set (at most about
 * 2 * windowMs / intervalMs dials), and its log line by the transport's repeat limit.
 */
export const NothingThereYetErrors: ReadonlySet<string> = new Set(['ECONNREFUSED', 'EHOSTUNREACH']);

/**
 * Capped exponential backoff with equal jitter: between half and all of
 * min(maxMs, initialMs * 2^attempt), so redials spread out but never come at once.
 */
export function reconnectDelayMs(attempt: number, backoff: { initialMs: number; maxMs: number }, random: () => number): number {
  const base = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(base / 2 + (base / 2) * random());
}

/**
 * The next redial of a peer: fast while it was never linked since its address was set, the
 * last dial failed before the socket opened with nothing there yet (NothingThereYetErrors),
 * and the address is younger than the window; else the capped exponential backoff. A process
 * that listens but refuses the handshake (a wrong secret, a duplicate) always gets the backoff.
 */
export function redialDelayMs(
  peer: Pick<PeerState, 'attempt' | 'addressSetAt' | 'linkedSinceAddress'>,
  /** False only when the last dial failed with one of NothingThereYetErrors. */
  socketOpened: boolean,
  nowMs: number,
  o: { reconnectBackoff: { initialMs: number; maxMs: number }; newPeerRedial: { intervalMs: number; windowMs: number } },
  random: () => number,
): { delayMs: number; fast: boolean } {
  const fast = !peer.linkedSinceAddress && !socketOpened && nowMs - peer.addressSetAt < o.newPeerRedial.windowMs;
  if (fast) return { delayMs: reconnectDelayMs(0, { initialMs: o.newPeerRedial.intervalMs, maxMs: o.newPeerRedial.intervalMs }, random), fast };
  return { delayMs: reconnectDelayMs(peer.attempt, o.reconnectBackoff, random), fast };
}

/** Answers an upgrade we refuse, and cuts the socket even if the client never reads or closes. */
export function rejectUpgrade(socket: Duplex, status: string): void {
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  setTimeout(() => socket.destroy(), MAX_CLOSE_WAIT_MS).unref();
}

/** What to do about a refusal that has a likely cause. */
export function refusalHint(refusal: string, selfId: string): string {
  if (refusal === 'duplicate_member') {
    return `: another live process holds member id ${selfId} there; this process stays out of the group through that peer and retries with backoff (stop one of the two)`;
  }
  if (refusal === 'bad_version') return ': members on different protocol versions cannot talk (a rolling upgrade in progress? finish it)';
  return '';
}

/** One spelling per address: IPv4-mapped IPv6 as IPv4, no brackets, lower case. */
export function normalizeHost(host: string): string {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h.startsWith('::ffff:') && h.includes('.') ? h.slice(7) : h;
}

/** Plain UTF-16 code unit order, the same on every member (no locale). */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
