import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { makeMessage } from '../raft/index.js';
import {
  RawPeer,
  closeAll,
  connected,
  heartbeat,
  helloText,
  logsWith,
  node,
  otherSecret,
  secret,
  tlsDir,
  waitFor,
} from '../test/harness/transport-kit.js';
import { encodeMessage } from './codec.js';
import { CloseCodes, computeMac, newNonce } from './handshake.js';

afterEach(closeAll);

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

