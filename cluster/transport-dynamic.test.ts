import http from 'node:http';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { closeAll, connected, freePort, heartbeat, logsWith, node, waitFor } from '../test/harness/transport-kit.js';
import { ClusterError } from './errors.js';
import { redialDelayMs } from './peer-link.js';

afterEach(closeAll);

const dynamic = { dynamicPeers: true } as const;

describe('WsTransport with dynamic peers', () => {
  it('a joiner that knows only the leader address is kept as a peer by the leader (its authenticated inbound link)', async () => {
    const leader = await node('web-b@u2', [], dynamic);
    // The joiner has the smaller id, so it dials; the leader has never heard of it.
    const joiner = await node('web-a@u9', [{ id: 'web-b@u2', port: leader.t.port }], dynamic);
    await waitFor('linked', () => connected(joiner, 'web-b@u2') && connected(leader, 'web-a@u9'));
    expect(leader.t.peers()).toEqual([{ id: 'web-a@u9', address: null, connected: true }]);
    leader.t.send(heartbeat('web-b@u2', 'web-a@u9', 'hi'));
    await waitFor('delivered', () => joiner.received.length === 1);
    expect(logsWith(leader, (l) => l.msg === 'peer added (it connected to us)' && l.peer === 'web-a@u9')).toHaveLength(1);
  });

  it('without dynamicPeers an unknown id is still refused', async () => {
    const b = await node('b', []);
    await node('a', [{ id: 'b', port: b.t.port }]);
    await waitFor('refused', () => logsWith(b, (l) => l.reason === 'unknown_member').length > 0);
    expect(b.t.peers()).toEqual([]);
  });

  it('setPeerAddress adds an unknown id and dials it (the smaller id dials)', async () => {
    const b = await node('b', [], dynamic);
    const a = await node('a', [], dynamic);
    a.t.setPeerAddress('b', '127.0.0.1', b.t.port);
    await waitFor('linked', () => connected(a, 'b') && connected(b, 'a'));
    expect(a.t.peers().map((p) => p.id)).toEqual(['b']);
  });

  it('removePeer closes the link and later messages drop as peer_unknown', async () => {
    const b = await node('b', [], dynamic);
    const a = await node('a', [{ id: 'b', port: b.t.port }], dynamic);
    await waitFor('linked', () => connected(a, 'b'));
    a.t.removePeer('b');
    expect(a.t.peers()).toEqual([]);
    expect(a.connected.get('b')).toBe(false);
    a.t.send(heartbeat('a', 'b', 'x'));
    expect(a.drops).toContainEqual({ reason: 'peer_unknown', peer: null });
    await waitFor('b sees the link close', () => b.connected.get('a') === false);
  });

  it('setMembers adds the configuration and removes members that left it, but keeps joiners known only by address', async () => {
    const a = await node('a', [], dynamic);
    a.t.setPeerAddress('joiner', '127.0.0.1', 1);
    a.t.setMembers(['a', 'b', 'c']);
    expect(a.t.peers().map((p) => p.id)).toEqual(['b', 'c', 'joiner']);
    a.t.setMembers(['a', 'c']);
    expect(a.t.peers().map((p) => p.id)).toEqual(['c', 'joiner']);
  });

  it('dropJoiner forgets a peer outside the configuration and keeps a member', async () => {
    const a = await node('a', [], dynamic);
    a.t.setMembers(['a', 'b']);
    a.t.setPeerAddress('joiner', '127.0.0.1', 1);
    a.t.dropJoiner('joiner');
    a.t.dropJoiner('b');
    expect(a.t.peers().map((p) => p.id)).toEqual(['b']);
  });

  it('is bounded: beyond maxPeers TOO_MANY_PEERS, and an unknown inbound id is refused', async () => {
    const full = await node('z', [], { ...dynamic, maxPeers: 2 });
    full.t.setPeerAddress('p1', '127.0.0.1', 1);
    full.t.setPeerAddress('p2', '127.0.0.1', 1);
    let err: unknown;
    try {
      full.t.setPeerAddress('p3', '127.0.0.1', 1);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ClusterError);
    expect((err as ClusterError).code).toBe('TOO_MANY_PEERS');
    await node('a', [{ id: 'z', port: full.t.port }], dynamic);
    await waitFor('refused', () => logsWith(full, (l) => l.reason === 'unknown_member').length > 0);
    expect(full.t.peers().map((p) => p.id)).toEqual(['p1', 'p2']);
  });

  it('redials a new pod\'s address fast until its process listens, though the backoff is a minute', async () => {
    const slow = { ...dynamic, reconnectBackoff: { initialMs: 60_000, maxMs: 60_000 } };
    const a = await node('a', [], slow);
    const port = await freePort();
    a.t.setPeerAddress('b', '127.0.0.1', port);
    await waitFor('the first dial refused', () => logsWith(a, (l) => l.msg === 'cannot connect to peer; retrying with backoff').length > 0);
    const b = await node('b', [], { ...slow, listen: { host: '127.0.0.1', port } });
    // With the backoff alone the next dial would come 30-60 s later.
    await waitFor('linked', () => connected(a, 'b') && connected(b, 'a'));
  });

  it('redials fast after EHOSTUNREACH (a new pod\'s network not up yet), backs off after ETIMEDOUT or ENETUNREACH, one log line each', async () => {
    const slow = { reconnectBackoff: { initialMs: 60_000, maxMs: 60_000 } };
    const b = await node('b', [{ id: 'a' }], slow);
    // What the kernel would say, per peer port: b's route comes up after 5 dials; c is blackholed, d has no route at all.
    const ports = { b: b.t.port, c: await freePort(), d: await freePort() };
    const dials = { b: 0, c: 0, d: 0 };
    const closedPort = await freePort();
    // A socket still connecting (to a closed port) that fails, before the kernel answers, as told.
    const fail = (code: string, port: number): net.Socket => {
      const socket = net.createConnection({ host: '127.0.0.1', port: closedPort });
      process.nextTick(() => socket.destroy(Object.assign(new Error(`connect ${code} 127.0.0.1:${port}`), { code, syscall: 'connect' })));
      return socket;
    };
    const createConnection = (options: net.NetConnectOpts): net.Socket => {
      const port = Number((options as net.TcpNetConnectOpts).port);
      if (port === ports.c) return dials.c++, fail('ETIMEDOUT', port);
      if (port === ports.d) return dials.d++, fail('ENETUNREACH', port);
      return ++dials.b <= 5 ? fail('EHOSTUNREACH', port) : net.createConnection({ host: '127.0.0.1', port });
    };
    const a = await node('a', [{ id: 'b', port: ports.b }, { id: 'c', port: ports.c }, { id: 'd', port: ports.d }], { ...slow, createConnection });
    // With the backoff alone b's second dial would come 30-60 s after its first.
    await waitFor('linked to b', () => connected(a, 'b') && connected(b, 'a'));
    expect(dials.b).toBe(6);
    // Dialed in the same moment as b and failed as fast: a fast redial would have dialed them as often.
    expect({ c: dials.c, d: dials.d }).toEqual({ c: 1, d: 1 });
    const lines = logsWith(a, (l) => l.msg === 'cannot connect to peer; retrying with backoff');
    expect(lines.map((l) => l.peer).sort()).toEqual(['b', 'c', 'd']);
  });

  it('a process that listens and refuses the upgrade (503 busy, 404 closing) gets the backoff, not the fast redial', async () => {
    for (const status of ['503 Service Unavailable', '404 Not Found']) {
      let dials = 0;
      const server = http.createServer((_req, res) => res.end());
      server.on('upgrade', (_req, socket: Duplex) => {
        dials++;
        socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const a = await node('a', [], { ...dynamic, reconnectBackoff: { initialMs: 400, maxMs: 1_000 } });
      a.t.setPeerAddress('b', '127.0.0.1', (server.address() as net.AddressInfo).port);
      // The backoff (jittered to half its base at least) allows 3 dials in the second after the first (0, >=200, >=600, >=1100 ms); the fast redial about 30.
      await waitFor('the first dial', () => dials >= 1);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      await a.t.close();
      await new Promise((resolve) => server.close(resolve));
      expect(dials, status).toBeLessThanOrEqual(3);
    }
  });

  it('the fast redial is only for an address never linked, refused before its socket opened, within the window', () => {
    const o = { reconnectBackoff: { initialMs: 100, maxMs: 1000 }, newPeerRedial: { intervalMs: 50, windowMs: 30_000 } };
    const fresh = { attempt: 3, addressSetAt: 1_000, linkedSinceAddress: false };
    expect(redialDelayMs(fresh, false, 2_000, o, () => 0)).toEqual({ delayMs: 25, fast: true });
    expect(redialDelayMs(fresh, false, 2_000, o, () => 0.999999)).toEqual({ delayMs: 50, fast: true });
    // A process that listens but refuses the handshake (wrong secret, duplicate): the backoff.
    expect(redialDelayMs(fresh, true, 2_000, o, () => 0)).toEqual({ delayMs: 400, fast: false });
    // A link that was up and dropped: the backoff.
    expect(redialDelayMs({ ...fresh, linkedSinceAddress: true }, false, 2_000, o, () => 0)).toEqual({ delayMs: 400, fast: false });
    // The window is over (a pod that never starts): the backoff.
    expect(redialDelayMs(fresh, false, 31_000, o, () => 0)).toEqual({ delayMs: 400, fast: false });
    expect(redialDelayMs(fresh, false, 2_000, { ...o, newPeerRedial: { intervalMs: 50, windowMs: 0 } }, () => 0).fast).toBe(false);
  });
});
