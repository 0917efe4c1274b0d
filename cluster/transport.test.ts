import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { makeMessage } from '../raft/index.js';
import {
  RawPeer,
  captureLogger,
  closeAll,
  connected,
  freePort,
  heartbeat,
  helloText,
  logsWith,
  node,
  open,
  otherSecret,
  secret,
  timing,
  tlsDir,
  waitFor,
} from '../test/harness/transport-kit.js';
import { encodeMessage } from './codec.js';
import { ClusterError } from './errors.js';
import { TAG_CHARS } from './frame-auth.js';
import { CloseCodes, MaxFreshVoteDelayMs, MaxRefusalWindowMs, newInstanceId, newNonce } from './handshake.js';
import { WsTransport, reconnectDelayMs, type WsTransportOptions } from './transport.js';

afterEach(closeAll);

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

  it("each side learns the fresh-vote delay the other announced (a leader's successor rule), and nothing from a side that announces none", async () => {
    // b in its fresh-vote delay (1.5 s left), a past it (0), c an older member that says nothing.
    const c = await node('c', [{ id: 'a' }, { id: 'b' }]);
    const b = await node('b', [{ id: 'a' }, { id: 'c', port: c.t.port }], { freshVoteDelayMs: () => 1500 });
    const startedAtMs = performance.now();
    const a = await node('a', [{ id: 'b', port: b.t.port }, { id: 'c', port: c.t.port }], { freshVoteDelayMs: () => 0 });
    await waitFor('all linked', () => connected(a, 'b') && connected(a, 'c') && connected(b, 'c'));
    const info = (n: typeof a, id: string) => n.t.peers().find((p) => p.id === id)!;
    const bAtA = info(a, 'b').freshVoteDelayEndsInMs!;
    // A quarter more than announced: b's ticks may run late.
    expect(bAtA).toBeGreaterThanOrEqual(1500 * 1.25 - (performance.now() - startedAtMs));
    expect(bAtA).toBeLessThanOrEqual(1500 * 1.25);
    expect(info(c, 'b').freshVoteDelayEndsInMs).toBeGreaterThan(0); // b dialed c: from b's hello
    expect(info(b, 'a').freshVoteDelayEndsInMs).toBe(-Infinity); // a dialed b: from a's hello
    expect(info(a, 'c')).toEqual({ id: 'c', address: `127.0.0.1:${c.t.port}`, connected: true });
    expect(info(b, 'c')).toEqual({ id: 'c', address: `127.0.0.1:${c.t.port}`, connected: true });
  });

  it('a peer announcing a fresh-vote delay above the bound (another build) still links: its delay is taken as not over, with one warning per peer', async () => {
    let b = await node('b', [{ id: 'a' }], { freshVoteDelayMs: () => MaxFreshVoteDelayMs + 1 });
    const port = b.t.port;
    const a = await node('a', [{ id: 'b', port }], { freshVoteDelayMs: () => 0 });
    await waitFor('linked', () => connected(a, 'b'));
    a.t.send(heartbeat('a', 'b'));
    await waitFor('delivered', () => b.received.length === 1);
    expect(a.t.peers().find((p) => p.id === 'b')!.freshVoteDelayEndsInMs).toBe(Infinity);
    const warnings = () => logsWith(a, (l) => l.peer === 'b' && /fresh-vote delay above/.test(l.msg));
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatchObject({ level: 40, announcedFreshVoteDelayMs: String(MaxFreshVoteDelayMs + 1), takenFreshVoteDelayMs: 'unbounded' });
    // b restarts and links again, saying the same: no second line.
    await b.t.close();
    await waitFor('a sees the drop', () => a.connected.get('b') === false);
    b = await node('b', [{ id: 'a' }], { listen: { host: '127.0.0.1', port }, freshVoteDelayMs: () => MaxFreshVoteDelayMs + 1 });
    await waitFor('relinked', () => connected(a, 'b') && connected(b, 'a'));
    expect(logsWith(a, (l) => l.peer === 'b' && l.msg === 'peer connected')).toHaveLength(2);
    expect(warnings()).toHaveLength(1);
  });

  it('each side hears the timing record the other announced with its timing, and nothing from one that announces none', async () => {
    const bRecord = { longestRefusalWindowMs: 4_500, longestLeaseWindowMs: 4_400 };
    const aRecord = { longestRefusalWindowMs: 900, longestLeaseWindowMs: 800 };
    const c = await node('c', [{ id: 'a' }, { id: 'b' }]);
    const b = await node('b', [{ id: 'a' }, { id: 'c', port: c.t.port }], { timingRecord: () => bRecord });
    const a = await node('a', [{ id: 'b', port: b.t.port }, { id: 'c', port: c.t.port }], { timingRecord: () => aRecord });
    await waitFor('all linked', () => connected(a, 'b') && connected(a, 'c') && connected(b, 'c'));
    const sorted = (n: typeof a) => [...n.records].sort(([p], [q]) => p.localeCompare(q));
    expect(sorted(a)).toEqual([['b', bRecord], ['c', undefined]]); // b from its challenge
    expect(sorted(b)).toEqual([['a', aRecord], ['c', undefined]]); // a from its hello
    expect(sorted(c)).toEqual([['a', aRecord], ['b', bRecord]]);
    expect(a.timings.map(([, t]) => t)).toEqual([timing, timing]);
  });

  it('a peer announcing a timing-record window out of range still links: taken adjusted, with one warning per peer naming it', async () => {
    const record = () => ({ longestRefusalWindowMs: 900, longestLeaseWindowMs: MaxRefusalWindowMs + 1 });
    let b = await node('b', [{ id: 'a' }], { timingRecord: record });
    const port = b.t.port;
    const a = await node('a', [{ id: 'b', port }]);
    await waitFor('linked', () => connected(a, 'b'));
    expect(a.records).toEqual([['b', { longestRefusalWindowMs: 900, longestLeaseWindowMs: MaxRefusalWindowMs }]]);
    const warnings = () => logsWith(a, (l) => l.peer === 'b' && /timing-record window out of range/.test(l.msg));
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatchObject({ level: 40, announcedLongestLeaseWindowMs: String(MaxRefusalWindowMs + 1), takenLongestLeaseWindowMs: MaxRefusalWindowMs });
    expect(warnings()[0]).not.toHaveProperty('announcedLongestRefusalWindowMs');
    await b.t.close();
    await waitFor('a sees the drop', () => a.connected.get('b') === false);
    b = await node('b', [{ id: 'a' }], { listen: { host: '127.0.0.1', port }, timingRecord: record });
    await waitFor('relinked', () => connected(a, 'b') && connected(b, 'a'));
    expect(a.records).toHaveLength(2);
    expect(warnings()).toHaveLength(1);
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
    // The link carries no raft messages: each ping went with a sealed keepalive (empty payload).
    expect(raw.inbox.length).toBeGreaterThan(0);
    for (const f of raw.inbox) expect(f).toMatch(new RegExp(`^\\d+\\.k.{${TAG_CHARS}}$`));
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

  it('keeps the newest link when the dialing peer restarts (its old link gone silent, its process gone)', async () => {
    const fast = { tickMs: 10, electionTicks: 2, maxClockDriftMs: 0 };
    const b = await node('b', [{ id: 'a' }], { localTiming: fast });
    // a1 stands for a process that stopped while its socket stayed open (paused, or cut off): it answers nothing.
    const a1 = new RawPeer(b.t.port);
    const a1Instance = newInstanceId();
    await a1.handshake('a', 'b', { hello: { instance: a1Instance, timing: fast } });
    await waitFor('connected', () => connected(b, 'a'));
    const a2 = await node('a', [{ id: 'b', port: b.t.port }], { localTiming: fast }); // a restarted before b noticed the old socket die
    await waitFor('a2 connected', () => connected(a2, 'b'));
    expect(connected(b, 'a')).toBe(true);
    b.t.send(heartbeat('b', 'a'));
    await waitFor('delivered to the new a', () => a2.received.length === 1);
    // b asked the old link whether its process was still there (a keepalive with a question), and heard nothing.
    expect(a1.inbox.filter((f) => /^\d+\.k/.test(f)).map((f) => f.slice(f.indexOf('.') + 2 + TAG_CHARS))).toEqual(['?']);
    expect(a1.inbox.filter((f) => /^\d+\.m/.test(f))).toHaveLength(0);
    const replaced = logsWith(b, (l) => l.msg === 'peer connected' && l.replaced === true);
    expect(replaced).toHaveLength(1);
    expect(replaced[0]).toMatchObject({ instance: a2.t.instanceId, previousInstance: a1Instance });
  });

  it('sends no keepalives between pings: an idle link stays silent for many live windows and stays up', async () => {
    const fast = { tickMs: 10, electionTicks: 2, maxClockDriftMs: 0 };
    const b = await node('b', [{ id: 'a' }], { localTiming: fast, pingIntervalMs: 60_000 });
    const raw = new RawPeer(b.t.port);
    await raw.handshake('a', 'b', { hello: { timing: fast } });
    await waitFor('b sees a', () => connected(b, 'a'));
    const until = Date.now() + 400; // twenty of b's live windows (20 ms)
    await waitFor('quiet time', () => Date.now() > until);
    expect(raw.inbox).toEqual([]);
    expect(connected(b, 'a')).toBe(true);
  });

  it('refuses a second live process when the link has been quiet beyond the live window: the first answers the question', async () => {
    const fast = { tickMs: 10, electionTicks: 2, maxClockDriftMs: 0 };
    const b = await node('b', [{ id: 'a' }], { localTiming: fast });
    const a1 = await node('a', [{ id: 'b', port: b.t.port }], { localTiming: fast });
    await waitFor('a1 connected', () => connected(b, 'a') && connected(a1, 'b'));
    const quietUntil = Date.now() + 200; // ten live windows without a frame on the link
    await waitFor('quiet link', () => Date.now() > quietUntil);
    const a2 = await node('a', [{ id: 'b', port: b.t.port }], { localTiming: fast });
    await waitFor('b warns', () => logsWith(b, (l) => l.reason === 'duplicate_member').length > 0);
    await waitFor('a2 warns', () => logsWith(a2, (l) => l.reason === 'refused_by_peer:duplicate_member').length > 0);
    expect(logsWith(b, (l) => l.reason === 'duplicate_member')[0]).toMatchObject({ peer: 'a', instance: a1.t.instanceId, newcomerInstance: a2.t.instanceId });
    expect(logsWith(b, (l) => l.msg === 'peer connected')).toHaveLength(1);
    b.t.send(heartbeat('b', 'a'));
    await waitFor('delivered to the first a', () => a1.received.length === 1);
    expect(a2.received).toHaveLength(0);
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

