/**
 * A private network of namespaces: one per member, plus a hub that holds two bridges,
 * `peers` (198.18.0.0/24, raft traffic, where the faults go) and `obs` (198.18.1.0/24, where
 * the sampler reads GET /leader, never faulted). 198.18.0.0/15 is the RFC 2544 benchmarking
 * range; it exists only inside these namespaces: nothing is added to the root namespace.
 *
 * Faults are tc rules on each member's egress `eth0` (this kernel has htb, tbf, pfifo, u32
 * and mirred; no netem, no gact, so a drop is a u32 match steered to a pfifo of limit 0).
 */
import { execFileSync, spawnSync } from 'node:child_process';

export const Prefix = 'rfe';
export const PeerNet = '198.18.0';
export const ObsNet = '198.18.1';
export const ObsHost = `${ObsNet}.254`;

/** Why namespaces cannot be used here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'network namespaces need root';
  for (const tool of ['ip', 'tc']) {
    const r = spawnSync(tool, ['-V'], { encoding: 'utf8' });
    if (r.error) return `\`${tool}\` is not installed`;
  }
  const probe = `${Prefix}-${process.pid}-probe`;
  const add = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (add.status !== 0) return `\`ip netns add\` fails: ${add.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', probe]);
  return undefined;
}

function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`, { cause: err });
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Deletes namespaces (and kills their processes) left by fault runs whose test process is gone. */
export function cleanStale(): string[] {
  const removed: string[] = [];
  for (const line of run('ip', ['netns', 'list']).split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = new RegExp(`^${Prefix}-(\\d+)-`).exec(name);
    if (!m || pidAlive(Number(m[1]))) continue;
    killNamespacePids(name);
    spawnSync('ip', ['netns', 'del', name]);
    removed.push(name);
  }
  return removed;
}

function killNamespacePids(ns: string): void {
  const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' });
  for (const pid of (r.stdout ?? '').split('\n').map(Number).filter((p) => p > 0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

let sequence = 0;
const FullRate = '10gbit';

export class FaultNet {
  readonly hub: string;
  readonly namespaces: string[];
  private closed = false;
  private readonly dirty = new Map<number, Set<'filters' | 'ifb' | 'rate'>>();

  /** Members are numbered 1..size: namespace `<name>-m<i>`, peer address 198.18.0.i, obs address 198.18.1.i. */
  constructor(readonly size: number) {
    const base = `${Prefix}-${process.pid}-${sequence++}`;
    this.hub = `${base}-hub`;
    this.namespaces = Array.from({ length: size }, (_, i) => `${base}-m${i + 1}`);
  }

  ns(i: number): string {
    const name = this.namespaces[i - 1];
    if (!name) throw new Error(`no member ${i}`);
    return name;
  }

  peerAddress(i: number): string {
    return `${PeerNet}.${i}`;
  }

  obsAddress(i: number): string {
    return `${ObsNet}.${i}`;
  }

  setUp(): void {
    try {
      run('ip', ['netns', 'add', this.hub]);
      const hub = ['-n', this.hub];
      run('ip', [...hub, 'link', 'set', 'lo', 'up']);
      for (const bridge of ['brpeers', 'brobs']) {
        run('ip', [...hub, 'link', 'add', bridge, 'type', 'bridge']);
        run('ip', [...hub, 'link', 'set', bridge, 'up']);
      }
      run('ip', [...hub, 'addr', 'add', `${ObsHost}/24`, 'dev', 'brobs']);
      for (let i = 1; i <= this.size; i++) {
        const ns = this.ns(i);
        run('ip', ['netns', 'add', ns]);
        run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
        // Both veth ends are created in the hub, the member end moved straight into its namespace.
        for (const [dev, bridge, inner, addr] of [
          [`p${i}`, 'brpeers', 'eth0', this.peerAddress(i)],
          [`o${i}`, 'brobs', 'obs0', this.obsAddress(i)],
        ] as const) {
          run('ip', [...hub, 'link', 'add', dev, 'type', 'veth', 'peer', 'name', inner, 'netns', ns]);
          run('ip', [...hub, 'link', 'set', dev, 'master', bridge]);
          run('ip', [...hub, 'link', 'set', dev, 'up']);
          run('ip', ['-n', ns, 'addr', 'add', `${addr}/24`, 'dev', inner]);
          run('ip', ['-n', ns, 'link', 'set', inner, 'up']);
        }
        this.resetRules(i);
      }
    } catch (err) {
      this.tearDown();
      throw err;
    }
  }

  /**
   * The egress tree on a member's eth0: htb class 1:1 for normal traffic (its rate is the
   * slow-link fault), 1:2 a pfifo of limit 0 (a blackhole) that u32 filters steer drops to.
   */
  resetRules(i: number): void {
    const tc = ['-n', this.ns(i)];
    spawnSync('tc', [...tc, 'qdisc', 'del', 'dev', 'eth0', 'root']);
    spawnSync('ip', [...tc, 'link', 'del', 'ifb0']);
    run('tc', [...tc, 'qdisc', 'add', 'dev', 'eth0', 'root', 'handle', '1:', 'htb', 'default', '1', 'r2q', '100000']);
    run('tc', [...tc, 'class', 'add', 'dev', 'eth0', 'parent', '1:', 'classid', '1:1', 'htb', 'rate', FullRate]);
    run('tc', [...tc, 'class', 'add', 'dev', 'eth0', 'parent', '1:', 'classid', '1:2', 'htb', 'rate', FullRate]);
    run('tc', [...tc, 'qdisc', 'add', 'dev', 'eth0', 'parent', '1:2', 'handle', '20:', 'pfifo', 'limit', '0']);
    this.dirty.delete(i);
  }

  /** Undoes only what was changed on member i: each tc/ip call costs tens of ms on a busy machine. */
  private heal(i: number): void {
    const d = this.dirty.get(i);
    if (!d) return;
    const tc = ['-n', this.ns(i)];
    if (d.has('filters')) run('tc', [...tc, 'filter', 'del', 'dev', 'eth0', 'parent', '1:']);
    if (d.has('ifb')) spawnSync('ip', [...tc, 'link', 'del', 'ifb0']);
    if (d.has('rate')) run('tc', [...tc, 'class', 'change', 'dev', 'eth0', 'parent', '1:', 'classid', '1:1', 'htb', 'rate', FullRate]);
    this.dirty.delete(i);
  }

  private mark(i: number, what: 'filters' | 'ifb' | 'rate'): void {
    let d = this.dirty.get(i);
    if (!d) this.dirty.set(i, (d = new Set()));
    d.add(what);
  }

  /** Drops every packet member `from` sends to member `to` (one direction). */
  drop(from: number, to: number): void {
    this.mark(from, 'filters');
    run('tc', ['-n', this.ns(from), 'filter', 'add', 'dev', 'eth0', 'parent', '1:', 'protocol', 'ip', 'prio', '1', 'u32', 'match', 'ip', 'dst', `${this.peerAddress(to)}/32`, 'flowid', '1:2']);
  }

  /**
   * Drops about 1 in 2^bits of the packets `from` sends: those whose IP ID has its low bits
   * zero. Linux counts the ID up per socket, so this is a regular, not random, loss.
   */
  lossy(from: number, bits: number): void {
    const mask = `0x${((1 << bits) - 1).toString(16).padStart(4, '0')}`;
    this.mark(from, 'filters');
    run('tc', ['-n', this.ns(from), 'filter', 'add', 'dev', 'eth0', 'parent', '1:', 'protocol', 'ip', 'prio', '2', 'u32', 'match', 'u16', '0x0000', mask, 'at', '4', 'flowid', '1:2']);
  }

  /**
   * Duplicates about 1 in 2^bits of the packets `from` sends, the copy delayed behind a slow
   * ifb queue, so it arrives late and out of order.
   */
  duplicate(from: number, bits: number, copyRateKbit: number): void {
    const ns = ['-n', this.ns(from)];
    const mask = `0x${((1 << bits) - 1).toString(16).padStart(4, '0')}`;
    spawnSync('ip', [...ns, 'link', 'del', 'ifb0']);
    this.mark(from, 'ifb');
    this.mark(from, 'filters');
    run('ip', [...ns, 'link', 'add', 'ifb0', 'type', 'ifb']);
    run('ip', [...ns, 'link', 'set', 'ifb0', 'up']);
    run('tc', [...ns, 'qdisc', 'add', 'dev', 'ifb0', 'root', 'tbf', 'rate', `${copyRateKbit}kbit`, 'burst', '1600', 'latency', '400ms']);
    run('tc', [...ns, 'filter', 'add', 'dev', 'eth0', 'parent', '1:', 'protocol', 'ip', 'prio', '3', 'u32', 'match', 'u16', '0x0001', mask, 'at', '4', 'action', 'mirred', 'egress', 'mirror', 'dev', 'ifb0']);
  }

  /** A slow link: everything `from` sends is limited to `rateKbit` (serialization and queueing delay). */
  slow(from: number, rateKbit: number): void {
    this.mark(from, 'rate');
    run('tc', ['-n', this.ns(from), 'class', 'change', 'dev', 'eth0', 'parent', '1:', 'classid', '1:1', 'htb', 'rate', `${rateKbit}kbit`, 'ceil', `${rateKbit}kbit`, 'burst', '1600', 'cburst', '1600']);
  }

  healAll(): void {
    for (let i = 1; i <= this.size; i++) this.heal(i);
  }

  /** Removes every namespace (and so every veth and bridge) and kills what runs inside. Idempotent. */
  tearDown(): void {
    if (this.closed) return;
    this.closed = true;
    for (const ns of [...this.namespaces, this.hub]) {
      killNamespacePids(ns);
      spawnSync('ip', ['netns', 'del', ns]);
    }
  }
}
