/**
 * The headless Service's DNS as the second address source, for when the pod watch has nothing
 * to say: the API server is unreachable, or this container restarted during an outage and has
 * no pod list yet. DNS lists pod IPs, not incarnation ids, so each new IP is asked who it is
 * (GET /identify on the peer port, proven with the shared secret: cluster/identify.ts). Only
 * members of the configuration in force get an address from here: a joiner is added by the
 * reconciler, which needs the API server anyway. Like the pod watch, this source only adds or
 * moves an address; removal follows the configuration.
 *
 * Asked: SRV `_raft._tcp.<service>` (pods with hostnames, a StatefulSet's), and the A and AAAA
 * records of the Service itself (every pod, `publishNotReadyAddresses: true`).
 */
import type { Logger } from 'pino';
import type { DnsResolverLike, DnsTimers } from './dns.js';
import type { AddressSink } from './pod-addresses.js';

export interface DnsAddressesOptions {
  selfId: string;
  /** `<service>.<namespace>.svc.<cluster-domain>` */
  serviceFqdn: string;
  peerPort: number;
  resolver: DnsResolverLike;
  identify(host: string, port: number): Promise<string>;
  /** The ids of the configuration in force (voters and learners, both halves while joint). */
  configurationIds(): ReadonlySet<string>;
  transport: AddressSink;
  /** Between two DNS rounds. */
  intervalMs: number;
  /** An identified address is asked again after this long (a pod IP reused by a new pod). */
  reidentifyMs: number;
  /** At most this many addresses are asked per round, in sorted order. */
  maxAddresses: number;
  timers: DnsTimers;
  logger: Logger;
}

interface Identified {
  id: string;
  atMs: number;
}

const IdentifyConcurrency = 4;

function isNoRecords(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'ENODATA' || code === 'ENOTFOUND' || code === 'NOTFOUND' || code === 'ENONAME';
}

export class DnsAddresses {
  private readonly log: Logger;
  /** `host:port` → who answered there, and when. */
  private readonly identified = new Map<string, Identified>();
  /** id → the address pushed for it by this source. */
  private readonly pushed = new Map<string, string>();
  /** Addresses whose last identify failed, logged once until they answer. */
  private readonly failing = new Set<string>();
  private timer: unknown = null;
  private running: Promise<void> | null = null;
  private looping = false;
  private stopped = false;

  constructor(private readonly o: DnsAddressesOptions) {
    this.log = o.logger.child({ component: 'dns-addresses', service: o.serviceFqdn });
  }

  start(): void {
    if (this.looping || this.stopped) return;
    this.looping = true;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) this.o.timers.clearTimeout(this.timer);
    this.timer = null;
    this.o.resolver.cancel();
    await this.running;
  }

  /** One round now (tests; the loop calls it too). */
  async round(): Promise<void> {
    const addresses = (await this.resolve()).slice(0, this.o.maxAddresses);
    const now = this.o.timers.now();
    const listed = new Set(addresses);
    for (const key of [...this.identified.keys()]) if (!listed.has(key)) this.identified.delete(key);
    const toAsk = addresses.filter((a) => {
      const known = this.identified.get(a);
      return known === undefined || now - known.atMs >= this.o.reidentifyMs;
    });
    for (let i = 0; i < toAsk.length && !this.stopped; i += IdentifyConcurrency) {
      await Promise.all(toAsk.slice(i, i + IdentifyConcurrency).map((a) => this.ask(a)));
    }
    this.push();
  }

  private schedule(delayMs: number): void {
    if (this.stopped || !this.looping) return;
    this.timer = this.o.timers.setTimeout(() => {
      this.timer = null;
      this.running = this.round()
        .catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'DNS address round failed'))
        .finally(() => {
          this.running = null;
          this.schedule(this.o.intervalMs);
        });
    }, delayMs);
  }

  /** Sorted, de-duplicated `host:port` of every pod the Service's DNS lists. */
  private async resolve(): Promise<string[]> {
    const out = new Set<string>();
    const r = this.o.resolver;
    const quiet = <T>(p: Promise<T[]>, what: string): Promise<T[]> =>
      p.catch((err: unknown) => {
        if (!isNoRecords(err)) this.log.debug({ query: what, code: (err as { code?: string }).code }, 'DNS query failed');
        return [];
      });
    const [srv, v4, v6] = await Promise.all([
      quiet(r.resolveSrv(`_raft._tcp.${this.o.serviceFqdn}`), 'SRV'),
      quiet(r.resolve4(this.o.serviceFqdn), 'A'),
      quiet(r.resolve6(this.o.serviceFqdn), 'AAAA'),
    ]);
    for (const ip of v4) out.add(`${ip}:${this.o.peerPort}`);
    for (const ip of v6) out.add(`[${ip}]:${this.o.peerPort}`);
    const targets = await Promise.all(
      srv.slice(0, this.o.maxAddresses).map(async (s) => ({ port: s.port, ips: await quiet(r.resolve4(s.name), 'A') })),
    );
    for (const t of targets) for (const ip of t.ips) out.add(`${ip}:${t.port}`);
    return [...out].sort();
  }

  private async ask(address: string): Promise<void> {
    const { host, port } = splitAddress(address);
    try {
      const id = await this.o.identify(host, port);
      this.identified.set(address, { id, atMs: this.o.timers.now() });
      if (this.failing.delete(address)) this.log.info({ address, peer: id }, 'address answers again');
    } catch (err) {
      this.identified.delete(address);
      if (this.failing.has(address)) return;
      this.failing.add(address);
      this.log.info({ address, err: (err as Error).message }, 'address listed by DNS did not prove which member it is');
    }
  }

  /** New and moved addresses of configuration members go to the transport. */
  private push(): void {
    const members = this.o.configurationIds();
    const byId = new Map<string, string>();
    for (const [address, who] of [...this.identified].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (who.id === this.o.selfId || !members.has(who.id)) continue;
      // Two addresses claiming one id: the newer answer wins (the older is a reused IP not yet re-asked).
      const prior = byId.get(who.id);
      if (prior === undefined || this.identified.get(prior)!.atMs <= who.atMs) byId.set(who.id, address);
    }
    for (const [id, address] of byId) {
      if (this.pushed.get(id) === address) continue;
      const { host, port } = splitAddress(address);
      try {
        this.o.transport.setPeerAddress(id, host, port);
        this.pushed.set(id, address);
        this.log.info({ peer: id, address }, 'peer address from DNS');
      } catch (err) {
        this.log.warn({ peer: id, address, code: (err as { code?: string }).code, err: (err as Error).message }, 'cannot add a peer address from DNS');
      }
    }
    for (const id of [...this.pushed.keys()]) if (!members.has(id)) this.pushed.delete(id);
  }
}

function splitAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon);
  return { host: host.startsWith('[') ? host.slice(1, -1) : host, port: Number(address.slice(colon + 1)) };
}
