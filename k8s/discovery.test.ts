import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TestClusterDns } from '../test/dns/server.js';
import {
  DiscoveryConfigError,
  DnsDiscovery,
  resolveDiscoveryOptions,
  type DiscoveryTimers,
  type DnsDiscoveryOptions,
} from './discovery.js';

interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

const WARN = 40;
const DEADLINE_MS = 5_000;

function capturingLogger(): { logger: pino.Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines };
}

class RecordingTransport {
  readonly calls: { id: string; host: string; port: number }[] = [];
  setPeerAddress(id: string, host: string, port: number): void {
    this.calls.push({ id, host, port });
  }
  callsFor(id: string): { host: string; port: number }[] {
    return this.calls.filter((c) => c.id === id).map(({ host, port }) => ({ host, port }));
  }
}

const waitUntil = (condition: () => boolean, what: string): Promise<void> =>
  vi.waitFor(
    () => {
      if (!condition()) throw new Error(`timed out waiting for ${what}`);
    },
    { timeout: DEADLINE_MS, interval: 5 },
  );

describe('DnsDiscovery against a real DNS server', () => {
  let dns: TestClusterDns;
  let transport: RecordingTransport;
  let log: ReturnType<typeof capturingLogger>;
  const running: DnsDiscovery[] = [];

  beforeEach(async () => {
    dns = await TestClusterDns.start({ namespace: 'shop', service: 'elector', port: 5000, ttlSeconds: 5 });
    transport = new RecordingTransport();
    log = capturingLogger();
  });
  afterEach(async () => {
    await Promise.all(running.splice(0).map((d) => d.stop()));
    await dns.close();
  });

  function discovery(overrides: Partial<DnsDiscoveryOptions> = {}): DnsDiscovery {
    const d = new DnsDiscovery(
      {
        selfId: 'web-0',
        voters: ['web-0', 'web-1', 'web-2'],
        namespace: 'shop',
        service: 'elector',
        dnsServer: dns.address,
        peerPort: 4041,
        queryTimeoutMs: 200,
        resolveIntervalMs: 60_000,
        missingPeerRetryMs: 60_000,
        unreachableDebounceMs: 20,
        minResolveGapMs: 50,
        logger: log.logger,
        ...overrides,
      },
      transport,
    );
    running.push(d);
    return d;
  }

  const linesWith = (msg: string) => log.lines.filter((l) => l.msg === msg);

  function threePods(): void {
    dns.setPod('web-0', '10.1.0.10');
    dns.setPod('web-1', '10.1.0.11');
    dns.setPod('web-2', '10.1.0.12');
  }

  it('finds the other two voters through SRV, with the port SRV names', async () => {
    threePods();
    const d = discovery();
    await d.start();
    expect(transport.calls.sort((a, b) => a.id.localeCompare(b.id))).toEqual([
      { id: 'web-1', host: '10.1.0.11', port: 5000 },
      { id: 'web-2', host: '10.1.0.12', port: 5000 },
    ]);
    expect(d.addresses()).toEqual({ 'web-1': '10.1.0.11:5000', 'web-2': '10.1.0.12:5000' });
    expect(dns.queries()[0]).toMatchObject({ name: '_raft._tcp.elector.shop.svc.cluster.local', type: 'SRV' });
    expect(linesWith('peer address discovered').map((l) => [l['peer'], l['via'], l['record']])).toEqual([
      ['web-1', 'srv', 'A'],
      ['web-2', 'srv', 'A'],
    ]);
    expect(log.lines.filter((l) => l.level >= WARN)).toEqual([]);
  });

  it('tells the transport only about changes: a moved pod once, an unchanged one never again', async () => {
    threePods();
    const d = discovery();
    await d.start();
    await d.resolveNow();
    expect(transport.calls).toHaveLength(2);
    dns.setPod('web-2', '10.1.0.99');
    await d.resolveNow();
    await d.resolveNow();
    expect(transport.callsFor('web-2')).toEqual([
      { host: '10.1.0.12', port: 5000 },
      { host: '10.1.0.99', port: 5000 },
    ]);
    expect(transport.callsFor('web-1')).toHaveLength(1);
    expect(linesWith('peer address changed')).toMatchObject([
      { peer: 'web-2', address: '10.1.0.99:5000', previous: '10.1.0.12:5000' },
    ]);
  });

  it('picks up a moved pod on the periodic round', async () => {
    threePods();
    const d = discovery({ resolveIntervalMs: 50, missingPeerRetryMs: 50, minResolveGapMs: 50 });
    await d.start();
    dns.setPod('web-1', '10.1.0.77');
    await waitUntil(() => d.addresses()['web-1'] === '10.1.0.77:5000', 'the periodic round to find web-1 moved');
    expect(transport.callsFor('web-1').at(-1)).toEqual({ host: '10.1.0.77', port: 5000 });
  });

  it.each([
    ['SERVFAIL', () => dns.fail('SRV', 'servfail'), 'ESERVFAIL'],
    ['a timeout', () => dns.fail('SRV', 'silent'), 'ETIMEOUT'],
    ['NXDOMAIN (no port named raft)', () => dns.setServicePort(null), 'ENOTFOUND'],
  ])('falls back to per-pod A records and the configured port when SRV answers %s', async (_case, breakSrv, code) => {
    threePods();
    breakSrv();
    const d = discovery();
    await d.start();
    await d.resolveNow();
    expect(d.addresses()).toEqual({ 'web-1': '10.1.0.11:4041', 'web-2': '10.1.0.12:4041' });
    expect(dns.countQueries((q) => q.type === 'A' && q.name === 'web-1.elector.shop.svc.cluster.local')).toBe(2);
    expect(linesWith('peer address discovered').map((l) => l['via'])).toEqual(['pod-hostname', 'pod-hostname']);
    expect(linesWith('srv lookup failed, using per-pod address records')).toMatchObject([{ code, level: WARN }]);
    expect(d.status().srv).toBe(code);
  });

  it('falls back when SRV is empty, and finds an IPv6-only pod through AAAA', async () => {
    dns.setServicePort('other');
    dns.setPod('web-1', '10.1.0.11');
    dns.setPod('web-2', 'fd00::12');
    const d = discovery();
    await d.start();
    expect(d.addresses()).toEqual({ 'web-1': '10.1.0.11:4041', 'web-2': '[fd00::12]:4041' });
    expect(transport.callsFor('web-2')).toEqual([{ host: 'fd00::12', port: 4041 }]);
  });

  it('ignores a pod outside the voter set and logs it once', async () => {
    threePods();
    dns.setPod('web-3', '10.1.0.13');
    const d = discovery();
    await d.start();
    await d.resolveNow();
    await d.resolveNow();
    expect(transport.calls.map((c) => c.id).sort()).toEqual(['web-1', 'web-2']);
    expect(linesWith('pod outside the voter set ignored')).toMatchObject([
      { pod: 'web-3', level: WARN, voters: ['web-0', 'web-1', 'web-2'] },
    ]);
    expect(dns.countQueries((q) => q.name.startsWith('web-3.'))).toBe(0);
  });

  it('keeps the last address through SERVFAIL and timeouts, logging once per change of state', async () => {
    threePods();
    const d = discovery();
    await d.start();
    const before = d.addresses();

    dns.fail('all', 'servfail');
    for (let i = 0; i < 3; i++) await d.resolveNow();
    expect(d.addresses()).toEqual(before);
    const failed = () => linesWith('peer address lookup failed, keeping the last address');
    expect(failed().map((l) => [l['peer'], l['code']])).toEqual([
      ['web-1', 'ESERVFAIL'],
      ['web-2', 'ESERVFAIL'],
    ]);
    expect(linesWith('srv lookup failed, using per-pod address records')).toHaveLength(1);

    dns.fail('all', 'silent');
    for (let i = 0; i < 2; i++) await d.resolveNow();
    expect(d.addresses()).toEqual(before);
    expect(failed().map((l) => [l['peer'], l['code'], l['lastAddress']])).toEqual([
      ['web-1', 'ESERVFAIL', '10.1.0.11:5000'],
      ['web-2', 'ESERVFAIL', '10.1.0.12:5000'],
      ['web-1', 'ETIMEOUT', '10.1.0.11:5000'],
      ['web-2', 'ETIMEOUT', '10.1.0.12:5000'],
    ]);
    expect(linesWith('srv lookup failed, using per-pod address records')).toHaveLength(2);

    dns.answer();
    await d.resolveNow();
    expect(linesWith('peer address lookup recovered').map((l) => l['peer'])).toEqual(['web-1', 'web-2']);
    expect(linesWith('srv lookup recovered')).toHaveLength(1);
    expect(transport.calls).toHaveLength(2);
  });

  it.each([
    ['from the SRV answer', true, '10.1.0.12:5000', 'ENOTLISTED'],
    ['from DNS altogether (NXDOMAIN on the fallback)', false, '10.1.0.12:4041', 'ENOTFOUND'],
  ])('keeps the last address when a pod disappears %s', async (_case, withSrv, address, code) => {
    threePods();
    if (!withSrv) dns.setServicePort(null);
    const d = discovery();
    await d.start();
    dns.removePod('web-2');
    await d.resolveNow();
    await d.resolveNow();
    expect(d.addresses()).toEqual({ 'web-1': withSrv ? '10.1.0.11:5000' : '10.1.0.11:4041', 'web-2': address });
    expect(linesWith('peer address lookup failed, keeping the last address')).toMatchObject([
      { peer: 'web-2', code, lastAddress: address },
    ]);
    dns.setPod('web-2', '10.1.0.42');
    await d.resolveNow();
    expect(d.addresses()['web-2']).toBe(address.replace('10.1.0.12', '10.1.0.42'));
    expect(linesWith('peer address lookup recovered')).toMatchObject([{ peer: 'web-2', previousCode: code }]);
  });

  it('re-resolves soon after a peer is reported unreachable, once for a burst', async () => {
    threePods();
    const d = discovery();
    await d.start();
    const srvQueries = () => dns.countQueries((q) => q.type === 'SRV');
    expect(srvQueries()).toBe(1);
    dns.setPod('web-1', '10.1.0.55');
    for (let i = 0; i < 10; i++) d.peerUnreachable('web-1');
    await waitUntil(() => d.addresses()['web-1'] === '10.1.0.55:5000', 'web-1 to be re-resolved');
    await waitUntil(() => d.status().rounds === 2, 'the round to finish');
    expect(srvQueries()).toBe(2);
    expect(transport.callsFor('web-1').at(-1)).toEqual({ host: '10.1.0.55', port: 5000 });
  });

  it('retries quickly while a voter has no address yet', async () => {
    const d = discovery({ missingPeerRetryMs: 20 });
    await d.start();
    expect(d.addresses()).toEqual({ 'web-1': null, 'web-2': null });
    expect(linesWith('peer address lookup failed').map((l) => l['code'])).toEqual(['ENOTFOUND', 'ENOTFOUND']);
    threePods();
    await waitUntil(() => d.addresses()['web-2'] === '10.1.0.12:5000', 'the pods to appear');
    expect(d.addresses()['web-1']).toBe('10.1.0.11:5000');
  });

  it('stops cleanly: no queries, timers or addresses after stop()', async () => {
    threePods();
    const d = discovery({ resolveIntervalMs: 20, missingPeerRetryMs: 20, minResolveGapMs: 20 });
    await d.start();
    await d.stop();
    const queries = dns.queries().length;
    await d.resolveNow();
    d.peerUnreachable('web-1');
    expect(dns.queries().length).toBe(queries);
    expect(linesWith('dns discovery stopped')).toHaveLength(1);
  });

  it('stop() during a hung round cancels it and sets no address', async () => {
    threePods();
    dns.fail('all', 'silent');
    const d = discovery({ queryTimeoutMs: 30_000 });
    const started = d.start();
    await waitUntil(() => dns.countQueries() > 0, 'the first query');
    // Deadline far below the 30 s query timeout: stop() must cancel, not wait it out.
    let stoppedWithinDeadline = false;
    await Promise.race([
      Promise.all([d.stop(), started]).then(() => (stoppedWithinDeadline = true)),
      new Promise((resolve) => setTimeout(resolve, DEADLINE_MS)),
    ]);
    expect(stoppedWithinDeadline).toBe(true);
    expect(dns.countQueries()).toBe(1);
    expect(transport.calls).toEqual([]);
  });
});

describe('DnsDiscovery timing (injected timers)', () => {
  it('delays an unreachable round until minResolveGapMs after the last one', async () => {
    const dns = await TestClusterDns.start({ namespace: 'shop', service: 'elector' });
    try {
      let nowMs = 1_000;
      const scheduled: { at: number; callback: () => void; handle: number }[] = [];
      let nextHandle = 0;
      const timers: DiscoveryTimers = {
        now: () => nowMs,
        setTimeout: (callback, delayMs) => {
          scheduled.push({ at: nowMs + delayMs, callback, handle: ++nextHandle });
          return nextHandle;
        },
        clearTimeout: (handle) => {
          const i = scheduled.findIndex((t) => t.handle === handle);
          if (i >= 0) scheduled.splice(i, 1);
        },
      };
      const d = new DnsDiscovery(
        {
          selfId: 'web-0',
          voters: ['web-0', 'web-1', 'web-2'],
          namespace: 'shop',
          service: 'elector',
          dnsServer: dns.address,
          resolveIntervalMs: 10_000,
          missingPeerRetryMs: 1_000,
          unreachableDebounceMs: 100,
          minResolveGapMs: 1_000,
          logger: capturingLogger().logger,
          timers,
        },
        new RecordingTransport(),
      );
      await d.start();
      // After the first round: the periodic timer, 1000 ms out since no voter has an address.
      expect(scheduled.map((t) => t.at)).toEqual([2_000]);
      nowMs = 1_300;
      d.peerUnreachable('web-1');
      d.peerUnreachable('web-2');
      // One timer for the burst, at the later of debounce (1400) and the gap (2000).
      expect(scheduled.map((t) => t.at).sort()).toEqual([2_000, 2_000]);
      nowMs = 5_000;
      d.peerUnreachable('nobody');
      expect(scheduled).toHaveLength(2);
      await d.stop();
      expect(scheduled).toEqual([]);
    } finally {
      await dns.close();
    }
  });
});

describe('resolveDiscoveryOptions', () => {
  const base: DnsDiscoveryOptions = {
    selfId: 'web-0',
    voters: ['web-0', 'web-1', 'web-2'],
    namespace: 'shop',
    service: 'elector',
    logger: pino({ level: 'silent' }),
  };

  it('fills the defaults', () => {
    expect(resolveDiscoveryOptions(base)).toMatchObject({
      clusterDomain: 'cluster.local',
      portName: 'raft',
      peerPort: 4041,
      queryTimeoutMs: 2_000,
      resolveIntervalMs: 10_000,
      missingPeerRetryMs: 1_000,
      unreachableDebounceMs: 100,
      minResolveGapMs: 1_000,
      dnsServer: undefined,
    });
  });

  it.each(['127.0.0.1:5353', '10.96.0.10', '[::1]:53', '::1'])('accepts --dns-server %s', (dnsServer) => {
    expect(resolveDiscoveryOptions({ ...base, dnsServer }).dnsServer).toBe(dnsServer);
  });

  it.each<[string, Partial<DnsDiscoveryOptions>, string]>([
    ['service', { service: 'Elector' }, 'discovery service: "Elector" is not a DNS label'],
    ['namespace', { namespace: 'a.b' }, 'discovery namespace: "a.b" is not a DNS label'],
    ['clusterDomain', { clusterDomain: 'cluster..local' }, 'discovery clusterDomain: "cluster..local" is not a DNS domain'],
    ['portName', { portName: 'raft-peer-port-name' }, 'is not a Kubernetes port name'],
    ['peerPort', { peerPort: 70_000 }, 'discovery peerPort: must be an integer in [1, 65535], got 70000'],
    ['dnsServer', { dnsServer: 'dns.local:53' }, 'discovery dnsServer: "dns.local:53" is not an IP address'],
    ['dnsServer', { dnsServer: '127.0.0.1:0' }, 'is not an IP address with an optional port'],
    ['selfId', { selfId: 'web-9' }, 'discovery selfId: "web-9" is not one of the voters (web-0, web-1, web-2)'],
    ['voters', { voters: ['web-0', 'web-0'] }, 'discovery voters: has duplicates'],
    ['queryTimeoutMs', { queryTimeoutMs: 0 }, 'discovery queryTimeoutMs: must be an integer'],
    ['missingPeerRetryMs', { resolveIntervalMs: 500 }, 'missingPeerRetryMs: (1000) must not exceed resolveIntervalMs (500)'],
    ['minResolveGapMs', { resolveIntervalMs: 5_000, minResolveGapMs: 6_000 }, 'minResolveGapMs: (6000) must not exceed resolveIntervalMs (5000)'],
  ])('rejects a bad %s', (setting, override, text) => {
    let thrown: unknown;
    try {
      resolveDiscoveryOptions({ ...base, ...override });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(DiscoveryConfigError);
    expect(thrown).toMatchObject({ code: 'DISCOVERY_CONFIG_INVALID', setting });
    expect((thrown as Error).message).toContain(text);
  });
});
