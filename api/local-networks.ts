/**
 * Which API clients count as local (the app in the pod) and which are strangers
 * (any other pod: the API binds 0.0.0.0). Local clients get slots of their own
 * (api/admission.ts). The class is read from the socket's own address, never
 * from X-Forwarded-For, which any client can set.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';

export type ClientClass = 'local' | 'stranger';

export const CLIENT_CLASSES: readonly ClientClass[] = ['local', 'stranger'];

/** The loopback ranges: only processes in the pod's network namespace reach them. */
export const DEFAULT_LOCAL_CIDRS: readonly string[] = Object.freeze(['127.0.0.0/8', '::1/128']);

/** A CIDR that does not parse; the message names it. */
export class CidrError extends Error {
  readonly code = 'CIDR_INVALID';
  constructor(
    readonly cidr: string,
    reason: string,
  ) {
    super(`"${cidr}" is not a CIDR (${reason}); write it as 127.0.0.0/8 or ::1/128`);
    this.name = 'CidrError';
  }
}

export interface Cidr {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** Parses `a.b.c.d/n` or `x::y/n`; a bare address means the single host (/32, /128). */
export function parseCidr(text: string): Cidr {
  const trimmed = text.trim();
  const slash = trimmed.indexOf('/');
  const address = slash < 0 ? trimmed : trimmed.slice(0, slash);
  const family = isIPv4(address) ? 'ipv4' : isIPv6(address) && !address.includes('%') ? 'ipv6' : null;
  if (family === null) throw new CidrError(text, 'not an IPv4 or IPv6 address');
  const max = family === 'ipv4' ? 32 : 128;
  if (slash < 0) return { address, prefix: max, family };
  const prefixText = trimmed.slice(slash + 1);
  const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!(prefix >= 0 && prefix <= max)) throw new CidrError(text, `the prefix must be 0 to ${max}`);
  return { address, prefix, family };
}

/** A socket address as Node reports it, with an IPv4-mapped IPv6 address (dual-stack ::) read as IPv4. */
export function normalizeAddress(address: string): { address: string; family: 'ipv4' | 'ipv6' } | null {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  const candidate = mapped?.[1] ?? address;
  if (isIPv4(candidate)) return { address: candidate, family: 'ipv4' };
  if (isIPv6(candidate)) return { address: candidate, family: 'ipv6' };
  return null;
}

export class LocalNetworks {
  private readonly list = new BlockList();
  /** The CIDRs as given, sorted, for logs and docs. */
  readonly cidrs: readonly string[];

  /** Throws `CidrError` naming the first CIDR that does not parse. */
  constructor(cidrs: readonly string[] = DEFAULT_LOCAL_CIDRS) {
    for (const text of cidrs) {
      const cidr = parseCidr(text);
      this.list.addSubnet(cidr.address, cidr.prefix, cidr.family);
    }
    this.cidrs = [...cidrs].map((c) => c.trim()).sort();
  }

  /** Unknown or unparsable addresses are strangers: a reserved slot must never go to a guess. */
  classify(address: string | undefined | null): ClientClass {
    if (!address) return 'stranger';
    const normalized = normalizeAddress(address);
    if (!normalized) return 'stranger';
    return this.list.check(normalized.address, normalized.family) ? 'local' : 'stranger';
  }
}
