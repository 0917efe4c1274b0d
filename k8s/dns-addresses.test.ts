import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { WsTransport } from '../cluster/transport.js';
import { captureLogger, closeAll, node, otherSecret, type Node } from '../test/harness/transport-kit.js';
import { TestClusterDns } from '../test/dns/server.js';
import { createDnsResolver, type DnsTimers } from './dns.js';
import { DnsAddresses } from './dns-addresses.js';

const timers: DnsTimers & { nowMs: number } = {
  nowMs: 0,
  setTimeout: () => null,
  clearTimeout: () => undefined,
  now: () => timers.nowMs,
};

let dns: TestClusterDns;
let port: number;

beforeEach(async () => {
  timers.nowMs = 0;
  // One peer port for every "pod", as in a cluster; each pod has its own loopback IP.
  const probe = await node('probe', [], { listen: { host: '127.0.0.20', port: 0 } });
  port = probe.t.port;
  await closeAll();
  dns = await TestClusterDns.start({ namespace: 'shop', service: 'web', port });
});

afterEach(async () => {
  await closeAll();
  await dns.close();
});

async function pod(id: string, ip: string, extra: Parameters<typeof node>[2] = {}): Promise<Node> {
  const n = await node(id, [], { dynamicPeers: true, listen: { host: ip, port }, ...extra });
  dns.setPod(id.split('@')[0]!, ip);
  return n;
}

function source(selfId: string, self: WsTransport, members: string[]) {
  const pushed: string[] = [];
  const { logger, lines } = captureLogger();
  const s = new DnsAddresses({
    selfId,
    serviceFqdn: dns.serviceName,
    peerPort: port,
    resolver: createDnsResolver({ queryTimeoutMs: 1_000, dnsServer: dns.address }),
    identify: (host, p) => self.identify(host, p),
    configurationIds: () => new Set(members),
    transport: { setPeerAddress: (id, host, p) => pushed.push(`${id} ${host}:${p}`) },
    intervalMs: 10_000,
    reidentifyMs: 60_000,
    maxAddresses: 64,
    timers,
    logger,
  });
  return { s, pushed, lines };
}

describe('DnsAddresses: the Service DNS as the address source when the pod watch has nothing', () => {
  it('gives each configuration member the address that proved to be it, and nothing to strangers or non-members', async () => {
    const a = await pod('web-a@u1', '127.0.0.21');
    await pod('web-b@u2', '127.0.0.22');
    await pod('web-c@u3', '127.0.0.23', { secret: otherSecret });
    await pod('web-d@u4', '127.0.0.24');
    dns.setPod('web-e', '127.0.0.25'); // listed, nothing listens there
    const { s, pushed, lines } = source(a.id, a.t, ['web-a@u1', 'web-b@u2', 'web-c@u3']);
    await s.round();
    // web-c holds another secret: its claim is not believed. web-d proved itself but is no member.
    expect(pushed).toEqual([`web-b@u2 127.0.0.22:${port}`]);
    const failed = lines().filter((l) => l.msg === 'address listed by DNS did not prove which member it is').map((l) => l.address).sort();
    expect(failed).toEqual([`127.0.0.23:${port}`, `127.0.0.25:${port}`]);
    expect(String(lines().find((l) => l.address === `127.0.0.23:${port}`)?.err)).toMatch(/failed to prove the shared secret/);
  });

  it('moves a member whose pod answers at a new IP, and asks a known address again only after reidentifyMs', async () => {
    const a = await pod('web-a@u1', '127.0.0.21');
    const b = await pod('web-b@u2', '127.0.0.22');
    const { s, pushed } = source(a.id, a.t, ['web-a@u1', 'web-b@u2']);
    await s.round();
    await s.round();
    expect(pushed).toEqual([`web-b@u2 127.0.0.22:${port}`]);
    await b.t.close();
    await pod('web-b@u2', '127.0.0.26');
    await s.round();
    expect(pushed).toEqual([`web-b@u2 127.0.0.22:${port}`, `web-b@u2 127.0.0.26:${port}`]);
  });

  it('a reused IP is believed only once asked again: the newer answer wins', async () => {
    const a = await pod('web-a@u1', '127.0.0.21');
    const old = await pod('web-b@u2', '127.0.0.22');
    const { s, pushed } = source(a.id, a.t, ['web-a@u1', 'web-b@u2', 'web-f@u7']);
    await s.round();
    await old.t.close();
    dns.removePod('web-b');
    await pod('web-f@u7', '127.0.0.22');
    timers.nowMs = 61_000;
    await s.round();
    expect(pushed).toEqual([`web-b@u2 127.0.0.22:${port}`, `web-f@u7 127.0.0.22:${port}`]);
  });

  it('DNS failing (SERVFAIL) changes nothing and logs no error line per round', async () => {
    const a = await pod('web-a@u1', '127.0.0.21');
    await pod('web-b@u2', '127.0.0.22');
    const { s, pushed, lines } = source(a.id, a.t, ['web-a@u1', 'web-b@u2']);
    dns.fail('all', 'servfail');
    await s.round();
    expect(pushed).toEqual([]);
    expect(lines().filter((l) => Number(l.level) >= 40)).toEqual([]);
    dns.answer();
    await s.round();
    expect(pushed).toEqual([`web-b@u2 127.0.0.22:${port}`]);
  });
});
