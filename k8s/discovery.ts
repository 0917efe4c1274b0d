/**
 * Peer discovery through the headless Service's DNS.
 *
 * Each round asks for `_<portName>._tcp.<service>.<namespace>.svc.<domain>` (SRV;
 * one record per pod, target `<pod>.<service>.<namespace>.svc.<domain>`, with the
 * port) and resolves each target to an IP (A, then AAAA). When SRV fails or is
 * empty it falls back to each voter's own hostname with the configured peer port.
 * Addresses are handed to the transport as IPs, not hostnames, because the
 * transport's own resolver (getaddrinfo) may not be the one `--dns-server` names,
 * and because a moved pod keeps its hostname: only the IP shows the move.
 *
 * Rules it keeps:
 * - The voter set is fixed by configuration: DNS only supplies addresses. A pod
 *   DNS lists outside the voters is logged once and ignored; a voter DNS forgets
 *   keeps its last known address (DNS lag or a partition must not shrink the quorum).
 * - `setPeerAddress` is called only when a peer's address changes.
 * - A failing lookup (NXDOMAIN, SERVFAIL, timeout) never throws out of here and
 *   never clears an address; it is logged once per change of state.
 * - Rounds never overlap. They run every `resolveIntervalMs` (every
 *   `missingPeerRetryMs` while some voter has no address yet), and soon after the
 *   transport reports a peer unreachable (debounced, and at most once per
 *   `minResolveGapMs`).
 */
import { isIP } from 'node:net';
import { Resolver } from 'node:dns/promises';
import type { Logger } from 'pino';
import type { PeerTransport } from '../cluster/interfaces.js';

export interface SrvAnswer {
  name: string;
  port: number;
  priority: number;
  weight: number;
}

/** The part of `node:dns/promises` Resolver that discovery uses; a test may inject its own. */
export interface DnsResolverLike {
  resolveSrv(name: string): Promise<SrvAnswer[]>;
  resolve4(name: string): Promise<string[]>;
  resolve6(name: string): Promise<string[]>;
  cancel(): void;
}

export interface DiscoveryTimers {
  setTimeout(callback: () => void, delayMs: number): unknown;
  clearTimeout(handle: unknown): void;
  /** Milliseconds on a monotonic clock. */
  now(): number;
}

export interface DnsDiscoveryOptions {
  /** This member's id (the pod name); never given an address. */
  selfId: string;
  /** The fixed voter set, self included (k8s/voters.ts). */
  voters: readonly string[];
  namespace: string;
  /** The headless Service (`--service`). */
  service: string;
  /** `--cluster-domain`, default `cluster.local`. */
  clusterDomain?: string;
  /** The Service port name published as SRV, default `raft`. */
  portName?: string;
  /** The peer port used with the per-pod A/AAAA fallback, default 4041. */
  peerPort?: number;
  /** `--dns-server host:port` (an IP, optionally with a port); default the system resolvers. */
  dnsServer?: string;
  /** Bound on one DNS query, default 2000 ms. */
  queryTimeoutMs?: number;
  /** Time between rounds once every voter has an address, default 10000 ms. */
  resolveIntervalMs?: number;
  /** Time between rounds while some voter has no address yet, default 1000 ms. */
  missingPeerRetryMs?: number;
  /** Coalesces a burst of unreachable reports into one round, default 100 ms. */
  unreachableDebounceMs?: number;
  /** Unreachable reports start a round at most this often, default 1000 ms. */
  minResolveGapMs?: number;
  logger: Logger;
  /** Injected for tests; default the real timers and performance.now(). */
  timers?: DiscoveryTimers;
  /** Injected for tests; default a `node:dns` Resolver with `timeout: queryTimeoutMs, tries: 1`. */
  createResolver?: (options: { queryTimeoutMs: number; dnsServer: string | undefined }) => DnsResolverLike;
}

export type DiscoveryConfigErrorCode = 'DISCOVERY_CONFIG_INVALID';

export class DiscoveryConfigError extends Error {
  readonly code: DiscoveryConfigErrorCode = 'DISCOVERY_CONFIG_INVALID';
  constructor(
    readonly setting: string,
    message: string,
  ) {
    super(`discovery ${setting}: ${message}`);
    this.name = 'DiscoveryConfigError';
  }
}

/** How an address was found: through SRV, or through the pod's hostname (the fallback); and which record gave the IP. */
export interface LookupSource {
  via: 'srv' | 'pod-hostname';
  record: 'A' | 'AAAA';
}

export interface PeerDiscoveryStatus {
  id: string;
  /** `host:port` last handed to the transport, or null. */
  address: string | null;
  /** 'ok', or the error code of the latest failed lookup for this peer ('ENOTLISTED': missing from the SRV answer). */
  lookup: string;
}

export interface DiscoveryStatus {
  /** 'ok', 'empty', or the error code of the latest SRV lookup. */
  srv: string;
  peers: PeerDiscoveryStatus[];
  rounds: number;
}

interface ResolvedOptions {
  selfId: string;
  voters: string[];
  namespace: string;
  service: string;
  clusterDomain: string;
  portName: string;
  peerPort: number;
  dnsServer: string | undefined;
  queryTimeoutMs: number;
  resolveIntervalMs: number;
  missingPeerRetryMs: number;
  unreachableDebounceMs: number;
  minResolveGapMs: number;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** IANA service name, as Kubernetes requires of a named port. */
const PORT_NAME = /^(?=.*[a-z])[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** Names outside the voter set remembered for "log once"; past this, new names are not logged. */
const IGNORED_NAMES_LIMIT = 256;

const defaultTimers: DiscoveryTimers = {
  setTimeout: (callback, delayMs) => setTimeout(callback, delayMs),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  now: () => performance.now(),
};

function defaultResolver({ queryTimeoutMs, dnsServer }: { queryTimeoutMs: number; dnsServer: string | undefined }) {
  const resolver = new Resolver({ timeout: queryTimeoutMs, tries: 1 });
  if (dnsServer !== undefined) resolver.setServers([dnsServer]);
  return resolver;
}

function positiveInt(setting: string, value: number | undefined, fallback: number, max = 3_600_000): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < 1 || v > max) {
    throw new DiscoveryConfigError(setting, `must be an integer in [1, ${max}], got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Checks every value and relation once, up front; throws `DiscoveryConfigError` naming the broken one. */
export function resolveDiscoveryOptions(options: DnsDiscoveryOptions): ResolvedOptions {
  const label = (setting: string, value: string): string => {
    if (value.length > 63 || !DNS_LABEL.test(value)) {
      throw new DiscoveryConfigError(
        setting,
        `${JSON.stringify(value)} is not a DNS label (lowercase letters, digits and '-', at most 63 characters)`,
      );
    }
    return value;
  };
  const namespace = label('namespace', options.namespace);
  const service = label('service', options.service);
  const clusterDomain = (options.clusterDomain ?? 'cluster.local').replace(/\.$/, '');
  if (clusterDomain.length > 253 || !clusterDomain.split('.').every((part) => part.length <= 63 && DNS_LABEL.test(part))) {
    throw new DiscoveryConfigError('clusterDomain', `${JSON.stringify(clusterDomain)} is not a DNS domain`);
  }
  const portName = options.portName ?? 'raft';
  if (portName.length > 15 || !PORT_NAME.test(portName)) {
    throw new DiscoveryConfigError(
      'portName',
      `${JSON.stringify(portName)} is not a Kubernetes port name (at most 15 lowercase letters, digits and '-', with a letter)`,
    );
  }
  const peerPort = positiveInt('peerPort', options.peerPort, 4041, 65_535);
  const queryTimeoutMs = positiveInt('queryTimeoutMs', options.queryTimeoutMs, 2_000, 60_000);
  const resolveIntervalMs = positiveInt('resolveIntervalMs', options.resolveIntervalMs, 10_000);
  const missingPeerRetryMs = positiveInt('missingPeerRetryMs', options.missingPeerRetryMs, 1_000);
  const unreachableDebounceMs = positiveInt('unreachableDebounceMs', options.unreachableDebounceMs, 100, 60_000);
  const minResolveGapMs = positiveInt('minResolveGapMs', options.minResolveGapMs, 1_000);
  if (missingPeerRetryMs > resolveIntervalMs) {
    throw new DiscoveryConfigError(
      'missingPeerRetryMs',
      `(${missingPeerRetryMs}) must not exceed resolveIntervalMs (${resolveIntervalMs}): a voter without an address is retried sooner, not later`,
    );
  }
  if (minResolveGapMs > resolveIntervalMs) {
    throw new DiscoveryConfigError(
      'minResolveGapMs',
      `(${minResolveGapMs}) must not exceed resolveIntervalMs (${resolveIntervalMs}): an unreachable peer would wait longer than a periodic round`,
    );
  }
  const voters = [...options.voters];
  if (voters.length === 0) throw new DiscoveryConfigError('voters', 'must name at least one member');
  if (new Set(voters).size !== voters.length) throw new DiscoveryConfigError('voters', `has duplicates: ${voters.join(', ')}`);
  for (const voter of voters) label('voters', voter);
  if (!voters.includes(options.selfId)) {
    throw new DiscoveryConfigError('selfId', `${JSON.stringify(options.selfId)} is not one of the voters (${voters.join(', ')})`);
  }
  let dnsServer = options.dnsServer;
  if (dnsServer !== undefined) {
    dnsServer = dnsServer.trim();
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(dnsServer);
    const plain = /^([^:]+)(?::(\d+))?$/.exec(dnsServer);
    const host = bracketed?.[1] ?? (isIP(dnsServer) === 6 ? dnsServer : plain?.[1]);
    const port = bracketed ? bracketed[2] : isIP(dnsServer) === 6 ? undefined : plain?.[2];
    if (host === undefined || isIP(host) === 0 || (port !== undefined && (Number(port) < 1 || Number(port) > 65_535))) {
      throw new DiscoveryConfigError('dnsServer', `${JSON.stringify(options.dnsServer)} is not an IP address with an optional port (host:port, [v6]:port)`);
    }
  }
  return {
    selfId: options.selfId,
    voters,
    namespace,
    service,
    clusterDomain,
    portName,
    peerPort,
    dnsServer,
    queryTimeoutMs,
    resolveIntervalMs,
    missingPeerRetryMs,
    unreachableDebounceMs,
    minResolveGapMs,
  };
}

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'EUNKNOWN';
}

/** Node reports NXDOMAIN as ENOTFOUND and NOERROR-without-records as ENODATA. */
function isNoRecords(code: string): boolean {
  return code === 'ENOTFOUND' || code === 'ENODATA';
}

interface PeerAddressFound {
  host: string;
  port: number;
  source: LookupSource;
}

type PeerLookup = { ok: true; address: PeerAddressFound } | { ok: false; code: string; name: string };

export class DnsDiscovery {
  private readonly options: ResolvedOptions;
  private readonly logger: Logger;
  private readonly timers: DiscoveryTimers;
  private readonly resolver: DnsResolverLike;
  private readonly peerIds: string[];
  private readonly voterSet: Set<string>;
  private readonly known = new Map<string, { host: string; port: number }>();
  private readonly peerLookupState = new Map<string, string>();
  private readonly ignoredNames = new Set<string>();
  private srvState = 'unknown';
  private rounds = 0;
  private started = false;
  private stopped = false;
  private inFlight: Promise<void> | null = null;
  private rerunRequested = false;
  private periodicTimer: unknown = null;
  private unreachableTimer: unknown = null;
  private lastRoundStartedAt = Number.NEGATIVE_INFINITY;

  constructor(
    options: DnsDiscoveryOptions,
    private readonly transport: Pick<PeerTransport, 'setPeerAddress'>,
  ) {
    this.options = resolveDiscoveryOptions(options);
    this.logger = options.logger.child({ component: 'discovery' });
    this.timers = options.timers ?? defaultTimers;
    this.resolver = (options.createResolver ?? defaultResolver)({
      queryTimeoutMs: this.options.queryTimeoutMs,
      dnsServer: this.options.dnsServer,
    });
    this.voterSet = new Set(this.options.voters);
    this.peerIds = this.options.voters.filter((id) => id !== this.options.selfId).sort();
  }

  /** `<service>.<namespace>.svc.<domain>` */
  get serviceDomain(): string {
    const o = this.options;
    return `${o.service}.${o.namespace}.svc.${o.clusterDomain}`;
  }

  get srvName(): string {
    return `_${this.options.portName}._tcp.${this.serviceDomain}`;
  }

  podHostname(pod: string): string {
    return `${pod}.${this.serviceDomain}`;
  }

  /** Runs the first round (never rejects for DNS trouble) and starts the periodic ones. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.logger.info(
      { srv: this.srvName, voters: this.options.voters, dnsServer: this.options.dnsServer ?? 'system' },
      'dns discovery started',
    );
    await this.resolveNow();
  }

  /** Stops timers, cancels queries in flight and waits for the round to end; no address is set afterwards. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.clearTimer('periodicTimer');
    this.clearTimer('unreachableTimer');
    this.resolver.cancel();
    await this.inFlight;
    this.logger.info('dns discovery stopped');
  }

  /**
   * The transport could not reach `peerId`: its pod may have moved. Starts a round
   * after `unreachableDebounceMs`, or later if a round started less than
   * `minResolveGapMs` ago. Wire it to `TransportEvents.onUnreachable`.
   */
  peerUnreachable(peerId: string): void {
    if (!this.started || this.stopped || !this.voterSet.has(peerId) || peerId === this.options.selfId) return;
    if (this.unreachableTimer !== null) return;
    const sinceLast = this.timers.now() - this.lastRoundStartedAt;
    const delayMs = Math.max(this.options.unreachableDebounceMs, this.options.minResolveGapMs - sinceLast);
    this.logger.debug({ peer: peerId, delayMs: Math.round(delayMs) }, 'peer unreachable: re-resolving soon');
    this.unreachableTimer = this.timers.setTimeout(() => {
      this.unreachableTimer = null;
      void this.resolveNow();
    }, delayMs);
  }

  /** Runs a round now, or one more right after the round in flight; resolves when it has run. */
  resolveNow(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.inFlight) {
      this.rerunRequested = true;
      return this.inFlight;
    }
    this.inFlight = (async () => {
      do {
        this.rerunRequested = false;
        try {
          await this.round();
        } catch (err) {
          // A bug here must not stop discovery: log it and try again on schedule.
          this.logger.error({ err }, 'dns discovery round failed unexpectedly');
        }
      } while (this.rerunRequested && !this.stopped);
    })().finally(() => {
      this.inFlight = null;
      this.scheduleNext();
    });
    return this.inFlight;
  }

  /** The addresses handed to the transport so far, by peer id in sorted order. */
  addresses(): Record<string, string | null> {
    return Object.fromEntries(this.peerIds.map((id) => [id, this.addressOf(id)]));
  }

  status(): DiscoveryStatus {
    return {
      srv: this.srvState,
      rounds: this.rounds,
      peers: this.peerIds.map((id) => ({
        id,
        address: this.addressOf(id),
        lookup: this.peerLookupState.get(id) ?? 'unknown',
      })),
    };
  }

  private addressOf(id: string): string | null {
    const known = this.known.get(id);
    if (!known) return null;
    return isIP(known.host) === 6 ? `[${known.host}]:${known.port}` : `${known.host}:${known.port}`;
  }

  private clearTimer(which: 'periodicTimer' | 'unreachableTimer'): void {
    if (this[which] !== null) {
      this.timers.clearTimeout(this[which]);
      this[which] = null;
    }
  }

  private scheduleNext(): void {
    this.clearTimer('periodicTimer');
    if (this.stopped) return;
    const missing = this.peerIds.some((id) => !this.known.has(id));
    const delayMs = missing ? this.options.missingPeerRetryMs : this.options.resolveIntervalMs;
    this.periodicTimer = this.timers.setTimeout(() => {
      this.periodicTimer = null;
      void this.resolveNow();
    }, delayMs);
  }

  private async round(): Promise<void> {
    this.lastRoundStartedAt = this.timers.now();
    this.rounds++;
    const fromSrv = await this.lookupSrv();
    // stop() cancels the queries in flight; starting the fallback ones would outlive it.
    if (this.stopped) return;
    const found = new Map<string, PeerLookup>();
    if (fromSrv) {
      // A voter missing from a non-empty SRV answer keeps its last address: the
      // answer may lag, and forgetting an address never helps.
      await Promise.all(
        [...fromSrv].map(async ([pod, port]) => found.set(pod, await this.lookupHost(this.podHostname(pod), port, 'srv'))),
      );
      for (const id of this.peerIds) {
        if (!found.has(id)) found.set(id, { ok: false, code: 'ENOTLISTED', name: this.srvName });
      }
    } else {
      await Promise.all(
        this.peerIds.map(async (pod) =>
          found.set(pod, await this.lookupHost(this.podHostname(pod), this.options.peerPort, 'pod-hostname')),
        ),
      );
    }
    if (this.stopped) return;
    for (const id of this.peerIds) {
      const result = found.get(id);
      if (result) this.apply(id, result);
    }
  }

  /** SRV answer as pod → port for the peer voters, or null when SRV failed or listed nothing. */
  private async lookupSrv(): Promise<Map<string, number> | null> {
    let records: SrvAnswer[];
    try {
      records = await this.withTimeout(this.resolver.resolveSrv(this.srvName));
    } catch (err) {
      if (this.stopped) return null;
      this.setSrvState(errorCode(err));
      return null;
    }
    if (records.length === 0) {
      this.setSrvState('empty');
      return null;
    }
    this.setSrvState('ok');
    const suffix = `.${this.serviceDomain}`;
    const pods = new Map<string, number>();
    const sorted = [...records].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.port - b.port));
    for (const record of sorted) {
      const target = record.name.toLowerCase().replace(/\.$/, '');
      const pod = target.endsWith(suffix) ? target.slice(0, -suffix.length) : null;
      if (pod === null || pod.includes('.')) {
        this.logIgnoredOnce(target, { target }, 'srv target outside the headless service ignored');
        continue;
      }
      if (!this.voterSet.has(pod)) {
        // CoreDNS names an endpoint without a hostname after its IP (10-0-0-7): the
        // pod is not a StatefulSet pod of this Service.
        const hint = /^\d+-\d+-\d+-\d+$/.test(pod) || pod.includes('--')
          ? 'the endpoint has no hostname: is the StatefulSet serviceName this headless Service?'
          : 'raise --replicas (and the StatefulSet) to make it a voter';
        this.logIgnoredOnce(pod, { pod, target, voters: this.options.voters, hint }, 'pod outside the voter set ignored');
        continue;
      }
      if (pod === this.options.selfId || pods.has(pod)) continue;
      pods.set(pod, record.port);
    }
    if (pods.size === 0 && this.peerIds.length > 0) {
      // SRV lists only ourselves or strangers: treat like an empty answer.
      return null;
    }
    return pods;
  }

  /** The host's IPv4 address, else its IPv6 address. */
  private async lookupHost(name: string, port: number, via: LookupSource['via']): Promise<PeerLookup> {
    let v4Code: string;
    try {
      const ips = await this.withTimeout(this.resolver.resolve4(name));
      const host = this.pick(name, ips);
      if (host !== undefined) return { ok: true, address: { host, port, source: { via, record: 'A' } } };
      v4Code = 'ENODATA';
    } catch (err) {
      v4Code = errorCode(err);
    }
    // Only "no A record" is worth an AAAA query: after NXDOMAIN or a timeout it would fail the same way.
    if (v4Code !== 'ENODATA' || this.stopped) return { ok: false, code: v4Code, name };
    try {
      const ips = await this.withTimeout(this.resolver.resolve6(name));
      const host = this.pick(name, ips);
      if (host !== undefined) return { ok: true, address: { host, port, source: { via, record: 'AAAA' } } };
      return { ok: false, code: 'ENODATA', name };
    } catch (err) {
      return { ok: false, code: errorCode(err), name };
    }
  }

  /** Keeps the current address when DNS still lists it (no flapping between several), else the lowest. */
  private pick(name: string, ips: string[]): string | undefined {
    const pod = name.slice(0, name.indexOf('.'));
    const current = this.known.get(pod)?.host;
    if (current !== undefined && ips.includes(current)) return current;
    return [...ips].sort()[0];
  }

  private apply(id: string, result: PeerLookup): void {
    const previousState = this.peerLookupState.get(id);
    const last = this.addressOf(id);
    if (!result.ok) {
      this.peerLookupState.set(id, result.code);
      if (previousState !== result.code) {
        this.logger.warn(
          { peer: id, name: result.name, code: result.code, lastAddress: last },
          last === null ? 'peer address lookup failed' : 'peer address lookup failed, keeping the last address',
        );
      }
      return;
    }
    this.peerLookupState.set(id, 'ok');
    if (previousState !== undefined && previousState !== 'ok') {
      this.logger.info({ peer: id, previousCode: previousState }, 'peer address lookup recovered');
    }
    const { host, port, source } = result.address;
    const known = this.known.get(id);
    if (known && known.host === host && known.port === port) return;
    this.known.set(id, { host, port });
    this.logger.info(
      { peer: id, address: this.addressOf(id), previous: last, via: source.via, record: source.record },
      last === null ? 'peer address discovered' : 'peer address changed',
    );
    try {
      this.transport.setPeerAddress(id, host, port);
    } catch (err) {
      // The transport promises not to throw; if it does, keep discovering.
      this.logger.error({ err, peer: id }, 'transport rejected a peer address');
    }
  }

  private setSrvState(state: string): void {
    const previous = this.srvState;
    this.srvState = state;
    if (previous === state) return;
    if (state === 'ok') {
      if (previous !== 'unknown') this.logger.info({ name: this.srvName, previous }, 'srv lookup recovered');
      return;
    }
    this.logger.warn(
      {
        name: this.srvName,
        code: state,
        hint: isNoRecords(state) || state === 'empty'
          ? `no pods yet, or the Service has no port named '${this.options.portName}' or lacks publishNotReadyAddresses: true`
          : undefined,
      },
      'srv lookup failed, using per-pod address records',
    );
  }

  private logIgnoredOnce(key: string, fields: Record<string, unknown>, message: string): void {
    if (this.ignoredNames.has(key)) return;
    if (this.ignoredNames.size >= IGNORED_NAMES_LIMIT) return;
    this.ignoredNames.add(key);
    this.logger.warn(fields, message);
    if (this.ignoredNames.size === IGNORED_NAMES_LIMIT) {
      this.logger.warn({ limit: IGNORED_NAMES_LIMIT }, 'too many ignored dns names: no longer logging new ones');
    }
  }

  /** c-ares bounds each query itself; this guard also bounds a resolver that does not. */
  private withTimeout<T>(query: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = this.timers.setTimeout(() => {
        reject(Object.assign(new Error('dns query timed out'), { code: 'ETIMEOUT' }));
      }, this.options.queryTimeoutMs + 250);
      query.then(
        (value) => {
          this.timers.clearTimeout(timer);
          resolve(value);
        },
        (err: unknown) => {
          this.timers.clearTimeout(timer);
          reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
    });
  }
}
