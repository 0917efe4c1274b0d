/**
 * The WebSocket transport between members: one authenticated connection per peer
 * pair, validated frames in, bounded buffers out. Raft tolerates message loss, so
 * nothing here blocks or queues without limit: a message that cannot leave now is
 * dropped, counted (onDrop) and the peer reported unreachable. This file keeps the peers'
 * links (dial, accept, establish, close); the rest is in transport-*.ts (docs/design.md).
 */
import type * as http from 'node:http';
import type * as https from 'node:https';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocket, type RawData, type WebSocketServer } from 'ws';
import type { Message } from '../raft/index.js';
import { PROTOCOL_VERSION, encodeMessage } from './codec.js';
import { ClusterError } from './errors.js';
import { FrameOpener, FrameSealer, MAX_FRAME_OVERHEAD_BYTES, deriveLinkKeys } from './frame-auth.js';
import { CloseCodes, HandshakeRefusal, buildHello, newInstanceId, newNonce, type AuthMode, type MacInput } from './handshake.js';
import { handshakeStep, optionalAnnouncements, welcome, type HandshakeContext } from './handshake-step.js';
import type { PeerInfo, PeerTransport, TransportEvents } from './interfaces.js';
import { TransportLog } from './log-limits.js';
import { Admission } from './admission.js';
import { PeerTable } from './transport-peers.js';
import { IdentifyResponder, identifyPeer } from './identify.js';
import { DuplicateCheck } from './duplicate-check.js';
import { LinkUpkeep } from './link-upkeep.js';
import { acceptUpgrade, listenForPeers, wsClientOptions } from './transport-server.js';
import { freshVoteDelayOf, noteFreshVoteDelay } from './transport-fresh-vote.js';
import { noteTimingRecord, peerTimingRecord } from './transport-timing-record.js';
import { LinkInbound } from './transport-inbound.js';
import { TransportReporter } from './transport-report.js';
import { logClosed } from './transport-close-log.js';
import { Connection, NothingThereYetErrors, compareIds, redialDelayMs, type PeerState } from './peer-link.js';
import { PEER_PATH, resolveTransportOptions, type ResolvedOptions, type WsTransportOptions } from './transport-options.js';

export { MIN_SECRET_BYTES, PEER_PATH, resolveTransportOptions } from './transport-options.js';
export type { TransportPeer, TransportTlsOptions, WsTransportOptions } from './transport-options.js';
export { reconnectDelayMs } from './peer-link.js';

/** Enough for every member of a large group to re-identify at once; a stranger gets 429 beyond it. */
const IdentifyAnswersPerSecond = 50;

/**
 * One connection per peer pair: the member with the smaller id (plain string
 * order) dials, the other only accepts. Both sides derive the same answer from
 * the ids alone, so two connections between a pair never race each other and
 * no tie-break is needed. The cost: the larger-id member cannot reach a peer
 * whose address only it knows; every member knows every address from --peers or
 * DNS, so that never happens in practice. A dialer that finds its link gone
 * redials with capped exponential backoff; an acceptor that gets an
 * authenticated connection from a peer it already has a link with keeps the new
 * one (the old socket is from before the peer restarted).
 */
export class WsTransport implements PeerTransport {
  private readonly o: ResolvedOptions;
  private readonly log: Logger;
  private readonly events: TransportEvents;
  private readonly peerStates: PeerTable;
  private readonly sockets = new Set<Connection>();
  private readonly tlog: TransportLog;
  private readonly auth: AuthMode;
  /** Random per start: a second live process claiming our id has another. */
  readonly instanceId = newInstanceId();
  private readonly admission: Admission;
  private readonly identity: IdentifyResponder;
  private readonly upkeep: LinkUpkeep;
  private readonly duplicates: DuplicateCheck;
  private readonly handshakeContext: HandshakeContext;
  private readonly report: TransportReporter;
  private readonly inbound: LinkInbound;
  private server: http.Server | https.Server | null = null;
  private wss: WebSocketServer | null = null;
  private boundPort: number | null = null;
  private started = false;
  private closed = false;

  constructor(options: WsTransportOptions) {
    this.o = resolveTransportOptions(options);
    this.events = options.events;
    this.log = options.logger.child({ component: 'transport', self: this.o.selfId });
    this.tlog = new TransportLog(this.log, this.o.logRepeatIntervalMs, this.o.maxStrangerLogLinesPerInterval, this.o.now);
    this.auth = this.o.secret ? 'hmac-sha256' : 'none';
    this.report = new TransportReporter(this.log, this.tlog, this.events, this.o);
    this.admission = new Admission(this.o, (host) => this.peerStates.hasHost(host), (remote, reason, limit, message) => {
      this.report.emitDrop('admission_refused', null);
      this.tlog.warnStranger(null, remote, reason, message, { limit });
    });
    this.peerStates = new PeerTable(this.o.selfId, this.o.maxPeers, this.log, this.o.now);
    this.identity = new IdentifyResponder({ selfId: this.o.selfId, clusterName: this.o.clusterName, secret: this.o.secret, answersPerSecond: IdentifyAnswersPerSecond, now: () => performance.now() });
    for (const p of this.o.peers) this.peerStates.add(p.id, p.host ?? null, p.port ?? null, true);
    this.upkeep = new LinkUpkeep(this.o, {
      links: () => this.peerStates.links(),
      pongOverdue: (conn) => {
        this.peerStates.get(conn.peerId!)?.log.warn({ remote: conn.remote, pongTimeoutMs: this.o.pongTimeoutMs }, 'peer did not answer a ping in time; dropping the link');
        conn.ws.terminate();
      },
      questionUnanswered: (conn) => this.duplicates.unanswered(conn),
    }, this.o.now);
    this.duplicates = new DuplicateCheck({
      linkOf: (id) => this.peerStates.get(id)?.link,
      liveWindowMs: (conn) => this.liveWindowMs(conn),
      maxQuestionWaitMs: Math.floor(this.o.handshakeTimeoutMs / 2),
      refuse: (newcomer, current) => this.refuseAsDuplicate(newcomer, current),
      admit: (newcomer) => {
        try {
          this.establish(newcomer, welcome(newcomer, this.handshakeContext));
        } catch (err) {
          this.refuse(newcomer, err instanceof HandshakeRefusal ? err : this.report.unexpected(newcomer, err));
        }
      },
      changed: () => this.upkeep.changed(),
      now: this.o.now,
    });
    this.inbound = new LinkInbound({
      o: this.o,
      log: this.log,
      tlog: this.tlog,
      report: this.report,
      isPeer: (id) => this.peerStates.has(id),
      peerLog: (id) => this.peerStates.get(id)?.log,
      answered: (conn) => this.duplicates.answered(conn),
      deliver: (message) => this.events.onMessage(message),
    });
    this.handshakeContext = {
      selfId: this.o.selfId,
      clusterName: this.o.clusterName,
      auth: this.auth,
      secret: this.o.secret,
      instanceId: this.instanceId,
      localTiming: this.o.localTiming,
      ...(options.freshVoteDelayMs ? { freshVoteDelayMs: options.freshVoteDelayMs } : {}),
      ...(options.timingRecord ? { timingRecord: options.timingRecord } : {}),
      isMember: (id) => this.peerStates.has(id) || (this.o.dynamicPeers && this.peerStates.hasRoomFor(id)),
      weDial: (id) => this.peerStates.get(id)?.weDial ?? compareIds(this.o.selfId, id) < 0,
      // Authenticated from here: its instance id can be trusted to tell two live processes apart.
      checkDuplicate: (c) => this.duplicates.check(c),
    };
  }

  /** Which member listens at host:port (the DNS address source asks each pod IP); rejects with IDENTIFY_FAILED. */
  identify(host: string, port: number): Promise<string> {
    return identifyPeer(host, port, { clusterName: this.o.clusterName, secret: this.o.secret, tls: this.o.tls, timeoutMs: this.o.handshakeTimeoutMs });
  }

  /** The port this member listens on (after start()). */
  get port(): number {
    if (this.boundPort === null) throw new ClusterError('INVALID_TRANSPORT_OPTIONS', 'the transport is not started');
    return this.boundPort;
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    if (this.o.insecure) {
      this.log.warn('peer authentication is OFF (insecure): any process that can reach the peer port can join as a member');
    }
    const { server, wss, port } = await listenForPeers(this.o, {
      onConnection: (socket) => this.admission.onConnection(socket),
      onRequest: (req, res) => this.identity.handle(req, res),
      onUpgrade: (req, socket, head) => this.onUpgrade(req, socket, head),
      onTlsClientError: (err, remote) =>
        this.tlog.warnStranger(null, remote, 'tls_failed', 'TLS handshake with a connecting peer failed', { err: err.message }),
      onError: (err) => this.log.error({ err: err.message }, 'peer server error'),
    });
    this.server = server;
    this.wss = wss;
    this.boundPort = port;
    this.log.info(
      {
        host: this.o.listen.host,
        port: this.boundPort,
        tls: this.o.tls !== undefined,
        clientCertAuth: this.o.tls?.ca !== undefined,
        auth: this.auth,
        frameAuth: this.auth === 'none' ? 'none' : 'hmac-sha256',
        protocol: PROTOCOL_VERSION,
        instance: this.instanceId,
      },
      'listening for peers',
    );
    for (const peer of this.peerStates.values()) if (peer.weDial) this.dial(peer);
  }

  send(message: Message): void {
    if (this.closed) return;
    const peer = this.peerStates.get(message.to);
    if (!peer) {
      this.report.drop('peer_unknown', null, `no peer ${JSON.stringify(message.to)} in this cluster`, `unknown:${message.to}`);
      return;
    }
    const link = peer.link;
    if (!link || link.ws.readyState !== WebSocket.OPEN) {
      this.report.drop('not_connected', peer.id, 'not connected', undefined, true);
      this.report.reportUnreachable(peer, false);
      return;
    }
    const payload = encodeMessage(message, this.o.clusterName);
    // Sized (with the seal's header) before sealing: a sealed frame that is then dropped would leave a gap in the sequence.
    const bytes = Buffer.byteLength(payload) + MAX_FRAME_OVERHEAD_BYTES;
    if (bytes > this.o.maxFrameBytes) {
      this.report.drop('frame_oversized', peer.id, `${message.type} encodes to ${bytes} bytes, above maxFrameBytes ${this.o.maxFrameBytes}`);
      return;
    }
    if (link.ws.bufferedAmount + bytes > this.o.maxBufferedBytesPerPeer) {
      this.report.drop('send_buffer_full', peer.id, `${link.ws.bufferedAmount} bytes already wait for a slow peer (limit ${this.o.maxBufferedBytesPerPeer})`);
      this.report.reportUnreachable(peer, false);
      return;
    }
    link.sendSealed('m', payload);
    this.upkeep.sent(link);
  }

  /** In dynamic mode an unknown id becomes a peer (throws TOO_MANY_PEERS at the cap). */
  setPeerAddress(id: string, host: string, port: number): void {
    if (typeof host !== 'string' || host.length === 0 || !Number.isInteger(port) || port < 1 || port > 65535) {
      this.log.warn({ peer: id, host, port }, 'ignoring an invalid peer address');
      return;
    }
    let peer = this.peerStates.get(id);
    if (!peer) {
      if (id === this.o.selfId) return;
      if (!this.o.dynamicPeers) {
        this.log.warn({ peer: id, host, port }, 'ignoring an address for a member that is not a peer');
        return;
      }
      peer = this.peerStates.add(id, null, null, false);
      peer.log.info({ address: `${host}:${port}` }, 'peer added');
    }
    if (peer.host === host && peer.port === port) return;
    peer.log.info({ from: peer.host === null ? null : `${peer.host}:${peer.port}`, to: `${host}:${port}` }, 'peer address changed');
    peer.host = host;
    peer.port = port;
    peer.addressSetAt = this.o.now();
    peer.linkedSinceAddress = false;
    if (!peer.weDial || !this.started || this.closed) return;
    // Reconnect to the new address at once: the old one may be a pod that is gone.
    const old = [peer.pending, peer.link];
    const hadLink = peer.link !== null;
    peer.pending = peer.link = null;
    for (const conn of old) {
      if (!conn) continue;
      conn.superseded = true;
      conn.close(CloseCodes.replaced, 'peer address changed');
    }
    if (hadLink) this.report.callEvent('onPeerConnectionChange', () => this.events.onPeerConnectionChange?.(peer.id, false));
    peer.attempt = 0;
    if (peer.reconnectTimer) clearTimeout(peer.reconnectTimer);
    peer.reconnectTimer = null;
    this.dial(peer);
  }

  /**
   * The applied configuration: every id in it is a peer (address to come); a peer that was in
   * the configuration and is no longer is removed. Peers known only by address stay: they may be
   * joiners the leader is about to add.
   */
  setMembers(ids: readonly string[]): void {
    const wanted = new Set(ids);
    for (const peer of this.peerStates.values()) {
      if (peer.member && !wanted.has(peer.id)) this.removePeer(peer.id);
    }
    for (const id of [...wanted].sort(compareIds)) {
      if (id === this.o.selfId) continue;
      const existing = this.peerStates.get(id);
      if (existing) {
        existing.member = true;
        continue;
      }
      const peer = this.peerStates.add(id, null, null, true);
      peer.log.info('peer added (in the configuration)');
    }
  }

  /** Forgets a peer that is not in the configuration (a joiner whose pod is gone); a member stays. */
  dropJoiner(id: string): void {
    if (this.peerStates.get(id)?.member === false) this.removePeer(id);
  }

  /** Forgets a peer: its link closes (1001), its timers stop, its messages drop as peer_unknown. */
  removePeer(id: string): void {
    const peer = this.peerStates.get(id);
    if (!peer) return;
    this.peerStates.delete(id);
    if (peer.reconnectTimer) clearTimeout(peer.reconnectTimer);
    peer.reconnectTimer = null;
    const hadLink = peer.link !== null;
    for (const conn of [peer.pending, peer.link]) {
      if (!conn) continue;
      conn.superseded = true;
      conn.close(CloseCodes.goingAway, 'peer removed');
    }
    peer.pending = peer.link = null;
    peer.log.info('peer removed');
    if (hadLink) this.report.callEvent('onPeerConnectionChange', () => this.events.onPeerConnectionChange?.(id, false));
  }

  /** Bytes waiting to leave for `peerId` (0 without a link): bounded by maxBufferedBytesPerPeer. */
  bufferedBytes(peerId: string): number {
    const link = this.peerStates.get(peerId)?.link;
    return link ? link.ws.bufferedAmount : 0;
  }

  peers(): PeerInfo[] {
    return this.peerStates.values().map((p) => ({
      id: p.id,
      address: p.host === null ? null : `${p.host}:${p.port}`,
      connected: p.link !== null,
      ...freshVoteDelayOf(p.link, this.o.now()),
    }));
  }

  /** Closes every link (1001) and the listener; no event fires afterwards. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.upkeep.close();
    for (const peer of this.peerStates.values()) {
      if (peer.reconnectTimer) clearTimeout(peer.reconnectTimer);
      peer.reconnectTimer = null;
    }
    for (const conn of this.sockets) {
      conn.clearTimers();
      conn.close(CloseCodes.goingAway, 'member shutting down');
    }
    // Give close frames a moment to leave, then cut whatever is still open (a stopped peer never answers).
    const deadline = performance.now() + 500;
    while (this.sockets.size > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    for (const conn of this.sockets) conn.ws.terminate();
    this.wss?.close();
    const server = this.server;
    if (server) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    }
    this.log.info('peer transport closed');
  }

  // ---- accepting -------------------------------------------------------------

  private onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    acceptUpgrade(req, socket, head, {
      closed: this.closed,
      admission: this.admission,
      wss: this.wss!,
      accepted: (ws, remote, release) => {
        const conn = new Connection(ws, 'acceptor', remote, null);
        conn.releasePending = release;
        this.track(conn);
      },
    });
  }

  // ---- dialing ---------------------------------------------------------------

  private dial(peer: PeerState): void {
    if (this.closed || peer.host === null || peer.port === null || peer.link || peer.pending) return;
    const scheme = this.o.tls ? 'wss' : 'ws';
    const host = peer.host.includes(':') ? `[${peer.host}]` : peer.host;
    const url = `${scheme}://${host}:${peer.port}${PEER_PATH}`;
    const clientOptions = wsClientOptions(this.o);
    const ws = new WebSocket(url, clientOptions);
    const conn = new Connection(ws, 'dialer', `${peer.host}:${peer.port}`, peer.id);
    peer.pending = conn;
    peer.log.debug({ url, attempt: peer.attempt }, 'dialing peer');
    this.track(conn);
    ws.on('open', () => {
      conn.dialerNonce = newNonce();
      conn.helloText = buildHello({
        kind: 'hello',
        cluster: this.o.clusterName,
        from: this.o.selfId,
        to: peer.id,
        auth: this.auth,
        nonce: conn.dialerNonce,
        instance: this.instanceId,
        timing: this.o.localTiming,
        ...optionalAnnouncements(this.handshakeContext),
      });
      ws.send(conn.helloText);
    });
  }

  /** `socketOpened` false: the last dial failed at once with nothing there yet (NothingThereYetErrors). */
  private scheduleReconnect(peer: PeerState, socketOpened = true): void {
    if (this.closed || !peer.weDial || peer.reconnectTimer || peer.link || peer.pending) return;
    const { delayMs, fast } = redialDelayMs(peer, socketOpened, this.o.now(), this.o, this.o.random);
    if (!fast) peer.attempt++;
    peer.reconnectTimer = setTimeout(() => {
      peer.reconnectTimer = null;
      this.dial(peer);
    }, delayMs);
  }

  // ---- one connection --------------------------------------------------------

  private track(conn: Connection): void {
    this.sockets.add(conn);
    conn.handshakeTimer = setTimeout(() => {
      if (conn.ws.readyState === WebSocket.CONNECTING) {
        conn.lastError = `no connection within ${this.o.handshakeTimeoutMs} ms`;
        conn.ws.terminate();
        return;
      }
      this.refuse(conn, new HandshakeRefusal('timeout', `handshake did not complete within ${this.o.handshakeTimeoutMs} ms`));
    }, this.o.handshakeTimeoutMs);
    conn.ws.on('message', (data, isBinary) => this.onFrame(conn, data, isBinary));
    conn.ws.on('pong', () => this.upkeep.pong(conn));
    conn.ws.on('error', (err: Error & { code?: string }) => {
      conn.lastError = err.message;
      if (err.code !== undefined && NothingThereYetErrors.has(err.code)) conn.nothingThereYet = true;
      this.inbound.wsFrameError(conn, err.code);
    });
    conn.ws.on('close', (code, reason) => this.onClose(conn, code, reason.toString()));
  }

  private onFrame(conn: Connection, data: RawData, isBinary: boolean): void {
    if (conn.state === 'closed' || conn.closedByUs) return;
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    if (conn.state === 'handshake') {
      try {
        if (isBinary) throw new HandshakeRefusal('malformed', 'binary frame during the handshake');
        this.onHandshakeFrame(conn, buf.toString('utf8'));
      } catch (err) {
        // A throw here would escape ws's 'message' handler and crash the member: a stranger must never be able to do that.
        this.refuse(conn, err instanceof HandshakeRefusal ? err : this.report.unexpected(conn, err));
      }
      return;
    }
    this.inbound.receive(conn, buf, isBinary);
  }

  private onHandshakeFrame(conn: Connection, text: string): void {
    const established = handshakeStep(conn, text, this.handshakeContext);
    if (established) this.establish(conn, established);
  }

  /** How long a link may stay silent and still count as a live process: the longer of our and its election timeout. */
  private liveWindowMs(conn: Connection): number {
    const t = conn.peerTiming;
    return Math.max(this.o.liveLinkWindowMs, t ? t.tickMs * t.electionTicks : 0);
  }

  /** Two live processes claim one member id (duplicate-check.ts): keep the link, refuse the newcomer. */
  private refuseAsDuplicate(conn: Connection, current: Connection): void {
    const peer = this.peerStates.get(conn.peerId!)!;
    const n = this.tlog.limiter.check(`${peer.id}:duplicate_member`);
    if (n !== undefined) {
      peer.log.warn(
        {
          reason: 'duplicate_member',
          remote: current.remote,
          instance: current.peerInstance,
          newcomerRemote: conn.remote,
          newcomerInstance: conn.peerInstance,
          lastFrameAgoMs: this.o.now() - current.lastAuthAt,
          repeated: n,
        },
        `two live processes claim member id ${peer.id}: keeping the established link, refusing the newcomer (is a second copy of that member running with another data dir?)`,
      );
    }
    this.report.emitDrop('duplicate_member', peer.id);
    conn.close(CloseCodes.duplicate_member, `another live process holds member id ${peer.id}`);
  }

  private establish(conn: Connection, keyInput: MacInput): void {
    let peer = this.peerStates.get(conn.peerId!);
    if (!peer) {
      // Authenticated, from an id not known yet: a joiner (isMember let it through only in dynamic mode, below the cap).
      try {
        peer = this.peerStates.add(conn.peerId!, null, null, false);
      } catch (err) {
        this.refuse(conn, new HandshakeRefusal('unknown_member', (err as Error).message));
        return;
      }
      peer.log.info({ remote: conn.remote }, 'peer added (it connected to us)');
    }
    if (conn.handshakeTimer) clearTimeout(conn.handshakeTimer);
    conn.handshakeTimer = null;
    const keys = deriveLinkKeys(this.o.secret, conn.role, keyInput);
    conn.sealer = new FrameSealer(keys.send);
    conn.opener = new FrameOpener(keys.receive);
    conn.state = 'open';
    conn.establishedAt = conn.lastAuthAt = conn.lastPingAt = this.o.now();
    noteFreshVoteDelay(conn, peer);
    noteTimingRecord(conn, peer);
    conn.releasePending?.();
    if (peer.pending === conn) peer.pending = null;
    const previous = peer.link;
    if (previous) {
      previous.superseded = true;
      previous.close(CloseCodes.replaced, 'replaced by a newer connection from the same peer');
    }
    peer.link = conn;
    peer.linkedSinceAddress = true;
    this.upkeep.changed();
    const fields: Record<string, unknown> = { remote: conn.remote, role: conn.role, replaced: previous !== null, instance: conn.peerInstance, timing: conn.peerTiming };
    if (previous && previous.peerInstance !== conn.peerInstance) fields.previousInstance = previous.peerInstance;
    peer.log.info(fields, 'peer connected');
    // Before the link's first message: the member must know the peer's timing before it counts the peer's acks.
    const record = peerTimingRecord(conn);
    this.report.callEvent('onPeerTiming', () => this.events.onPeerTiming?.(peer.id, { ...conn.peerTiming! }, record));
    if (!previous) this.report.callEvent('onPeerConnectionChange', () => this.events.onPeerConnectionChange?.(peer.id, true));
  }

  private refuse(conn: Connection, refusal: HandshakeRefusal): void {
    if (conn.state !== 'handshake' || conn.closedByUs) return;
    const peerId = conn.peerId ?? refusal.claimedId ?? null;
    const message = `refused peer handshake: ${refusal.message}`;
    // Whoever connected to us is unproven: its claimed id and port are its to vary, so they key no log line.
    if (conn.role === 'acceptor') this.tlog.warnStranger(peerId, conn.remote, refusal.reason, message);
    else this.tlog.warnOnce(peerId, conn.remote, refusal.reason, message);
    if (conn.role === 'acceptor') this.report.emitDrop('unauthenticated', null);
    conn.close(refusal.closeCode, refusal.message);
  }

  private onClose(conn: Connection, code: number, reason: string): void {
    const wasOpen = conn.state === 'open';
    conn.state = 'closed';
    conn.clearTimers();
    conn.releasePending?.();
    this.sockets.delete(conn);
    // A link asked whether it was alive and closed instead: the newcomer that waited gets in now.
    if (conn.question && !this.closed) this.duplicates.unanswered(conn);
    else if (!wasOpen && !this.closed) this.duplicates.closedBeforeAdmission(conn);
    if (this.closed || conn.superseded || conn.peerId === null) return;
    const peer = this.peerStates.get(conn.peerId);
    if (!peer) return;
    if (wasOpen) {
      if (peer.link !== conn) return;
      peer.link = null;
      // A link that stayed up for a while earns a fast redial; one that flaps keeps backing off.
      if (this.o.now() - conn.establishedAt >= this.o.reconnectBackoff.maxMs) peer.attempt = 0;
      logClosed(conn, peer, code, reason, true, this.tlog, this.o.selfId);
      this.report.callEvent('onPeerConnectionChange', () => this.events.onPeerConnectionChange?.(peer.id, false));
      this.report.reportUnreachable(peer, true);
    } else if (conn.role === 'dialer') {
      if (peer.pending === conn) peer.pending = null;
      logClosed(conn, peer, code, reason, false, this.tlog, this.o.selfId);
      this.report.reportUnreachable(peer, true);
    } else {
      logClosed(conn, peer, code, reason, false, this.tlog, this.o.selfId);
    }
    // Only a connect that failed at once with nothing there (NothingThereYetErrors) earns the fast
    // redial: a process that answers and refuses (503 busy, 404 closing, TLS, a reset) or a
    // connect that timed out gets the backoff.
    if (!peer.link) this.scheduleReconnect(peer, wasOpen || conn.role !== 'dialer' || !conn.nothingThereYet);
  }
}
