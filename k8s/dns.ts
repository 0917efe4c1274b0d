/**
 * The DNS resolver the DNS address source uses, and its seams for tests. Queries go to the
 * pod's resolv.conf servers unless `--dns-server` names one; every name asked is fully
 * qualified, so search paths and `ndots` do not change what is asked.
 */
import { Resolver } from 'node:dns/promises';

export interface SrvAnswer {
  name: string;
  port: number;
  priority: number;
  weight: number;
}

/** The part of `node:dns/promises` Resolver that is used; a test may inject its own. */
export interface DnsResolverLike {
  resolveSrv(name: string): Promise<SrvAnswer[]>;
  resolve4(name: string): Promise<string[]>;
  resolve6(name: string): Promise<string[]>;
  cancel(): void;
}

export interface DnsTimers {
  setTimeout(callback: () => void, delayMs: number): unknown;
  clearTimeout(handle: unknown): void;
  /** Milliseconds on a monotonic clock. */
  now(): number;
}

export const realDnsTimers: DnsTimers = {
  setTimeout: (callback, delayMs) => setTimeout(callback, delayMs).unref(),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  now: () => performance.now(),
};

/** `dnsServer` is `host:port` or `[v6]:port`, as Resolver.setServers takes it. */
export function createDnsResolver(o: { queryTimeoutMs: number; dnsServer: string | undefined }): DnsResolverLike {
  const resolver = new Resolver({ timeout: o.queryTimeoutMs, tries: 2 });
  if (o.dnsServer !== undefined) resolver.setServers([o.dnsServer]);
  return resolver;
}
