/**
 * Whether a socket's remote address is the loopback interface. The admin routes
 * trust only processes in the same network namespace (the pod), so this reads the
 * socket's own address and never X-Forwarded-For, which any client can set.
 */
import { isIPv4, isIPv6 } from 'node:net';

export function isLoopbackAddress(address: string | undefined | null): boolean {
  if (!address) return false;
  // Dual-stack sockets show IPv4 peers as ::ffff:a.b.c.d.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  const candidate = mapped?.[1] ?? address;
  if (isIPv4(candidate)) return candidate.split('.')[0] === '127';
  if (isIPv6(candidate)) return expandIPv6(candidate) === '0000:0000:0000:0000:0000:0000:0000:0001';
  return false;
}

/** ::1, 0:0::1 and 0000:...:0001 are one address; compare the full form. */
function expandIPv6(address: string): string {
  const withoutZone = address.split('%')[0] ?? '';
  const [head = '', tail] = withoutZone.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const missing = tail === undefined ? 0 : 8 - headGroups.length - tailGroups.length;
  const groups = [...headGroups, ...Array<string>(Math.max(missing, 0)).fill('0'), ...tailGroups];
  return groups.map((g) => g.toLowerCase().padStart(4, '0')).join(':');
}
