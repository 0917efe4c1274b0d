import { EventEmitter } from 'node:events';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ConnectionGuard, RefusalLog, SlotPool, type Refusal, type Slot } from './admission.js';
import { CidrError, LocalNetworks, parseCidr } from './local-networks.js';
import { ApiConfigError, resolveApiOptions } from './options.js';

function captureLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  // pino writes synchronously to a plain Writable, so a line is there when the call returns.
  return { logger: pino({ level: 'debug' }, sink), lines };
}

describe('LocalNetworks', () => {
  const loopback = new LocalNetworks();

  it.each(['127.0.0.1', '127.255.0.9', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', '::FFFF:127.1.1.1'])(
    'counts %s as local by default (loopback, also IPv4-mapped)',
    (address) => expect(loopback.classify(address)).toBe('local'),
  );

  it.each(['10.0.0.1', '192.0.2.7', '::ffff:10.0.0.1', 'fe80::1', '::2', '0.0.0.0', '', undefined, null, 'not-an-ip'])(
    'counts %s as a stranger by default',
    (address) => expect(loopback.classify(address)).toBe('stranger'),
  );

  it('takes the CIDRs it is given: 127.0.0.1/32 local, 127.0.0.2 a stranger; IPv6 prefixes; bare hosts', () => {
    const networks = new LocalNetworks(['127.0.0.1/32', 'fd00:1::/32', '198.51.100.4']);
    expect(networks.classify('127.0.0.1')).toBe('local');
    expect(networks.classify('::ffff:127.0.0.1')).toBe('local');
    expect(networks.classify('127.0.0.2')).toBe('stranger');
    expect(networks.classify('::1')).toBe('stranger');
    expect(networks.classify('fd00:1:ffff::5')).toBe('local');
    expect(networks.classify('fd00:2::5')).toBe('stranger');
    expect(networks.classify('198.51.100.4')).toBe('local');
    expect(networks.classify('198.51.100.5')).toBe('stranger');
  });

  it.each([
    ['10.0.0.0/33', 'the prefix must be 0 to 32'],
    ['::/129', 'the prefix must be 0 to 128'],
    ['10.0.0.0/', 'the prefix must be 0 to 32'],
    ['10.0.0.0/8/8', 'the prefix must be 0 to 32'],
    ['10.0.0/8', 'not an IPv4 or IPv6 address'],
    ['fe80::1%eth0/64', 'not an IPv4 or IPv6 address'],
    ['localhost', 'not an IPv4 or IPv6 address'],
  ])('refuses the CIDR %s, naming it', (cidr, reason) => {
    expect(() => parseCidr(cidr)).toThrow(CidrError);
    expect(() => new LocalNetworks([cidr])).toThrow(`"${cidr}" is not a CIDR (${reason})`);
  });
});

describe('SlotPool', () => {
  it('lets strangers fill only their share, so local clients always find the reserve free', () => {
    const pool = new SlotPool('watch', 5, 2);
    const strangers: Slot[] = [];
    for (let i = 0; i < 10; i++) {
      const slot = pool.tryAcquire('stranger');
      if (slot) strangers.push(slot);
    }
    expect(strangers).toHaveLength(3);
    expect(pool.limitFor('stranger')).toBe(3);
    expect(pool.tryAcquire('local')).not.toBeNull();
    expect(pool.tryAcquire('local')).not.toBeNull();
    expect(pool.tryAcquire('local')).toBeNull(); // all 5 taken
    expect(pool.counts()).toEqual({ local: 2, stranger: 3 });
    strangers[0]!.release();
    strangers[0]!.release(); // a second release gives nothing back twice
    expect(pool.counts()).toEqual({ local: 2, stranger: 2 });
    expect(pool.tryAcquire('stranger')).not.toBeNull();
    expect(pool.tryAcquire('stranger')).toBeNull();
  });

  it('lets local clients use free slots of the stranger share too', () => {
    const pool = new SlotPool('long_poll', 4, 1);
    for (let i = 0; i < 4; i++) expect(pool.tryAcquire('local')).not.toBeNull();
    expect(pool.tryAcquire('local')).toBeNull();
    expect(pool.tryAcquire('stranger')).toBeNull();
    expect(pool.limitFor('local')).toBe(4);
  });

  it('with no reserve, strangers and local clients share every slot', () => {
    const pool = new SlotPool('watch', 2, 0);
    expect(pool.tryAcquire('stranger')).not.toBeNull();
    expect(pool.tryAcquire('stranger')).not.toBeNull();
    expect(pool.tryAcquire('local')).toBeNull();
  });

  it('refuses a reserve larger than the pool', () => {
    expect(() => new SlotPool('watch', 2, 3)).toThrow(RangeError);
  });
});

describe('RefusalLog (fake timers)', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const refusal = (remoteAddress: string, route: Refusal['route'] = 'watch'): Refusal => ({
    route,
    client: 'stranger',
    remoteAddress,
    limit: 48,
  });

  it('logs the first refusal at once, then one line per interval with the suppressed count and the addresses', () => {
    const { logger, lines } = captureLogger();
    const log = new RefusalLog(logger, 1_000);
    log.refused(refusal('10.1.0.1'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      msg: RefusalLog.Message,
      level: 40,
      route: 'watch',
      client: 'stranger',
      limit: 48,
      refused: 1,
      suppressed: 0,
      remoteAddress: '10.1.0.1',
    });

    // A flood within the interval writes nothing more...
    for (let i = 0; i < 30; i++) log.refused(refusal('10.1.0.2'));
    for (let i = 0; i < 10; i++) log.refused(refusal('10.1.0.3'));
    log.refused(refusal('10.1.0.1'));
    vi.advanceTimersByTime(999);
    expect(lines).toHaveLength(1);
    // ...until the interval ends: one line for all of it, the most frequent address first.
    vi.advanceTimersByTime(1);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({
      refused: 41,
      suppressed: 40,
      remoteAddress: '10.1.0.2',
      remoteAddresses: { '10.1.0.2': 30, '10.1.0.3': 10, '10.1.0.1': 1 },
    });
    expect(Object.keys(lines[1]!.remoteAddresses as object)).toEqual(['10.1.0.2', '10.1.0.3', '10.1.0.1']);

    // A flood that goes on keeps one line per interval.
    for (let second = 0; second < 5; second++) {
      for (let i = 0; i < 100; i++) {
        log.refused(refusal('10.1.0.9'));
        vi.advanceTimersByTime(10);
      }
    }
    expect(lines).toHaveLength(7);
    const total = lines.reduce((sum, l) => sum + (l.refused as number), 0);
    expect(total).toBe(1 + 41 + 500);

    // A quiet interval writes nothing and closes the window: the next refusal is logged at once.
    vi.advanceTimersByTime(5_000);
    expect(lines).toHaveLength(7);
    log.refused(refusal('10.1.0.7'));
    expect(lines).toHaveLength(8);
    expect(lines[7]).toMatchObject({ refused: 1, remoteAddress: '10.1.0.7' });
    log.close();
  });

  it('keeps routes and client classes apart', () => {
    const { logger, lines } = captureLogger();
    const log = new RefusalLog(logger, 1_000);
    log.refused(refusal('10.1.0.1', 'watch'));
    log.refused(refusal('10.1.0.1', 'long_poll'));
    log.refused({ ...refusal('127.0.0.1', 'long_poll'), client: 'local' });
    log.refused(refusal('10.1.0.1', 'connection'));
    expect(lines.map((l) => `${String(l.route)}/${String(l.client)}`)).toEqual([
      'watch/stranger',
      'long_poll/stranger',
      'long_poll/local',
      'connection/stranger',
    ]);
    log.close();
  });

  it('bounds the addresses it remembers; the rest count as "other"', () => {
    const { logger, lines } = captureLogger();
    const log = new RefusalLog(logger, 1_000);
    log.refused(refusal('10.2.0.0'));
    for (let i = 1; i <= 1_000; i++) log.refused(refusal(`10.2.${Math.floor(i / 256)}.${i % 256}`));
    vi.advanceTimersByTime(1_000);
    const line = lines[1]!;
    expect(line.refused).toBe(1_000);
    const addresses = line.remoteAddresses as Record<string, number>;
    expect(Object.keys(addresses)).toHaveLength(9);
    expect(addresses.other).toBe(992);
    log.close();
  });

  it('writes what is pending when closed, and leaves no timer behind', () => {
    const { logger, lines } = captureLogger();
    const log = new RefusalLog(logger, 60_000);
    log.refused(refusal('10.1.0.1'));
    log.refused(refusal('10.1.0.1'));
    log.refused(refusal('10.1.0.1'));
    log.close();
    expect(lines.map((l) => l.refused)).toEqual([1, 2]);
    expect(vi.getTimerCount()).toBe(0);
  });
});

/** Enough of a net.Socket for the guard: an address, destroy(), and 'close'. */
class FakeSocket extends EventEmitter {
  destroyed = false;
  constructor(readonly remoteAddress: string) {
    super();
  }
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.emit('close');
  }
  destroySoon(): void {
    this.destroy();
  }
}

describe('ConnectionGuard (fake timers)', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function setup(options = { maxConnections: 6, localReservedConnections: 2, maxConnectionsPerStranger: 4, idleConnectionTimeoutMs: 1_000 }) {
    const server = new EventEmitter();
    const refusals: Refusal[] = [];
    const idle: string[] = [];
    const guard = new ConnectionGuard(options, new LocalNetworks(['127.0.0.1/32']), {
      refused: (r) => refusals.push(r),
      idleClosed: (client, address) => idle.push(`${client} ${String(address)}`),
    });
    guard.attach(server as unknown as Server);
    const connect = (address: string): FakeSocket => {
      const socket = new FakeSocket(address);
      server.emit('connection', socket as unknown as Socket);
      return socket;
    };
    const request = (socket: FakeSocket): (() => void) => {
      const res = new EventEmitter();
      server.emit('request', { socket }, res);
      return () => res.emit('close');
    };
    return { guard, connect, request, refusals, idle };
  }

  it('closes connections over the stranger share at once and keeps the local headroom', () => {
    const { guard, connect, refusals } = setup();
    const strangers = Array.from({ length: 10 }, () => connect('127.0.0.2'));
    expect(strangers.filter((s) => !s.destroyed)).toHaveLength(4);
    expect(refusals).toHaveLength(6);
    expect(refusals[0]).toEqual({ route: 'connection', client: 'stranger', remoteAddress: '127.0.0.2', limit: 4 });
    const locals = [connect('127.0.0.1'), connect('::ffff:127.0.0.1')];
    expect(locals.every((s) => !s.destroyed)).toBe(true);
    expect(connect('127.0.0.1').destroyed).toBe(true); // the cap holds for local clients too
    expect(refusals.at(-1)).toMatchObject({ client: 'local', limit: 6 });
    expect(guard.counts()).toEqual({ local: 2, stranger: 4 });
    strangers.find((s) => !s.destroyed)!.destroy();
    expect(guard.counts()).toEqual({ local: 2, stranger: 3 });
    expect(connect('127.0.0.2').destroyed).toBe(false);
  });

  it('caps the connections of one stranger address, so one pod cannot take the stranger share alone', () => {
    const { guard, connect, refusals } = setup({ maxConnections: 10, localReservedConnections: 2, maxConnectionsPerStranger: 3, idleConnectionTimeoutMs: 1_000 });
    const first = Array.from({ length: 5 }, () => connect('10.0.0.1'));
    expect(first.filter((s) => !s.destroyed)).toHaveLength(3);
    expect(refusals.at(-1)).toEqual({ route: 'connection', client: 'stranger', remoteAddress: '10.0.0.1', limit: 3 });
    // Other strangers still get in, up to the stranger share (8).
    const others = ['10.0.0.2', '10.0.0.2', '10.0.0.2', '10.0.0.3', '10.0.0.3', '10.0.0.3'].map(connect);
    expect(others.filter((s) => !s.destroyed)).toHaveLength(5);
    expect(refusals.at(-1)).toMatchObject({ remoteAddress: '10.0.0.3', limit: 8 });
    // Local clients are not capped per address.
    expect([connect('127.0.0.1'), connect('127.0.0.1')].every((s) => !s.destroyed)).toBe(true);
    // A closed connection gives its address a slot back.
    first[0]!.destroy();
    expect(connect('10.0.0.1').destroyed).toBe(false);
    expect(guard.counts()).toEqual({ local: 2, stranger: 8 });
  });

  it('closes a connection that sent no request within the idle timeout, and only that one', () => {
    const { guard, connect, request, idle } = setup();
    const silent = connect('127.0.0.2');
    const busy = connect('127.0.0.2');
    const done = connect('127.0.0.1');
    vi.advanceTimersByTime(500);
    request(busy); // a long-poll: waits as long as it needs
    request(done)();
    vi.advanceTimersByTime(499);
    expect(silent.destroyed).toBe(false);
    vi.advanceTimersByTime(1);
    expect(silent.destroyed).toBe(true);
    expect(idle).toEqual(['stranger 127.0.0.2']);
    vi.advanceTimersByTime(60_000);
    // Keep-alive idleness after a request is Node's keepAliveTimeout, not this timer.
    expect(busy.destroyed).toBe(false);
    expect(done.destroyed).toBe(false);
    expect(guard.counts()).toEqual({ local: 1, stranger: 1 });
  });

  it('at shutdown closes idle sockets at once and busy ones when their answer is written', () => {
    const { guard, connect, request } = setup();
    const idleSocket = connect('127.0.0.1');
    const busy = connect('127.0.0.1');
    const finish = request(busy);
    guard.closeIdle();
    expect(idleSocket.destroyed).toBe(true);
    expect(busy.destroyed).toBe(false);
    finish();
    expect(busy.destroyed).toBe(true);
    expect(guard.counts()).toEqual({ local: 0, stranger: 0 });
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('admission options', () => {
  it('has loopback and the documented limits by default', () => {
    expect(resolveApiOptions()).toMatchObject({
      maxWatchStreams: 64,
      localReservedWatchStreams: 16,
      maxLongPollWaiters: 256,
      localReservedLongPollWaiters: 64,
      maxConnections: 512,
      localReservedConnections: 128,
      maxConnectionsPerStranger: 32,
      idleConnectionTimeoutMs: 5_000,
      refusalLogIntervalMs: 10_000,
      localCidrs: ['127.0.0.0/8', '::1/128'],
    });
  });

  it.each([
    [{ localReservedWatchStreams: 65 }, 'localReservedWatchStreams (65) must not exceed maxWatchStreams (64)'],
    [{ maxLongPollWaiters: 10 }, 'localReservedLongPollWaiters (64) must not exceed maxLongPollWaiters (10)'],
    [{ maxConnections: 100 }, 'localReservedConnections (128) must not exceed maxConnections (100)'],
    [{ maxConnectionsPerStranger: 385 }, 'maxConnectionsPerStranger (385) must not exceed the stranger share, maxConnections - localReservedConnections (384)'],
    [{ localReservedConnections: 50 }, 'localReservedConnections (50) must hold localReservedWatchStreams + localReservedLongPollWaiters (16 + 64)'],
    [{ localReservedWatchStreams: -1 }, 'localReservedWatchStreams must be a non-negative integer, got -1'],
    [{ idleConnectionTimeoutMs: 0 }, 'idleConnectionTimeoutMs must be a positive integer, got 0'],
    [{ localCidrs: [] }, 'localCidrs must be a non-empty list of CIDRs'],
    [{ localCidrs: ['127.0.0.1/40'] }, 'localCidrs has "127.0.0.1/40" is not a CIDR'],
  ])('refuses %j naming the setting', (partial, message) => {
    expect(() => resolveApiOptions(partial)).toThrow(ApiConfigError);
    expect(() => resolveApiOptions(partial)).toThrow(message);
  });
});
