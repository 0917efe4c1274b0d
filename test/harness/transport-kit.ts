/** Shared pieces of the WsTransport tests: a capturing logger, started nodes, a hand-driven raw peer. */
import * as net from 'node:net';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { expect } from 'vitest';
import { WebSocket } from 'ws';
import { makeMessage, type Message } from '../../raft/index.js';
import { FrameSealer, deriveLinkKeys } from '../../cluster/frame-auth.js';
import { computeMac, newInstanceId, newNonce } from '../../cluster/handshake.js';
import type { DropReason, PeerTiming, PeerTimingRecord } from '../../cluster/interfaces.js';
import { WsTransport, type WsTransportOptions } from '../../cluster/transport.js';

export const tlsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/tls');
export const secret = Buffer.from('0123456789abcdef0123456789abcdef');
export const otherSecret = Buffer.from('fedcba9876543210fedcba9876543210');
export const timing = { tickMs: 100, electionTicks: 10, maxClockDriftMs: 100 };

/** A v2 hello as a dialer sends it; `patch` overrides fields. */
export function helloText(from: string, to: string, patch: Record<string, unknown> = {}): string {
  return JSON.stringify({ kind: 'hello', v: 2, cluster: 'demo', from, to, auth: 'hmac-sha256', nonce: newNonce(), instance: newInstanceId(), timing, ...patch });
}

export type LogLine = Record<string, unknown> & { msg: string };

export function captureLogger(): { logger: pino.Logger; lines: () => LogLine[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  return {
    logger: pino({ level: 'debug' }, stream),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => JSON.parse(l) as LogLine),
  };
}

export async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface Node {
  id: string;
  t: WsTransport;
  received: Message[];
  unreachable: string[];
  drops: Array<{ reason: DropReason; peer: string | null }>;
  connected: Map<string, boolean>;
  timings: Array<[string, PeerTiming]>;
  /** The timing record each onPeerTiming carried (undefined: the peer announced none). */
  records: Array<[string, PeerTimingRecord | undefined]>;
  logs: () => LogLine[];
}

/** Every transport a test started; closeAll() (in afterEach) closes them. */
export const open: WsTransport[] = [];
export async function closeAll(): Promise<void> {
  await Promise.all(open.splice(0).map((t) => t.close()));
}

export async function node(
  id: string,
  peers: Array<{ id: string; port?: number }>,
  extra: Partial<WsTransportOptions> = {},
): Promise<Node> {
  const { logger, lines } = captureLogger();
  const n: Node = { id, t: undefined as unknown as WsTransport, received: [], unreachable: [], drops: [], connected: new Map(), timings: [], records: [], logs: lines };
  n.t = new WsTransport({
    selfId: id,
    clusterName: 'demo',
    listen: { host: '127.0.0.1', port: 0 },
    peers: peers.map((p) => (p.port === undefined ? { id: p.id } : { id: p.id, host: '127.0.0.1', port: p.port })),
    ...(extra.insecure ? {} : { secret }),
    localTiming: timing,
    reconnectBackoff: { initialMs: 20, maxMs: 200 },
    random: () => 0.5,
    logger,
    events: {
      onMessage: (m) => n.received.push(m),
      onUnreachable: (p) => n.unreachable.push(p),
      onDrop: (reason, peer) => n.drops.push({ reason, peer }),
      onPeerConnectionChange: (p, c) => n.connected.set(p, c),
      onPeerTiming: (p, t, record) => {
        n.timings.push([p, t]);
        n.records.push([p, record]);
      },
    },
    ...extra,
  });
  open.push(n.t);
  await n.t.start();
  return n;
}

export function heartbeat(from: string, to: string, context = '1'): Message {
  return makeMessage({ type: 'MsgHeartbeat', from, to, term: 2, commit: 0, context });
}

export function connected(n: Node, peer: string): boolean {
  return n.t.peers().find((p) => p.id === peer)?.connected === true;
}

export function logsWith(n: Node, pred: (l: LogLine) => boolean): LogLine[] {
  return n.logs().filter(pred);
}

/** A hand-driven peer that speaks the wire protocol, for frames no WsTransport would send. */
export class RawPeer {
  readonly ws: WebSocket;
  readonly inbox: string[] = [];
  closed: { code: number; reason: string } | null = null;
  private opened = false;
  /** Seals frames as the dialer, once the handshake is done. */
  sealer: FrameSealer | null = null;

  constructor(port: number, options: { autoPong?: boolean } = {}) {
    this.ws = new WebSocket(`ws://127.0.0.1:${port}/raft`, { maxPayload: 1 << 24, ...options });
    this.ws.on('open', () => (this.opened = true));
    this.ws.on('message', (d) => this.inbox.push(d.toString()));
    this.ws.on('close', (code, reason) => (this.closed = { code, reason: reason.toString() }));
    this.ws.on('error', () => {});
  }

  async nextText(): Promise<string> {
    await waitFor('a handshake frame from the transport', () => this.inbox.length > 0 || this.closed !== null);
    const text = this.inbox.shift();
    if (text === undefined) throw new Error(`closed: ${JSON.stringify(this.closed)}`);
    return text;
  }

  async next(): Promise<Record<string, unknown>> {
    return JSON.parse(await this.nextText()) as Record<string, unknown>;
  }

  /** Runs the dialer's half of the handshake; `hello` overrides fields of the hello. */
  async handshake(self: string, to: string, opts: { key?: Buffer; hello?: Record<string, unknown> } = {}): Promise<void> {
    await waitFor('raw peer open', () => this.opened || this.closed !== null);
    const hello = helloText(self, to, opts.hello);
    const dialerNonce = String((JSON.parse(hello) as { nonce: string }).nonce);
    this.ws.send(hello);
    const challengeText = await this.nextText();
    const challenge = JSON.parse(challengeText) as Record<string, unknown>;
    const input = { cluster: 'demo', dialer: self, acceptor: to, dialerNonce, acceptorNonce: String(challenge.nonce), hello, challenge: challengeText };
    this.ws.send(JSON.stringify({ kind: 'proof', mac: computeMac(opts.key ?? secret, 'dialer', input) }));
    const welcome = await this.next();
    expect(welcome.mac).toBe(computeMac(opts.key ?? secret, 'acceptor', input));
    this.sealer = new FrameSealer(deriveLinkKeys(opts.key ?? secret, 'dialer', input).send);
  }

  /** Sends one raft envelope (or any text) as a correctly sealed frame. */
  sendSealed(payload: string): void {
    this.ws.send(this.sealer!.seal('m', payload));
  }

  async waitClosed(): Promise<{ code: number; reason: string }> {
    await waitFor('raw peer closed', () => this.closed !== null);
    return this.closed!;
  }
}

export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

