import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { makeMessage, type Message } from '../raft/index.js';
import { encodeMessage } from './codec.js';
import { ClusterError } from './errors.js';
import { FrameSealer, deriveLinkKeys } from './frame-auth.js';
import { CloseCodes, computeMac, newInstanceId, newNonce } from './handshake.js';
import type { DropReason, PeerTiming } from './interfaces.js';
import { WsTransport, reconnectDelayMs, type WsTransportOptions } from './transport.js';

const tlsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '../test/fixtures/tls');
const secret = Buffer.from('0123456789abcdef0123456789abcdef');
const otherSecret = Buffer.from('fedcba9876543210fedcba9876543210');
const timing = { tickMs: 100, electionTicks: 10, maxClockDriftMs: 100 };

/** A v2 hello as a dialer sends it; `patch` overrides fields. */
function helloText(from: string, to: string, patch: Record<string, unknown> = {}): string {
  return JSON.stringify({ kind: 'hello', v: 2, cluster: 'demo', from, to, auth: 'hmac-sha256', nonce: newNonce(), instance: newInstanceId(), timing, ...patch });
}

type LogLine = Record<string, unknown> & { msg: string };

function captureLogger(): { logger: pino.Logger; lines: () => LogLine[] } {
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

async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Node {
  id: string;
  t: WsTransport;
  received: Message[];
  unreachable: string[];
  drops: Array<{ reason: DropReason; peer: string | null }>;
  connected: Map<string, boolean>;
  timings: Array<[string, PeerTiming]>;
  logs: () => LogLine[];
}

const open: WsTransport[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
});

async function node(
  id: string,
  peers: Array<{ id: string; port?: number }>,
  extra: Partial<WsTransportOptions> = {},
): Promise<Node> {
  const { logger, lines } = captureLogger();
  const n: Node = { id, t: undefined as unknown as WsTransport, received: [], unreachable: [], drops: [], connected: new Map(), timings: [], logs: lines };
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
      onPeerTiming: (p, t) => n.timings.push([p, t]),
    },
    ...extra,
  });
  open.push(n.t);
  await n.t.start();
  return n;
}

function heartbeat(from: string, to: string, context = '1'): Message {
  return makeMessage({ type: 'MsgHeartbeat', from, to, term: 2, commit: 0, context });
}

function connected(n: Node, peer: string): boolean {
  return n.t.peers().find((p) => p.id === peer)?.connected === true;
}

function logsWith(n: Node, pred: (l: LogLine) => boolean): LogLine[] {
  return n.logs().filter(pred);
}

/** A hand-driven peer that speaks the wire protocol, for frames no WsTransport would send. */
class RawPeer {
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

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe('WsTransport', () => {
  it('two members connect once (the smaller id dials) and exchange messages both ways', async () => {
    const b = await node('b', [{ id: 'a' }]);
    const a = await node('a', [{ id: 'b', port: b.t.port }]);
    await waitFor('a and b connected', () => connected(a, 'b') && connected(b, 'a'));
    a.t.send(heartbeat('a', 'b', '41'));
    b.t.send(makeMessage({ type: 'MsgHeartbeatResp', from: 'b', to: 'a', term: 2, context: '41' }));
    await waitFor('both delivered', () => a.received.length === 1 && b.received.length === 1);
    expect(b.received[0]).toEqual(heartbeat('a', 'b', '41'));
    expect(a.received[0]!.type).toBe('MsgHeartbeatResp');
    expect(a.connected.get('b')).toBe(true);
    expect(b.connected.get('a')).toBe(true);
    // b never learned a's address and still reaches it: over the one connection a dialed.
    expect(b.t.peers()).toEqual([{ id: 'a', address: null, connected: true }]);
    expect(logsWith(a, (l) => l.msg === 'peer connected' && l.peer === 'b' && l.component === 'transport')).toHaveLength(1);
  });

  it('three members form a full mesh and deliver every message to its addressee', async () => {
    const c = await node('c', [{ id: 'a' }, { id: 'b' }]);
    const b = await node('b', [{ id: 'a' }, { id: 'c', port: c.t.port }]);
    const a = await node('a', [{ id: 'b', port: b.t.port }, { id: 'c', port: c.t.port }]);
    const nodes = [a, b, c];
    await waitFor('full mesh', () => nodes.every((n) => n.t.peers().every((p) => p.connected)));
    for (const from of nodes) for (const to of nodes) if (from !== to) from.t.send(heartbeat(from.id, to.id, `${from.id}->${to.id}`));
    await waitFor('six messages', () => nodes.every((n) => n.received.length === 2));
    for (const n of nodes) {
      expect(n.received.every((m) => m.to === n.id && m.context === `${m.from}->${n.id}`)).toBe(true);
    }
    expect(a.t.peers().map((p) => p.id)).toEqual(['b', 'c']);
  });

  it('refuses a wrong secret on both sides, naming the peer, and never connects', async () => {
    const b = await node('b', [{ id: 'a' }], { secret: otherSecret });
    const a = await node('a', [{ id: 'b', port: b.t.port }]);
    await waitFor('a refused', () => logsWith(a, (l) => l.reason === 'refused_by_peer:wrong_secret').length > 0);
    await waitFor('a reports b unreachable', () => a.unreachable.includes('b'));
    const refusal = logsWith(b, (l) => l.reason === 'wrong_secret');
    expect(refusal).toHaveLength(1); // repeats within the interval are folded, not logged per redial
    // The acceptor names the dialer by the id it claimed, not as a peer: the claim proved nothing.
    expect(refusal[0]).toMatchObject({ claimedId: 'a', component: 'transport', level: 40 });
    expect(refusal[0]!.peer).toBeUndefined();
    expect(String(refusal[0]!.remote)).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(refusal[0]!.msg).toMatch(/failed to prove the shared secret/);
    expect(logsWith(a, (l) => l.reason === 'refused_by_peer:wrong_secret')[0]).toMatchObject({ peer: 'b' });
    expect(connected(a, 'b') || connected(b, 'a')).toBe(false);
    expect(b.received).toHaveLength(0);
    // Nothing on any log line carries the secret.
    for (const l of [...a.logs(), ...b.logs()]) {
      expect(JSON.stringify(l)).not.toContain(secret.toString());
      expect(JSON.stringify(l)).not.toContain(otherSecret.toString());
    }
  });

  it('refuses a member of another cluster', async () => {
    const b = await node('b', [{ id: 'a' }]);
    const a = await node('a', [{ id: 'b', port: b.t.port }], { clusterName: 'other' });
    await waitFor('b refused', () => logsWith(b, (l) => l.reason === 'wrong_cluster').length > 0);
    expect(logsWith(b, (l) => l.reason === 'wrong_cluster')[0]).toMatchObject({ claimedId: 'a' });
    expect(logsWith(b, (l) => l.reason === 'wrong_cluster')[0]!.msg).toMatch(/"other".*"demo"/);
    await waitFor('a told why', () => logsWith(a, (l) => l.reason === 'refused_by_peer:wrong_cluster' && l.peer === 'b').length > 0);
  });

  it('refuses an unknown member id, logging the claimed id and address', async () => {
    const b = await node('b', [{ id: 'c' }]);
    await node('a', [{ id: 'b', port: b.t.port }]);
    await waitFor('b refused a', () => logsWith(b, (l) => l.reason === 'unknown_member').length > 0);
    const line = logsWith(b, (l) => l.reason === 'unknown_member')[0]!;
    expect(line.claimedId).toBe('a');
    expect(line.peer).toBeUndefined();
    expect(String(line.remote)).toMatch(/^127\.0\.0\.1:/);
    expect(b.drops).toContainEqual({ reason: 'unauthenticated', peer: null });
  });

  it('refuses a bad protocol version with close code 4004 and says which', async () => {
    const b = await node('b', [{ id: 'a' }]);
    const raw = new RawPeer(b.t.port);
    await waitFor('open', () => raw.ws.readyState === WebSocket.OPEN);
    // A member of the landed version 1 (no per-frame authentication) is refused, never served in a downgraded mode.
    raw.ws.send(JSON.stringify({ kind: 'hello', v: 1, cluster: 'demo', from: 'a', to: 'b', auth: 'hmac-sha256', nonce: newNonce() }));
    const closed = await raw.waitClosed();
    expect(closed.code).toBe(CloseCodes.bad_version);
    expect(closed.reason).toMatch(/version 1.*speaks 2/);
    expect(logsWith(b, (l) => l.reason === 'bad_version')[0]).toMatchObject({ claimedId: 'a' });
  });

  it('closes a connection that does not finish the handshake in time, and bounds unauthenticated connections', async () => {
    const b = await node('b', [{ id: 'a' }], { handshakeTimeoutMs: 300, maxPendingHandshakes: 2 });
    const silent = [new RawPeer(b.t.port), new RawPeer(b.t.port)];
    await waitFor('two open', () => silent.every((r) => r.ws.readyState === WebSocket.OPEN));
    const third = new RawPeer(b.t.port);
    await waitFor('third refused', () => third.closed !== null);
    expect(third.ws.readyState).toBe(WebSocket.CLOSED);
    expect(logsWith(b, (l) => /too many unauthenticated connections/.test(l.msg))).toHaveLength(1);
    for (const r of silent) expect((await r.waitClosed()).code).toBe(CloseCodes.timeout);
    expect(logsWith(b, (l) => l.reason === 'timeout').length).toBeGreaterThan(0);
    // The slots are free again: a real member gets in.
    const a = await node('a', [{ id: 'b', port: b.t.port }]);
    await waitFor('connected', () => connected(a, 'b'));
  });

  it('terminates a link whose pong does not come back in time', async () => {
    const b = await node('b', [{ id: 'a' }], { pingIntervalMs: 50, pongTimeoutMs: 150 });
    const raw = new RawPeer(b.t.port, { autoPong: false });
    await raw.handshake('a', 'b');
    await waitFor('b sees a', () => connected(b, 'a'));
    await waitFor('b drops a', () => b.connected.get('a') === false);
    expect(logsWith(b, (l) => /did not answer a ping/.test(l.msg) && l.peer === 'a')).toHaveLength(1);
    expect(b.unreachable).toContain('a');
  });

  it('keeps a link whose pongs come back', async () => {
    const b = await node('b', [{ id: 'a' }], { pingIntervalMs: 20, pongTimeoutMs: 100 });
    const raw = new RawPeer(b.t.port);
    let pings = 0;
    raw.ws.on('ping', () => pings++);
    await raw.handshake('a', 'b');
    // Ten pings span twice the pong deadline: a link that mishandled pongs would be cut by now.
    await waitFor('ten pings answered', () => pings >= 10);
    expect(connected(b, 'a')).toBe(true);
    expect(raw.closed).toBeNull();
  });

  it('refuses a peer that dials against the dial rule, and one that runs insecure', async () => {
    const b = await node('b', [{ id: 'a' }, { id: 'c' }]);
    const raw = new RawPeer(b.t.port);
    await waitFor('open', () => raw.ws.readyState === WebSocket.OPEN);
    raw.ws.send(helloText('c', 'b'));
    expect((await raw.waitClosed()).code).toBe(CloseCodes.wrong_dial_direction);

    const insecure = await node('a', [{ id: 'b', port: b.t.port }], { insecure: true });
    await waitFor('auth mismatch refused', () => logsWith(b, (l) => l.reason === 'auth_mode_mismatch' && l.claimedId === 'a').length > 0);
    expect(logsWith(insecure, (l) => /authentication is OFF/.test(l.msg))).toHaveLength(1);
  });

  it('insecure members still check ids and exchange messages', async () => {
    const b = await node('b', [{ id: 'a' }], { insecure: true });
    const a = await node('a', [{ id: 'b', port: b.t.port }], { insecure: true });
    await waitFor('connected', () => connected(a, 'b'));
    a.t.send(heartbeat('a', 'b'));
    await waitFor('delivered', () => b.received.length === 1);
  });

  it('an oversized frame closes the link with 1009, both sides log it, and the link comes back', async () => {
    const b = await node('b', [{ id: 'a' }], { maxFrameBytes: 4096, maxBufferedBytesPerPeer: 65536 });
    const a = await node('a', [{ id: 'b', port: b.t.port }], { maxFrameBytes: 65536 });
    await waitFor('connected', () => connected(a, 'b'));
    const entries = Array.from({ length: 400 }, (_, i) => ({ index: i + 1, term: 1 }));
    a.t.send(makeMessage({ type: 'MsgApp', from: 'a', to: 'b', term: 1, entries }));
    await waitFor('b logs the oversized frame', () => logsWith(b, (l) => l.reason === 'frame_oversized' && l.peer === 'a').length > 0);
    await waitFor('a sees 1009', () => logsWith(a, (l) => l.code === 1009 && l.peer === 'b').length > 0);
    expect(b.drops).toContainEqual({ reason: 'frame_oversized', peer: 'a' });
    expect(b.received).toHaveLength(0);
    await waitFor('reconnected', () => connected(a, 'b') && connected(b, 'a'));
    a.t.send(heartbeat('a', 'b'));
    await waitFor('delivered after reconnect', () => b.received.length === 1);
  });

  it('never sends a frame above its own limit: drops it locally instead', async () => {
    const b = await node('b', [{ id: 'a' }]);
    const a = await node('a', [{ id: 'b', port: b.t.port }], { maxFrameBytes: 2048 });
    await waitFor('connected', () => connected(a, 'b'));
    const entries = Array.from({ length: 400 }, (_, i) => ({ index: i + 1, term: 1 }));
    a.t.send(makeMessage({ type: 'MsgApp', from: 'a', to: 'b', term: 1, entries }));
    expect(a.drops).toEqual([{ reason: 'frame_oversized', peer: 'b' }]);
    expect(connected(a, 'b')).toBe(true);
  });

  it('drops a malformed frame with one log line, survives it, and closes a link that keeps misbehaving', async () => {
    const b = await node('b', [{ id: 'a' }], { maxBadFrames: 3 });
    const raw = new RawPeer(b.t.port);
    await raw.handshake('a', 'b');
    await waitFor('b sees a', () => connected(b, 'a'));
    raw.sendSealed('{"v":2,"cluster":"demo","msg":{"type":"MsgHup"}}');
    await waitFor('dropped and logged', () => b.drops.length === 1);
    expect(b.drops[0]).toEqual({ reason: 'frame_invalid', peer: 'a' });
    const line = logsWith(b, (l) => l.reason === 'frame_invalid')[0]!;
    expect(line).toMatchObject({ peer: 'a', level: 40 });
    expect(line.msg).toMatch(/MsgHup is local/);
    // The link survives one bad frame: the next good one is delivered.
    raw.sendSealed(encodeMessage(heartbeat('a', 'b', 'after-bad'), 'demo'));
    await waitFor('good frame delivered', () => b.received.length === 1);
    expect(b.received[0]!.context).toBe('after-bad');
    // Repeats are counted but not logged again within the interval.
    raw.sendSealed('not json');
    raw.sendSealed(encodeMessage(heartbeat('a', 'b'), 'other-cluster'));
    await waitFor('three drops', () => b.drops.length === 3);
    expect(b.drops.map((d) => d.reason)).toEqual(['frame_invalid', 'frame_invalid', 'wrong_cluster']);
    expect(logsWith(b, (l) => l.reason === 'frame_invalid')).toHaveLength(1);
    raw.sendSealed('[]');
    const closed = await raw.waitClosed();
    expect(closed.code).toBe(CloseCodes.misbehaving);
    expect(logsWith(b, (l) => /keeps sending bad frames/.test(l.msg) && l.peer === 'a')).toHaveLength(1);
    await waitFor('b reports a gone', () => b.connected.get('a') === false && b.unreachable.includes('a'));
  });

  it('accepts only frames from the authenticated peer, except a forwarded MsgTransferLeader', async () => {
    const c = await node('c', [{ id: 'a' }, { id: 'b' }]);
    const raw = new RawPeer(c.t.port);
    await raw.handshake('a', 'c');
    raw.sendSealed(encodeMessage(heartbeat('b', 'c'), 'demo')); // a pretends to be b
    raw.sendSealed(encodeMessage(heartbeat('a', 'x'), 'demo')); // not for this member
    raw.sendSealed(encodeMessage(makeMessage({ type: 'MsgTransferLeader', from: 'b', to: 'c' }), 'demo'));
    raw.sendSealed(encodeMessage(makeMessage({ type: 'MsgTransferLeader', from: 'zed', to: 'c' }), 'demo'));
    await waitFor('all four handled', () => c.received.length + c.drops.length === 4);
    expect(c.received.map((m) => [m.type, m.from])).toEqual([['MsgTransferLeader', 'b']]);
    expect(c.drops).toEqual([
      { reason: 'unauthenticated', peer: 'a' },
      { reason: 'frame_invalid', peer: 'a' },
      { reason: 'unauthenticated', peer: 'a' },
    ]);
  });

  it('reconnects after the accepting peer restarts on the same port', async () => {
    let b = await node('b', [{ id: 'a' }]);
    const port = b.t.port;
    const a = await node('a', [{ id: 'b', port }]);
    await waitFor('connected', () => connected(a, 'b'));
    await b.t.close();
    await waitFor('a sees the drop', () => a.connected.get('b') === false && a.unreachable.includes('b'));
    b = await node('b', [{ id: 'a' }], { listen: { host: '127.0.0.1', port } });
    await waitFor('reconnected', () => connected(a, 'b') && connected(b, 'a'));
    a.t.send(heartbeat('a', 'b'));
    await waitFor('delivered', () => b.received.length === 1);
  });

  it('keeps the newest link when the dialing peer restarts (its old link gone silent)', async () => {
    const fast = { tickMs: 10, electionTicks: 2, maxClockDriftMs: 0 };
    const b = await node('b', [{ id: 'a' }], { localTiming: fast });
    // a1 stands for a process that stopped: it sends no keepalive within b's live window (20 ms).
    const a1 = await node('a', [{ id: 'b', port: b.t.port }], { localTiming: fast, liveLinkWindowMs: 600_000 });
    await waitFor('connected', () => connected(b, 'a'));
    const a2 = await node('a', [{ id: 'b', port: b.t.port }], { localTiming: fast }); // a restarted before b noticed the old socket die
    await waitFor('a2 connected', () => connected(a2, 'b'));
    expect(connected(b, 'a')).toBe(true);
    b.t.send(heartbeat('b', 'a'));
    await waitFor('delivered to the new a', () => a2.received.length === 1);
    expect(a1.received).toHaveLength(0);
    const replaced = logsWith(b, (l) => l.msg === 'peer connected' && l.replaced === true);
    expect(replaced).toHaveLength(1);
    expect(replaced[0]).toMatchObject({ instance: a2.t.instanceId, previousInstance: a1.t.instanceId });
  });

  it('refuses a second live process claiming one member id: both sides warn, and the link never flaps', async () => {
    const b = await node('b', [{ id: 'a' }]);
    const a1 = await node('a', [{ id: 'b', port: b.t.port }]);
    await waitFor('a1 connected', () => connected(b, 'a') && connected(a1, 'b'));
    const a2 = await node('a', [{ id: 'b', port: b.t.port }]); // the same id, another process
    await waitFor('b warns', () => logsWith(b, (l) => l.reason === 'duplicate_member').length > 0);
    await waitFor('a2 warns', () => logsWith(a2, (l) => l.reason === 'refused_by_peer:duplicate_member').length > 0);
    const warning = logsWith(b, (l) => l.reason === 'duplicate_member')[0]!;
    expect(warning).toMatchObject({ level: 40, peer: 'a', instance: a1.t.instanceId, newcomerInstance: a2.t.instanceId });
    expect(warning.msg).toMatch(/two live processes claim member id a/);
    expect(String(warning.newcomerRemote)).toMatch(/^127\.0\.0\.1:\d+$/);
    const refused = logsWith(a2, (l) => l.reason === 'refused_by_peer:duplicate_member')[0]!;
    expect(refused).toMatchObject({ level: 40, peer: 'b' });
    expect(refused.msg).toMatch(/another live process holds member id a/);
    // a2 keeps retrying with backoff for a while: every retry is refused, the first link stays, and the logs stay folded.
    const until = Date.now() + 1500;
    await waitFor('retries', () => Date.now() > until);
    expect(b.drops.filter((d) => d.reason === 'duplicate_member').length).toBeGreaterThan(1);
    expect(logsWith(b, (l) => l.msg === 'peer connected')).toHaveLength(1);
    expect(logsWith(b, (l) => l.reason === 'duplicate_member')).toHaveLength(1);
    expect(logsWith(a2, (l) => l.reason === 'refused_by_peer:duplicate_member')).toHaveLength(1);
    expect(connected(a2, 'b')).toBe(false);
    b.t.send(heartbeat('b', 'a'));
    await waitFor('delivered to the first a', () => a1.received.length === 1);
    expect(a2.received).toHaveLength(0);
    // When the first process goes away, the second one gets in on its next retry.
    await a1.t.close();
    await waitFor('a2 connected', () => connected(a2, 'b'));
  });

  it('announces its timing in the handshake: the other side learns it before the first message of every link', async () => {
    const events: string[] = [];
    const b = await node('b', [{ id: 'a' }], { localTiming: { tickMs: 20, electionTicks: 15, maxClockDriftMs: 7 } });
    const { logger } = captureLogger();
    const a = new WsTransport({
      selfId: 'a',
      clusterName: 'demo',
      listen: { host: '127.0.0.1', port: 0 },
      peers: [{ id: 'b', host: '127.0.0.1', port: b.t.port }],
      secret,
      localTiming: timing,
      logger,
      events: {
        onMessage: (m) => events.push(`message ${m.context}`),
        onUnreachable: () => {},
        onPeerTiming: (peer, t) => events.push(`timing ${peer} ${t.tickMs}/${t.electionTicks}/${t.maxClockDriftMs}`),
      },
    });
    open.push(a);
    await a.start();
    await waitFor('connected', () => connected(b, 'a'));
    b.t.send(heartbeat('b', 'a', 'first'));
    await waitFor('delivered', () => events.length === 2);
    expect(events).toEqual(['timing b 20/15/7', 'message first']);
    expect(b.timings).toEqual([['a', timing]]);
  });

  it('drops messages for an absent peer, reporting unreachable at a bounded rate', async () => {
    const port = await freePort();
    const a = await node('a', [{ id: 'b', port }, { id: 'c' }], { unreachableReportIntervalMs: 60_000 });
    await waitFor('first connect failure reported', () => a.unreachable.length > 0);
    const before = a.unreachable.filter((p) => p === 'c').length;
    for (let i = 0; i < 1000; i++) a.t.send(heartbeat('a', 'c'));
    a.t.send(heartbeat('a', 'nobody'));
    expect(a.drops.filter((d) => d.reason === 'not_connected' && d.peer === 'c')).toHaveLength(1000);
    expect(a.unreachable.filter((p) => p === 'c').length - before).toBe(1);
    expect(a.drops).toContainEqual({ reason: 'peer_unknown', peer: null });
    expect(a.t.peers()).toEqual([
      { id: 'b', address: `127.0.0.1:${port}`, connected: false },
      { id: 'c', address: null, connected: false },
    ]);
  });

  it("bounds a slow peer's send buffer: drops and reports instead of growing", async () => {
    const limit = 256 * 1024;
    const b = await node('b', [{ id: 'a' }], { maxBufferedBytesPerPeer: limit });
    const raw = new RawPeer(b.t.port);
    await raw.handshake('a', 'b');
    await waitFor('b sees a', () => connected(b, 'a'));
    raw.ws.pause(); // a stops reading: the kernel buffers fill, then b's send buffer
    const entries = Array.from({ length: 1500 }, (_, i) => ({ index: i + 1, term: 1 }));
    const big = makeMessage({ type: 'MsgApp', from: 'b', to: 'a', term: 1, entries });
    let maxSeen = 0;
    const deadline = Date.now() + 20_000;
    while (!b.drops.some((d) => d.reason === 'send_buffer_full') && Date.now() < deadline) {
      for (let i = 0; i < 50; i++) {
        b.t.send(big);
        maxSeen = Math.max(maxSeen, b.t.bufferedBytes('a'));
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(b.drops.some((d) => d.reason === 'send_buffer_full' && d.peer === 'a')).toBe(true);
    expect(maxSeen).toBeLessThanOrEqual(limit);
    expect(b.unreachable).toContain('a');
  });

  it('speaks wss with the test CA, and a dialer that trusts another CA cannot connect', async () => {
    const read = (f: string): Buffer => fs.readFileSync(path.join(tlsDir, f));
    const tls = { cert: read('member.pem'), key: read('member-key.pem'), ca: read('ca.pem') };
    const b = await node('b', [{ id: 'a' }, { id: 'c' }], { tls });
    const a = await node('a', [{ id: 'b', port: b.t.port }], { tls });
    await waitFor('connected over wss', () => connected(a, 'b'));
    a.t.send(heartbeat('a', 'b'));
    await waitFor('delivered', () => b.received.length === 1);
    expect(logsWith(b, (l) => l.msg === 'listening for peers')[0]).toMatchObject({ tls: true });

    const wrongCa = { ...tls, ca: read('other-ca.pem') };
    const c = await node('c', [{ id: 'b', port: b.t.port }], { tls: wrongCa });
    // c > b, so b would dial c; make a dialer with the wrong CA instead: 'a2' < 'b'.
    const a2 = await node('a2', [{ id: 'b', port: b.t.port }], { tls: wrongCa });
    await waitFor('a2 cannot connect', () => logsWith(a2, (l) => /cannot connect/.test(l.msg) && l.peer === 'b').length > 0);
    const line = logsWith(a2, (l) => /cannot connect/.test(l.msg))[0]!;
    expect(String(line.error)).toMatch(/certificate/i);
    expect(connected(a2, 'b')).toBe(false);
    expect(c.received).toHaveLength(0);
  });

  it('close() releases the port', async () => {
    const a = await node('a', [{ id: 'b' }]);
    const port = a.t.port;
    await a.t.close();
    const srv = net.createServer();
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, '127.0.0.1', resolve);
    });
    await new Promise<void>((r) => srv.close(() => r()));
  });

  it('validates its options up front, naming the broken relation', () => {
    const base: WsTransportOptions = {
      selfId: 'a',
      clusterName: 'demo',
      listen: { host: '127.0.0.1', port: 0 },
      peers: [{ id: 'b' }],
      secret,
      localTiming: timing,
      logger: pino({ level: 'silent' }),
      events: { onMessage: () => {}, onUnreachable: () => {} },
    };
    const cases: Array<[Partial<WsTransportOptions>, RegExp]> = [
      [{ secret: Buffer.from('short') }, /5 bytes; at least 16/],
      [{ insecure: true }, /secret and insecure are exclusive/],
      [{ secret: undefined }, /shared secret is required/],
      [{ maxFrameBytes: 65536, maxBufferedBytesPerPeer: 4096 }, /maxBufferedBytesPerPeer \(4096\) must be at least maxFrameBytes \(65536\)/],
      [{ reconnectBackoff: { initialMs: 500, maxMs: 100 } }, /maxMs \(100\) must be at least initialMs \(500\)/],
      [{ maxPendingHandshakes: 4, maxPendingHandshakesPerHost: 5 }, /maxPendingHandshakesPerHost \(5\) must be at most maxPendingHandshakes \(4\)/],
      [{ localTiming: { ...timing, tickMs: 0 } }, /localTiming: timing\.tickMs must be an integer in 1\.\.60000/],
      [{ maxPreUpgradeConnections: 0 }, /maxPreUpgradeConnections must be a positive integer/],
      [{ maxStrangerLogLinesPerInterval: 0 }, /maxStrangerLogLinesPerInterval must be a positive integer/],
      [{ peers: [{ id: 'b' }, { id: 'b' }] }, /peer b is listed twice/],
      [{ peers: [{ id: 'b', host: 'x' }] }, /both host and port/],
      [{ selfId: 'has space' }, /selfId/],
      [{ listen: { host: '127.0.0.1', port: 70000 } }, /listen\.port/],
    ];
    for (const [patch, message] of cases) {
      let caught: unknown;
      try {
        new WsTransport({ ...base, ...patch });
      } catch (err) {
        caught = err;
      }
      expect(caught, String(message)).toBeInstanceOf(ClusterError);
      expect((caught as ClusterError).code).toBe('INVALID_TRANSPORT_OPTIONS');
      expect((caught as ClusterError).message).toMatch(message);
    }
    // This member's own id in the peer list is skipped, not an error.
    expect(new WsTransport({ ...base, peers: [{ id: 'a' }, { id: 'b' }] }).peers().map((p) => p.id)).toEqual(['b']);
  });

  it('dials a peer whose address arrives later, and moves when the address changes', async () => {
    const b1 = await node('b', [{ id: 'a' }]);
    const a = await node('a', [{ id: 'b' }]);
    expect(a.t.peers()[0]).toEqual({ id: 'b', address: null, connected: false });
    a.t.setPeerAddress('b', '127.0.0.1', b1.t.port);
    await waitFor('connected to b1', () => connected(b1, 'a'));
    const b2 = await node('b', [{ id: 'a' }]);
    a.t.setPeerAddress('b', '127.0.0.1', b2.t.port);
    await waitFor('moved to b2', () => connected(b2, 'a') && connected(a, 'b'));
    await waitFor('b1 dropped', () => !connected(b1, 'a'));
    a.t.send(heartbeat('a', 'b'));
    await waitFor('delivered to b2', () => b2.received.length === 1);
    expect(b1.received).toHaveLength(0);
  });

  it('backs off exponentially with jitter, capped', () => {
    const backoff = { initialMs: 100, maxMs: 1000 };
    expect([0, 1, 2, 3, 4, 10].map((n) => reconnectDelayMs(n, backoff, () => 0))).toEqual([50, 100, 200, 400, 500, 500]);
    expect([0, 1, 2, 3, 4, 10].map((n) => reconnectDelayMs(n, backoff, () => 0.999999))).toEqual([100, 200, 400, 800, 1000, 1000]);
  });
});

describe('WsTransport against a hostile network', () => {
  it('a frame injected into an authenticated link never reaches raft: the link closes, logged and counted', async () => {
    const b = await node('b', [{ id: 'a' }]);
    const raw = new RawPeer(b.t.port);
    await raw.handshake('a', 'b');
    await waitFor('b sees a', () => connected(b, 'a'));
    raw.sendSealed(encodeMessage(heartbeat('a', 'b', 'genuine'), 'demo'));
    await waitFor('genuine frame delivered', () => b.received.length === 1);
    // What an on-path relay without the secret can write: a well-formed v2 envelope, unsealed or sealed with a guess.
    raw.ws.send(encodeMessage(makeMessage({ type: 'MsgTimeoutNow', from: 'a', to: 'b', term: 2 }), 'demo'));
    expect((await raw.waitClosed()).code).toBe(CloseCodes.frame_auth_failed);
    expect(b.received.map((m) => m.context)).toEqual(['genuine']);
    expect(b.drops).toContainEqual({ reason: 'frame_auth_failed', peer: 'a' });
    const line = logsWith(b, (l) => l.reason === 'frame_auth_failed')[0]!;
    expect(line).toMatchObject({ level: 40, peer: 'a', expectedSeq: 1 });
    expect(String(line.remote)).toMatch(/^127\.0\.0\.1:\d+$/);
    await waitFor('b reports a gone', () => b.connected.get('a') === false);
  });

  it.each([
    ['replayed', (f: string[]) => [f[0]!, f[0]!]],
    ['reordered', (f: string[]) => [f[1]!, f[0]!]],
    ['removed', (f: string[]) => [f[1]!]],
    ['altered', (f: string[]) => [f[0]!.replace('"term":2', '"term":9')]],
    ['truncated', (f: string[]) => [f[0]!.slice(0, -5)]],
  ])('a %s frame closes the link before anything after it is delivered', async (_name, mangle) => {
    const b = await node('b', [{ id: 'a' }]);
    const raw = new RawPeer(b.t.port);
    await raw.handshake('a', 'b');
    const frames = [raw.sealer!.seal('m', encodeMessage(heartbeat('a', 'b', 'f0'), 'demo')), raw.sealer!.seal('m', encodeMessage(heartbeat('a', 'b', 'f1'), 'demo'))];
    const sent = mangle(frames);
    for (const f of sent) raw.ws.send(f);
    expect((await raw.waitClosed()).code).toBe(CloseCodes.frame_auth_failed);
    // Only a prefix of genuine, in-order frames ever arrives: here at most f0, delivered before the bad one.
    expect(b.received.map((m) => m.context)).toEqual(sent[0] === frames[0] ? ['f0'] : []);
    expect(b.drops).toContainEqual({ reason: 'frame_auth_failed', peer: 'a' });
  });

  it('with a TLS CA, a dialer must present a client certificate that CA signed', async () => {
    const read = (f: string): Buffer => fs.readFileSync(path.join(tlsDir, f));
    const tls = { cert: read('member.pem'), key: read('member-key.pem'), ca: read('ca.pem') };
    const b = await node('b', [{ id: 'a' }, { id: 'a2' }], { tls });
    expect(logsWith(b, (l) => l.msg === 'listening for peers')[0]).toMatchObject({ tls: true, clientCertAuth: true });
    // No client certificate: the TLS handshake fails before any byte of the peer protocol.
    const bare = new WebSocket(`wss://127.0.0.1:${b.t.port}/raft`, { ca: tls.ca });
    let bareError = '';
    bare.on('error', (e) => (bareError = e.message));
    await waitFor('bare client refused', () => bareError !== '' || bare.readyState === WebSocket.CLOSED);
    expect(bare.readyState).not.toBe(WebSocket.OPEN);
    // A certificate from another CA (the dialer itself trusts b's CA): refused too, even with the right secret.
    const a2 = await node('a2', [{ id: 'b', port: b.t.port }], { tls: { cert: read('other-member.pem'), key: read('other-member-key.pem'), ca: tls.ca } });
    await waitFor('a2 cannot connect', () => logsWith(a2, (l) => /cannot connect/.test(l.msg)).length > 0);
    expect(connected(a2, 'b')).toBe(false);
    await waitFor('b logs the failed TLS handshakes', () => logsWith(b, (l) => l.reason === 'tls_failed').length > 0);
    expect(String(logsWith(b, (l) => l.reason === 'tls_failed')[0]!.err)).toMatch(/certificate/i);
    // The genuine member with a certificate from the CA gets in.
    const a = await node('a', [{ id: 'b', port: b.t.port }], { tls });
    await waitFor('a connected over mutual TLS', () => connected(a, 'b') && connected(b, 'a'));
    bare.terminate();
  });

  it('a known peer address always gets a handshake slot, whatever strangers hold', async () => {
    // b knows a at 127.0.0.1 (discovery told it); strangers come from 127.0.0.2 and .3.
    const b = await node('b', [{ id: 'a', port: 1 }], { handshakeTimeoutMs: 10_000, maxPendingHandshakes: 4, maxPendingHandshakesPerHost: 2 });
    const squatters = ['127.0.0.2', '127.0.0.2', '127.0.0.3', '127.0.0.3', '127.0.0.4'].map((localAddress) => {
      const ws = new WebSocket(`ws://127.0.0.1:${b.t.port}/raft`, { localAddress });
      ws.on('error', () => {});
      return ws;
    });
    await waitFor('squatters settled', () => squatters.every((w) => w.readyState === WebSocket.OPEN || w.readyState === WebSocket.CLOSED));
    expect(squatters.filter((w) => w.readyState === WebSocket.OPEN)).toHaveLength(4); // every shared slot is taken
    expect(b.drops).toContainEqual({ reason: 'admission_refused', peer: null });
    expect(logsWith(b, (l) => l.reason === 'handshakes_full')).toHaveLength(1);
    const a = await node('a', [{ id: 'b', port: b.t.port }]);
    await waitFor('the known peer gets in at once', () => connected(a, 'b') && connected(b, 'a'), 3000);
    for (const w of squatters) w.terminate();
  });

  it('caps TCP connections that never upgrade, sparing known peers', async () => {
    const b = await node('b', [{ id: 'a', port: 1 }], { handshakeTimeoutMs: 10_000, maxPreUpgradeConnections: 3 });
    const sockets = ['127.0.0.2', '127.0.0.2', '127.0.0.3', '127.0.0.3'].map((localAddress) => {
      const sock = net.connect({ port: b.t.port, host: '127.0.0.1', localAddress });
      sock.on('error', () => {});
      return sock;
    });
    let cut = 0;
    for (const sock of sockets) sock.on('close', () => cut++);
    await waitFor('one stranger cut', () => cut === 1);
    expect(b.drops).toContainEqual({ reason: 'admission_refused', peer: null });
    expect(logsWith(b, (l) => l.reason === 'pre_upgrade_full')[0]).toMatchObject({ limit: 3, level: 40 });
    const a = await node('a', [{ id: 'b', port: b.t.port }]);
    await waitFor('the known peer still gets in', () => connected(a, 'b'), 3000);
    for (const sock of sockets) sock.destroy();
  });

  it('refuses a hello without kind or v as malformed instead of throwing out of the ws handler', async () => {
    const b = await node('b', [{ id: 'a' }]);
    for (const hello of ['{}', '{"kind":"hello"}', '{"v":2}', '{"kind":"hello","v":2}']) {
      const raw = new RawPeer(b.t.port);
      await waitFor('open', () => raw.ws.readyState === WebSocket.OPEN);
      raw.ws.send(hello);
      const closed = await raw.waitClosed();
      expect(closed.code, hello).toBe(CloseCodes.malformed);
    }
    expect(logsWith(b, (l) => l.reason === 'malformed').length).toBeGreaterThan(0);
    // Still serving: a real member connects afterwards.
    const a = await node('a', [{ id: 'b', port: b.t.port }]);
    await waitFor('connected', () => connected(a, 'b'));
  });

  it('strangers cannot flood the log: refusals fold per source address, not per connection or claimed id', async () => {
    const b = await node('b', [{ id: 'a' }]);
    for (let i = 0; i < 20; i++) {
      const liar = new RawPeer(b.t.port);
      await waitFor('open', () => liar.ws.readyState === WebSocket.OPEN);
      liar.ws.send(helloText(`intruder-${i}`, 'b'));
      const garbage = new RawPeer(b.t.port);
      await waitFor('open', () => garbage.ws.readyState === WebSocket.OPEN);
      garbage.ws.send('garbage');
      await liar.waitClosed();
      await garbage.waitClosed();
    }
    const refusals = logsWith(b, (l) => /refused peer handshake/.test(l.msg));
    expect(refusals.filter((l) => l.reason === 'unknown_member')).toHaveLength(1);
    expect(refusals.filter((l) => l.reason === 'malformed')).toHaveLength(1);
    // Every refusal is still counted.
    expect(b.drops.filter((d) => d.reason === 'unauthenticated')).toHaveLength(40);
  });

  it('strangers from many addresses share one budget of log lines per interval', async () => {
    const b = await node('b', [{ id: 'a' }]);
    let opened = 0;
    for (let i = 2; i < 40; i++) {
      const raw = new WebSocket(`ws://127.0.0.1:${b.t.port}/raft`, { localAddress: `127.0.0.${i}` });
      raw.on('error', () => {});
      raw.on('open', () => {
        opened++;
        raw.send('garbage');
      });
      await new Promise((r) => raw.once('close', r));
    }
    if (opened === 0) {
      console.log('skipped: cannot bind 127.0.0.x source addresses here');
      return;
    }
    expect(opened).toBe(38);
    const refusals = logsWith(b, (l) => /refused peer handshake/.test(l.msg));
    expect(refusals.length).toBeLessThanOrEqual(10);
    expect(b.drops.filter((d) => d.reason === 'unauthenticated')).toHaveLength(38);
  });

  it('a stranger that ignores our close frame frees its handshake slot soon after the timeout', async () => {
    const b = await node('b', [{ id: 'a' }], { handshakeTimeoutMs: 300, maxPendingHandshakes: 2 });
    // Raw TCP clients that upgrade and then never read or answer anything.
    const mutes: net.Socket[] = [];
    for (let i = 0; i < 2; i++) {
      const s = net.connect(b.t.port, '127.0.0.1');
      s.on('error', () => {});
      s.write(
        'GET /raft HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      );
      s.pause();
      mutes.push(s);
    }
    try {
      await waitFor('both refused on timeout', () => logsWith(b, (l) => l.reason === 'timeout').length > 0 && b.drops.length === 2);
      const a = await node('a', [{ id: 'b', port: b.t.port }]);
      // ws would wait 30 s for the mute clients' close frames; the slots must come back well before that.
      await waitFor('a real member gets in', () => connected(a, 'b'), 5000);
    } finally {
      for (const s of mutes) s.destroy();
    }
  });

  it('one source address cannot take every handshake slot', async () => {
    const b = await node('b', [{ id: 'a' }], { handshakeTimeoutMs: 10_000, maxPendingHandshakes: 4, maxPendingHandshakesPerHost: 2 });
    const squatters = Array.from({ length: 4 }, () => {
      const ws = new WebSocket(`ws://127.0.0.1:${b.t.port}/raft`, { localAddress: '127.0.0.2' });
      ws.on('error', () => {});
      return ws;
    });
    await waitFor('squatters settled', () => squatters.every((w) => w.readyState === WebSocket.OPEN || w.readyState === WebSocket.CLOSED));
    expect(squatters.filter((w) => w.readyState === WebSocket.OPEN)).toHaveLength(2);
    expect(logsWith(b, (l) => /from one address/.test(l.msg))).toHaveLength(1);
    // A real member from another address still gets in while the squatters wait out their timeout.
    const a = await node('a', [{ id: 'b', port: b.t.port }]);
    await waitFor('a real member gets in', () => connected(a, 'b'), 3000);
    for (const w of squatters) w.terminate();
  });

  it('a TCP client that never sends its upgrade request is cut after about the handshake timeout', async () => {
    const b = await node('b', [{ id: 'a' }], { handshakeTimeoutMs: 300 });
    const s = net.connect(b.t.port, '127.0.0.1');
    s.on('error', () => {});
    let closedAt = 0;
    s.on('close', () => (closedAt = Date.now()));
    s.resume(); // read, so the server's FIN surfaces as 'end' and 'close'
    await new Promise((r) => s.once('connect', r));
    const start = Date.now();
    // Node's own default would hold it for 60 s (headersTimeout) or longer.
    await waitFor('server closes the silent socket', () => closedAt > 0, 5000);
    expect(closedAt - start).toBeGreaterThanOrEqual(250);
  });

  it('an authenticated link that stays quiet longer than the handshake timeout is kept', async () => {
    const b = await node('b', [{ id: 'a' }], { handshakeTimeoutMs: 200, pingIntervalMs: 60_000 });
    const a = await node('a', [{ id: 'b', port: b.t.port }], { handshakeTimeoutMs: 200, pingIntervalMs: 60_000 });
    await waitFor('connected', () => connected(a, 'b') && connected(b, 'a'));
    const idleUntil = Date.now() + 800;
    await waitFor('four handshake timeouts of silence', () => Date.now() > idleUntil);
    expect(connected(a, 'b') && connected(b, 'a')).toBe(true);
    expect(b.connected.get('a')).toBe(true);
    a.t.send(heartbeat('a', 'b'));
    await waitFor('delivered', () => b.received.length === 1);
  });

  it('maxPayload applies before authentication: a huge hello closes with 1009, logged once per address', async () => {
    const b = await node('b', [{ id: 'a' }], { maxFrameBytes: 4096 });
    for (let i = 0; i < 3; i++) {
      const raw = new RawPeer(b.t.port);
      await waitFor('open', () => raw.ws.readyState === WebSocket.OPEN);
      raw.ws.send('x'.repeat(1 << 20));
      expect((await raw.waitClosed()).code).toBe(CloseCodes.messageTooBig);
    }
    const lines = logsWith(b, (l) => l.reason === 'frame_oversized');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40 });
    expect(lines[0]!.peer).toBeUndefined();
    expect(b.drops.filter((d) => d.reason === 'frame_oversized')).toEqual(Array(3).fill({ reason: 'frame_oversized', peer: null }));
    const a = await node('a', [{ id: 'b', port: b.t.port }], { maxFrameBytes: 4096 });
    await waitFor('a real member still gets in', () => connected(a, 'b'));
  });

  it('a proof captured from one connection is refused on another (fresh acceptor nonce per connection)', async () => {
    const b = await node('b', [{ id: 'a' }]);
    const first = new RawPeer(b.t.port);
    await waitFor('open', () => first.ws.readyState === WebSocket.OPEN);
    const dialerNonce = newNonce();
    const hello = helloText('a', 'b', { nonce: dialerNonce });
    first.ws.send(hello);
    const challenge1Text = await first.nextText();
    const challenge1 = JSON.parse(challenge1Text) as Record<string, unknown>;
    const proof = JSON.stringify({
      kind: 'proof',
      mac: computeMac(secret, 'dialer', {
        cluster: 'demo',
        dialer: 'a',
        acceptor: 'b',
        dialerNonce,
        acceptorNonce: String(challenge1.nonce),
        hello,
        challenge: challenge1Text,
      }),
    });
    first.ws.send(proof);
    expect((await first.next()).kind).toBe('welcome');
    // An eavesdropper replays the same hello and proof on a new connection.
    const replay = new RawPeer(b.t.port);
    await waitFor('open', () => replay.ws.readyState === WebSocket.OPEN);
    replay.ws.send(hello);
    const challenge2 = await replay.next();
    expect(challenge2.nonce).not.toBe(challenge1.nonce);
    replay.ws.send(proof);
    expect((await replay.waitClosed()).code).toBe(CloseCodes.wrong_secret);
    expect(first.closed).toBeNull(); // the genuine link is untouched
    expect(b.received).toHaveLength(0);
  });

  it("a stranger's forged refusal close codes fold into one line and do not hide the real peer's refusal", async () => {
    const b = await node('b', [{ id: 'a' }]);
    for (let i = 0; i < 5; i++) {
      const raw = new RawPeer(b.t.port);
      await waitFor('open', () => raw.ws.readyState === WebSocket.OPEN);
      raw.ws.send(helloText('a', 'b'));
      await raw.next();
      raw.ws.close(CloseCodes.wrong_secret, 'forged');
      await raw.waitClosed();
    }
    const lines = logsWith(b, (l) => /refused our handshake/.test(l.msg));
    expect(lines).toHaveLength(1); // folded per source address, not keyed by the id it claimed
    expect(lines[0]!.reason).toBe('refused_by_peer:wrong_secret');
    // The real a with a wrong secret is still reported (its own refusal key was not used up by the stranger).
    await node('a', [{ id: 'b', port: b.t.port }], { secret: otherSecret });
    await waitFor('b logs the real refusal', () => logsWith(b, (l) => l.reason === 'wrong_secret').length === 1);
  });

  it('close() while a dial hangs in the HTTP upgrade returns promptly and fires no event afterwards', async () => {
    // A listener that accepts TCP and never answers: the dial sits in CONNECTING.
    const sockets: net.Socket[] = [];
    const blackhole = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', r));
    try {
      const a = await node('a', [{ id: 'b', port: (blackhole.address() as net.AddressInfo).port }], { handshakeTimeoutMs: 10_000 });
      await waitFor('dial reached the blackhole', () => sockets.length === 1);
      const eventsBefore = a.unreachable.length + a.drops.length + a.connected.size;
      const started = Date.now();
      await a.t.close();
      expect(Date.now() - started).toBeLessThan(2000);
      a.t.send(heartbeat('a', 'b'));
      a.t.setPeerAddress('b', '127.0.0.1', 1);
      await new Promise((r) => setTimeout(r, 100));
      expect(a.unreachable.length + a.drops.length + a.connected.size).toBe(eventsBefore);
      expect(sockets.length).toBe(1); // no redial after close
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => blackhole.close(() => r()));
    }
  });

  it('an event handler that throws on every message is logged once per interval, and the link stays up', async () => {
    let calls = 0;
    const b = await node('b', [{ id: 'a' }], {
      events: {
        onMessage: () => {
          calls++;
          throw new Error('handler bug');
        },
        onUnreachable: () => {},
      },
    });
    const a = await node('a', [{ id: 'b', port: b.t.port }]);
    await waitFor('connected', () => connected(a, 'b'));
    for (let i = 0; i < 20; i++) a.t.send(heartbeat('a', 'b', String(i)));
    // Every message still reaches the (still throwing) handler.
    await waitFor('all twenty handled', () => calls === 20);
    const lines = logsWith(b, (l) => /handler threw/.test(l.msg));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 50, event: 'onMessage', err: 'handler bug' });
    expect(connected(a, 'b') && connected(b, 'a')).toBe(true);
  });

  it('a message split into many tiny fragments is refused early (1008), before ws buffers thousands of parts', async () => {
    const b = await node('b', [{ id: 'a' }]);
    const raw = new RawPeer(b.t.port);
    await waitFor('open', () => raw.ws.readyState === WebSocket.OPEN);
    // Under maxFrameBytes in total, but each one-byte part costs the receiver a Buffer object.
    for (let i = 0; i < 1000; i++) raw.ws.send('x', { fin: false });
    expect((await raw.waitClosed()).code).toBe(1008);
    const line = logsWith(b, (l) => l.reason === 'frame_fragmented')[0]!;
    expect(line).toMatchObject({ level: 40 });
    expect(line.msg).toMatch(/fragments/);
    expect(b.drops).toContainEqual({ reason: 'frame_invalid', peer: null });
  });
});

