import { Resolver } from 'node:dns/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TestClusterDns } from './server.js';

// The test DNS server must answer a stock resolver (c-ares, as the member uses)
// the way CoreDNS answers for a headless Service.
describe('test cluster DNS server', () => {
  let dns: TestClusterDns;
  let resolver: Resolver;

  beforeEach(async () => {
    dns = await TestClusterDns.start({ namespace: 'ns', service: 'svc-name', ttlSeconds: 0 });
    resolver = new Resolver({ timeout: 300, tries: 1 });
    resolver.setServers([dns.address]);
  });
  afterEach(async () => {
    resolver.cancel();
    await dns.close();
  });

  it('serves SRV per pod with equal weight and the pod hostname as target', async () => {
    dns.setPod('web-0', '10.0.0.10');
    dns.setPod('web-1', '10.0.0.11');
    dns.setPod('web-2', '10.0.0.12');
    const records = await resolver.resolveSrv('_raft._tcp.svc-name.ns.svc.cluster.local');
    // Node 24 adds `type: 'SRV'` to each record; the four SRV fields are what discovery reads.
    const fields = records.map(({ name, port, priority, weight }) => ({ name, port, priority, weight }));
    expect(fields.sort((a, b) => a.name.localeCompare(b.name))).toEqual([
      { name: 'web-0.svc-name.ns.svc.cluster.local', port: 4041, priority: 0, weight: 33 },
      { name: 'web-1.svc-name.ns.svc.cluster.local', port: 4041, priority: 0, weight: 33 },
      { name: 'web-2.svc-name.ns.svc.cluster.local', port: 4041, priority: 0, weight: 33 },
    ]);
  });

  it('serves A for each pod hostname and all pod IPs for the service name', async () => {
    dns.setPod('web-0', '10.0.0.10');
    dns.setPod('web-1', '10.0.0.11');
    expect(await resolver.resolve4('web-1.svc-name.ns.svc.cluster.local', { ttl: true })).toEqual([
      { address: '10.0.0.11', ttl: 0 },
    ]);
    expect((await resolver.resolve4('svc-name.ns.svc.cluster.local')).sort()).toEqual(['10.0.0.10', '10.0.0.11']);
  });

  it('serves AAAA for an IPv6 pod and NODATA for A of that pod', async () => {
    dns.setPod('web-0', 'fd00::10');
    expect(await resolver.resolve6('web-0.svc-name.ns.svc.cluster.local')).toEqual(['fd00::10']);
    await expect(resolver.resolve4('web-0.svc-name.ns.svc.cluster.local')).rejects.toMatchObject({ code: 'ENODATA' });
  });

  it('answers NXDOMAIN for unknown names and a removed pod', async () => {
    dns.setPod('web-0', '10.0.0.10');
    await expect(resolver.resolve4('nobody.svc-name.ns.svc.cluster.local')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    dns.removePod('web-0');
    await expect(resolver.resolve4('web-0.svc-name.ns.svc.cluster.local')).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });

  it('answers NXDOMAIN for SRV when the Service has no port of that name', async () => {
    dns.setPod('web-0', '10.0.0.10');
    dns.setServicePort(null);
    await expect(resolver.resolveSrv('_raft._tcp.svc-name.ns.svc.cluster.local')).rejects.toMatchObject({
      code: 'ENOTFOUND',
    });
  });

  it('picks up a pod IP change on the next query', async () => {
    dns.setPod('web-0', '10.0.0.10');
    expect(await resolver.resolve4('web-0.svc-name.ns.svc.cluster.local')).toEqual(['10.0.0.10']);
    dns.setPod('web-0', '10.0.0.20');
    expect(await resolver.resolve4('web-0.svc-name.ns.svc.cluster.local')).toEqual(['10.0.0.20']);
  });

  it('answers SERVFAIL or nothing for the chosen query type only', async () => {
    dns.setPod('web-0', '10.0.0.10');
    dns.fail('SRV', 'servfail');
    await expect(resolver.resolveSrv(dns.srvName())).rejects.toMatchObject({ code: 'ESERVFAIL' });
    expect(await resolver.resolve4(dns.podHostname('web-0'))).toEqual(['10.0.0.10']);
    dns.fail('A', 'silent');
    await expect(resolver.resolve4(dns.podHostname('web-0'))).rejects.toMatchObject({ code: 'ETIMEOUT' });
    dns.answer();
    expect(await resolver.resolveSrv(dns.srvName())).toHaveLength(1);
  });

  it('falls back to TCP when a large SRV answer is truncated over UDP', async () => {
    for (let i = 0; i < 40; i++) dns.setPod(`a-rather-long-statefulset-name-${i}`, `10.0.1.${i}`);
    const records = await resolver.resolveSrv(dns.srvName());
    expect(records).toHaveLength(40);
    expect(dns.countQueries((q) => q.type === 'SRV' && q.transport === 'tcp')).toBeGreaterThan(0);
  });
});
