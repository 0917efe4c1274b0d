/**
 * A real DNS server for tests that answers the way cluster DNS (CoreDNS's
 * `kubernetes` plugin) answers for one headless Service with
 * `publishNotReadyAddresses: true` whose pods belong to a StatefulSet (so each
 * endpoint carries the pod's hostname).
 *
 * What it mirrors from CoreDNS (plugin/backend_lookup.go and the kubernetes
 * plugin's handler tests):
 * - SRV `_<port>._<proto>.<svc>.<ns>.svc.<zone>`: one record per pod, priority 0,
 *   weight floor(100 / pods) (CoreDNS divides 100 among the records of one
 *   priority, at least 1), the Service port, target
 *   `<pod>.<svc>.<ns>.svc.<zone>.`; the pods' A/AAAA records go in the additional
 *   section. An unknown port name is NXDOMAIN.
 * - A/AAAA `<pod>.<svc>.<ns>.svc.<zone>`: that pod's address; A/AAAA
 *   `<svc>.<ns>.svc.<zone>`: every pod's address.
 * - TTL 5 s (the plugin's default `ttl`), the authoritative bit set.
 * - NXDOMAIN for an unknown name, NOERROR with no answer (NODATA) for a known name
 *   without records of the asked type; both carry the zone's SOA in the authority
 *   section (`ns.dns.<zone>. hostmaster.<zone>.`, 7200 1800 86400, minimum = ttl).
 *
 * Test controls: add, move or remove pods, drop the SRV port, and make chosen
 * query types answer SERVFAIL or nothing at all (a timeout for the client).
 * Serves UDP and TCP on the same 127.0.0.1 port, so a client that gets a
 * truncated UDP answer can retry over TCP as resolvers do.
 */
import { isIPv4, isIPv6 } from 'node:net';
import dns2 from 'dns2';
import type { DnsServer, Packet as PacketType, Resource } from 'dns2';

const { Packet } = dns2;

const RCODE_NOERROR = 0;
const RCODE_SERVFAIL = 2;
const RCODE_NXDOMAIN = 3;

const TYPE_A = Packet.TYPE.A;
const TYPE_AAAA = Packet.TYPE.AAAA;
const TYPE_SRV = Packet.TYPE.SRV;
const TYPE_SOA = Packet.TYPE.SOA;
const CLASS_IN = Packet.CLASS.IN;

export type QueryType = 'A' | 'AAAA' | 'SRV' | 'OTHER';
export type FailureMode = 'servfail' | 'silent';

export interface TestDnsOptions {
  namespace: string;
  service: string;
  clusterDomain?: string;
  /** Name of the Service port published as SRV (`_<name>._tcp`); null for none. */
  portName?: string | null;
  port?: number;
  /** Record TTL in seconds; CoreDNS's default is 5. */
  ttlSeconds?: number;
  /** Also serve TCP on the UDP port (default true). */
  tcp?: boolean;
}

export interface ReceivedQuery {
  name: string;
  type: QueryType;
  transport: 'udp' | 'tcp';
}

/** Upper bound on remembered queries, so a long test cannot grow it without end. */
const QUERY_LOG_LIMIT = 10_000;

function typeName(type: number): QueryType {
  if (type === TYPE_A) return 'A';
  if (type === TYPE_AAAA) return 'AAAA';
  if (type === TYPE_SRV) return 'SRV';
  return 'OTHER';
}

function canonical(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

export class TestClusterDns {
  readonly namespace: string;
  readonly service: string;
  readonly clusterDomain: string;
  readonly ttlSeconds: number;
  private portName: string | null;
  private port: number;
  /** pod name → IP (v4 or v6). */
  private readonly podIps = new Map<string, string>();
  private readonly failures = new Map<QueryType, FailureMode>();
  private readonly log: ReceivedQuery[] = [];
  private serial = 1;

  private constructor(
    private readonly server: DnsServer,
    readonly host: string,
    readonly listenPort: number,
    options: TestDnsOptions,
  ) {
    this.namespace = options.namespace;
    this.service = options.service;
    this.clusterDomain = canonical(options.clusterDomain ?? 'cluster.local');
    this.portName = options.portName === undefined ? 'raft' : options.portName;
    this.port = options.port ?? 4041;
    this.ttlSeconds = options.ttlSeconds ?? 5;
  }

  static async start(options: TestDnsOptions): Promise<TestClusterDns> {
    const withTcp = options.tcp ?? true;
    // UDP takes an ephemeral port first; TCP must then get the same number, which
    // another process may hold, so retry a few times with a fresh UDP port.
    for (let attempt = 0; attempt < 20; attempt++) {
      const udpOnly = dns2.createServer({ udp: { type: 'udp4' } });
      const { udp } = await udpOnly.listen({ udp: { port: 0, address: '127.0.0.1' } });
      const port = udp?.port;
      await udpOnly.close();
      if (port === undefined) throw new Error('test DNS server: UDP socket has no address');
      const server = dns2.createServer({ udp: { type: 'udp4' }, tcp: withTcp });
      const bound = await bindBoth(server, port, withTcp);
      if (!bound) continue;
      const dns = new TestClusterDns(server, '127.0.0.1', port, options);
      server.on('request', (request, send, client) => {
        const transport = 'remoteAddress' in client ? 'tcp' : 'udp';
        dns.handle(request, send, transport);
      });
      return dns;
    }
    throw new Error('test DNS server: could not bind UDP and TCP to one port');
  }

  /** `host:port`, as `--dns-server` and `Resolver.setServers` take it. */
  get address(): string {
    return `${this.host}:${this.listenPort}`;
  }

  get serviceName(): string {
    return `${this.service}.${this.namespace}.svc.${this.clusterDomain}`;
  }

  podHostname(pod: string): string {
    return `${pod}.${this.serviceName}`;
  }

  srvName(portName = this.portName ?? 'raft'): string {
    return `_${portName}._tcp.${this.serviceName}`;
  }

  /** Adds the pod or moves it to a new IP. */
  setPod(name: string, ip: string): void {
    if (!isIPv4(ip) && !isIPv6(ip)) throw new Error(`test DNS server: ${ip} is not an IP address`);
    this.podIps.set(name, ip);
    this.serial++;
  }

  removePod(name: string): void {
    this.podIps.delete(name);
    this.serial++;
  }

  /** The Service port behind SRV; null removes the named port (SRV becomes NXDOMAIN). */
  setServicePort(portName: string | null, port = this.port): void {
    this.portName = portName;
    this.port = port;
    this.serial++;
  }

  /** Make queries of `type` (or all types) fail; `answer` restores normal answers. */
  fail(type: QueryType | 'all', mode: FailureMode): void {
    for (const t of type === 'all' ? (['A', 'AAAA', 'SRV', 'OTHER'] as const) : [type]) this.failures.set(t, mode);
  }

  answer(type: QueryType | 'all' = 'all'): void {
    if (type === 'all') this.failures.clear();
    else this.failures.delete(type);
  }

  /** Queries received so far (oldest first, at most QUERY_LOG_LIMIT). */
  queries(): readonly ReceivedQuery[] {
    return this.log;
  }

  countQueries(predicate: (query: ReceivedQuery) => boolean = () => true): number {
    return this.log.filter(predicate).length;
  }

  async close(): Promise<void> {
    await this.server.close();
  }

  private handle(request: PacketType, send: (response: PacketType) => Promise<Buffer>, transport: 'udp' | 'tcp'): void {
    const question = request.questions[0];
    if (!question) return;
    const type = typeName(question.type);
    if (this.log.length >= QUERY_LOG_LIMIT) this.log.shift();
    this.log.push({ name: canonical(question.name), type, transport });

    const failure = this.failures.get(type);
    if (failure === 'silent') return;
    const response = Packet.createResponseFromRequest(request);
    response.header.aa = 1;
    if (failure === 'servfail') {
      response.header.aa = 0;
      response.header.rcode = RCODE_SERVFAIL;
      void send(response).catch(() => undefined);
      return;
    }
    const { rcode, answers, additionals } = this.lookup(question.name, question.type);
    response.header.rcode = rcode;
    response.answers = answers;
    response.additionals = additionals;
    if (answers.length === 0) response.authorities = [this.soa()];
    void send(response).catch(() => undefined);
  }

  private lookup(qname: string, qtype: number): { rcode: number; answers: Resource[]; additionals: Resource[] } {
    const name = canonical(qname);
    const none = { answers: [] as Resource[], additionals: [] as Resource[] };
    const pods = [...this.podIps.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

    if (this.portName !== null && name === canonical(this.srvName(this.portName))) {
      if (qtype !== TYPE_SRV) return { rcode: RCODE_NOERROR, ...none };
      // CoreDNS: every record of one priority shares 100 equally, rounded down, at least 1.
      const weight = Math.max(1, Math.floor(100 / Math.max(1, pods.length)));
      return {
        rcode: RCODE_NOERROR,
        answers: pods.map(([pod]) =>
          this.record(qname, TYPE_SRV, { priority: 0, weight, port: this.port, target: this.podHostname(pod) }),
        ),
        additionals: pods.map(([pod, ip]) => this.addressRecord(this.podHostname(pod), ip)),
      };
    }
    if (name === this.serviceName) {
      return { rcode: RCODE_NOERROR, answers: this.addresses(qname, qtype, pods.map(([, ip]) => ip)), additionals: [] };
    }
    for (const [pod, ip] of pods) {
      if (name === this.podHostname(pod)) {
        return { rcode: RCODE_NOERROR, answers: this.addresses(qname, qtype, [ip]), additionals: [] };
      }
    }
    return { rcode: RCODE_NXDOMAIN, ...none };
  }

  private addresses(qname: string, qtype: number, ips: string[]): Resource[] {
    if (qtype === TYPE_A) return ips.filter((ip) => isIPv4(ip)).map((ip) => this.record(qname, TYPE_A, { address: ip }));
    if (qtype === TYPE_AAAA) return ips.filter((ip) => isIPv6(ip)).map((ip) => this.record(qname, TYPE_AAAA, { address: ip }));
    return [];
  }

  private addressRecord(name: string, ip: string): Resource {
    return this.record(name, isIPv4(ip) ? TYPE_A : TYPE_AAAA, { address: ip });
  }

  private soa(): Resource {
    return this.record(this.clusterDomain, TYPE_SOA, {
      primary: `ns.dns.${this.clusterDomain}`,
      admin: `hostmaster.${this.clusterDomain}`,
      serial: this.serial,
      refresh: 7200,
      retry: 1800,
      expiration: 86400,
      minimum: this.ttlSeconds,
    });
  }

  private record(name: string, type: number, data: Partial<Resource>): Resource {
    return { name, type, class: CLASS_IN, ttl: this.ttlSeconds, ...data } as Resource;
  }
}

async function bindBoth(server: DnsServer, port: number, withTcp: boolean): Promise<boolean> {
  const failed = new Promise<false>((resolve) => server.once('error', () => resolve(false)));
  const listening = server
    .listen({ udp: { port, address: '127.0.0.1' }, ...(withTcp ? { tcp: { port, address: '127.0.0.1' } } : {}) })
    .then(() => true as const);
  const ok = await Promise.race([listening, failed]);
  if (!ok) {
    await Promise.race([server.close(), new Promise((resolve) => setTimeout(resolve, 100))]).catch(() => undefined);
  }
  return ok;
}
