/**
 * The peer port's listener, its upgrade gate, and the ws options of both ends: split from
 * transport.ts, which keeps the links. Timeouts here bound how long an unproven connection may
 * hold a slot.
 */
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { http, https } from './node-http.js';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type ClientOptions, type ServerOptions, type WebSocket } from 'ws';
import type { Admission } from './admission.js';
import { rejectUpgrade } from './peer-link.js';
import { MAX_CLOSE_WAIT_MS, MAX_FRAGMENTS_PER_MESSAGE, PEER_PATH, type ResolvedOptions } from './transport-options.js';

export interface PeerServerHandlers {
  onConnection(socket: Socket): void;
  /** A plain HTTP request on the peer port; true when handled (GET /identify), else 426. */
  onRequest(req: IncomingMessage, res: ServerResponse): boolean;
  onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  onTlsClientError(err: Error, remote: string): void;
  onError(err: Error): void;
}

/** closeTimeout and maxFragments are ws options its type definitions do not list yet. */
export function wsServerOptions(o: ResolvedOptions): ServerOptions {
  const options: ServerOptions & { closeTimeout: number; maxFragments: number } = {
    noServer: true,
    maxPayload: o.maxFrameBytes,
    perMessageDeflate: false,
    clientTracking: false,
    // ws waits 30 s for the other side's close frame by default; a stranger that never answers would hold its slot that long.
    closeTimeout: Math.min(MAX_CLOSE_WAIT_MS, o.handshakeTimeoutMs),
    maxFragments: MAX_FRAGMENTS_PER_MESSAGE,
  };
  return options;
}

export function wsClientOptions(o: ResolvedOptions): ClientOptions {
  const options: ClientOptions & { closeTimeout: number; maxFragments: number } = {
    maxPayload: o.maxFrameBytes,
    perMessageDeflate: false,
    handshakeTimeout: o.handshakeTimeoutMs,
    closeTimeout: Math.min(MAX_CLOSE_WAIT_MS, o.handshakeTimeoutMs),
    maxFragments: MAX_FRAGMENTS_PER_MESSAGE,
    // ws types it as net.createConnection with all its overloads; ws itself calls it with options only.
    ...(o.createConnection ? { createConnection: o.createConnection as ClientOptions['createConnection'] } : {}),
    // Our certificate goes along as the client certificate: a peer with a CA requires it.
    ...(o.tls ? { cert: o.tls.cert, key: o.tls.key } : {}),
    ...(o.tls?.ca ? { ca: o.tls.ca } : {}),
    ...(o.tls?.serverName ? { servername: o.tls.serverName } : {}),
  };
  return options;
}

/** Listens on o.listen; resolves with the server, its WebSocketServer and the bound port. */
export async function listenForPeers(
  o: ResolvedOptions,
  h: PeerServerHandlers,
): Promise<{ server: HttpServer | HttpsServer; wss: WebSocketServer; port: number }> {
  // A connection that has not even upgraded is held no longer than a handshake may take
  // (Node's defaults would let a silent client sit for a minute or more).
  const preUpgrade = { connectionsCheckingInterval: Math.min(MAX_CLOSE_WAIT_MS, o.handshakeTimeoutMs) };
  const tls = o.tls;
  // With a CA, a dialer must present a certificate it signed (etcd's --peer-client-cert-auth).
  const clientCertAuth = tls?.ca ? { ca: tls.ca, requestCert: true, rejectUnauthorized: true } : {};
  const server = tls
    ? https.createServer({ ...preUpgrade, ...clientCertAuth, cert: tls.cert, key: tls.key, handshakeTimeout: o.handshakeTimeoutMs })
    : http.createServer(preUpgrade);
  server.on('connection', (socket: Socket) => h.onConnection(socket));
  server.headersTimeout = o.handshakeTimeoutMs;
  server.requestTimeout = o.handshakeTimeoutMs;
  const wss = new WebSocketServer(wsServerOptions(o));
  server.on('request', (req, res) => {
    if (h.onRequest(req, res)) return;
    res.writeHead(426, { 'content-type': 'text/plain' }).end('raft-elector peer port: WebSocket upgrade required\n');
  });
  server.on('upgrade', (req, socket, head) => h.onUpgrade(req, socket, head));
  server.on('tlsClientError', (err, socket) => h.onTlsClientError(err, `${socket.remoteAddress}:${socket.remotePort}`));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.listen.port, o.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => h.onError(err));
  return { server, wss, port: (server.address() as AddressInfo).port };
}

/**
 * An upgrade on the peer port: 404 off the peer path or while closing, 503 beyond the admission
 * limits, else a WebSocket handed to `accepted` with the release of its handshake slot.
 */
export function acceptUpgrade(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  h: { closed: boolean; admission: Admission; wss: WebSocketServer; accepted(ws: WebSocket, remote: string, release: () => void): void },
): void {
  // A reset during the refusals below must not become an unhandled 'error'.
  socket.on('error', () => {});
  const remote = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
  h.admission.upgraded(remote);
  const path = (req.url ?? '').split('?')[0];
  if (h.closed || path !== PEER_PATH) {
    rejectUpgrade(socket, '404 Not Found');
    return;
  }
  const release = h.admission.admitHandshake(remote);
  if (!release) {
    rejectUpgrade(socket, '503 Service Unavailable');
    return;
  }
  socket.once('close', release);
  h.wss.handleUpgrade(req, socket, head, (ws) => h.accepted(ws, remote, release));
}
