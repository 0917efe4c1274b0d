import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { LeaderBody } from '../../api/server.js';
import { LinkProxy } from './proxy.js';

/** The repository root, from source (test/integration) or from the build (dist/test/integration). */
function repoRoot(): string {
  let dir = import.meta.dirname;
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('package.json not found above the harness');
    dir = parent;
  }
  return dir;
}

export const ElectorBin = resolve(repoRoot(), 'dist/cmd/raft-elector.js');

/** What GET /leader answers: the API's own type, so the tests read what the server writes. */
export type LeaderAnswer = LeaderBody;

export interface ClusterOptions {
  size: number;
  tickMs?: number;
  electionTicks?: number;
  /** Extra flags for every member. */
  args?: string[];
  /** Route every peer link through a LinkProxy so tests can partition members. */
  proxied?: boolean;
  /** With proxied: builds the relay for the link `from` dials to reach `to` (default a LinkProxy). */
  relay?: (from: string, to: string, targetPort: number) => Relay;
  /** Node.js flags before the entry point (the image runs with --max-semi-space-size=1). */
  nodeArgs?: string[];
  /** Another build's entry point (default this checkout's dist/cmd/raft-elector.js): benches compare builds with it. */
  bin?: string;
}

export interface ProcessMember {
  id: string;
  peerPort: number;
  httpPort: number;
  dataDir: string;
  child: ChildProcess | undefined;
  /** Every stdout/stderr line of every life of this member (bounded). */
  lines: string[];
  exits: { code: number | null; signal: NodeJS.Signals | null }[];
}

const MaxLinesPerMember = 20_000;

/**
 * Under vitest, ports come from a slice of 20000–31999 per worker (16 slices: vitest's
 * default workers follow the cores, so only a machine of 17 or more shares one), below Linux's ephemeral range
 * (32768–60999): a port the OS picked for us and we freed could be handed to another worker's
 * outgoing connection, or its own port-0 listener, before the member we spawn binds it.
 */
const PortSliceBase = 20_000;
const PortSliceSize = 750;
const PortSlices = 16;
const workerSlice = (() => {
  const id = Number(process.env.VITEST_POOL_ID ?? process.env.VITEST_WORKER_ID);
  return Number.isInteger(id) && id > 0 ? (id - 1) % PortSlices : null;
})();
let nextPortInSlice = 0;

function tryListen(port: number): Promise<number | null> {
  return new Promise((resolvePort) => {
    const server = createServer();
    server.once('error', () => resolvePort(null));
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolvePort(address && typeof address === 'object' ? address.port : null));
    });
  });
}

export async function freePort(): Promise<number> {
  if (workerSlice !== null) {
    for (let tries = 0; tries < PortSliceSize; tries++) {
      const port = PortSliceBase + workerSlice * PortSliceSize + (nextPortInSlice++ % PortSliceSize);
      if ((await tryListen(port)) !== null) return port;
    }
  }
  const port = await tryListen(0);
  if (port === null) throw new Error('no free port on 127.0.0.1');
  return port;
}

/** Polls `probe` until it returns a value other than undefined, or fails naming `what` at the deadline. */
export async function waitFor<T>(what: string, deadlineMs: number, probe: () => Promise<T | undefined> | T | undefined, everyMs = 20): Promise<T> {
  const until = Date.now() + deadlineMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) {
      throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** What a proxied link goes through: LinkProxy, or a test's own relay. */
export interface Relay {
  port: number;
  start(): Promise<void>;
  cut(): void;
  heal(): void;
  close(): Promise<void>;
}

/** Real raft-elector processes on 127.0.0.1, each with its own data dir. */
export class ProcessCluster {
  readonly members: ProcessMember[] = [];
  readonly dir: string;
  readonly secretFile: string;
  readonly tickMs: number;
  readonly electionTicks: number;
  private readonly args: string[];
  private readonly nodeArgs: string[];
  private readonly bin: string;
  /** `from->to` → the proxy `from` dials to reach `to`. */
  private readonly proxies = new Map<string, Relay>();

  private constructor(options: ClusterOptions) {
    this.dir = mkdtempSync(join(tmpdir(), 'raft-elector-it-'));
    this.secretFile = join(this.dir, 'secret');
    writeFileSync(this.secretFile, randomBytes(32).toString('hex'), { mode: 0o600 });
    this.tickMs = options.tickMs ?? 100;
    this.electionTicks = options.electionTicks ?? 10;
    this.args = options.args ?? [];
    this.nodeArgs = options.nodeArgs ?? [];
    this.bin = options.bin ?? ElectorBin;
  }

  static async start(options: ClusterOptions): Promise<ProcessCluster> {
    const cluster = new ProcessCluster(options);
    for (let i = 1; i <= options.size; i++) {
      cluster.members.push({
        id: `m${i}`,
        peerPort: await freePort(),
        httpPort: await freePort(),
        dataDir: join(cluster.dir, `m${i}`),
        child: undefined,
        lines: [],
        exits: [],
      });
    }
    if (options.proxied) {
      for (const from of cluster.members) {
        for (const to of cluster.members) {
          if (from === to) continue;
          const proxy = options.relay?.(from.id, to.id, to.peerPort) ?? new LinkProxy(to.peerPort);
          await proxy.start();
          cluster.proxies.set(`${from.id}->${to.id}`, proxy);
        }
      }
    }
    for (const m of cluster.members) cluster.spawn(m);
    return cluster;
  }

  /** The voter list as `from` sees it: through the proxies when the cluster is proxied. */
  peersFor(from: ProcessMember): string {
    return this.members
      .map((m) => {
        const proxy = this.proxies.get(`${from.id}->${m.id}`);
        return `${m.id}=127.0.0.1:${proxy ? proxy.port : m.peerPort}`;
      })
      .join(',');
  }

  /** Cuts every link between `id` and the others (both directions), or heals them. */
  isolate(id: string, cut = true): void {
    if (this.proxies.size === 0) throw new Error('isolate needs a proxied cluster');
    for (const [key, proxy] of this.proxies) {
      const [from, to] = key.split('->');
      if (from !== id && to !== id) continue;
      if (cut) proxy.cut();
      else proxy.heal();
    }
  }

  member(id: string): ProcessMember {
    const m = this.members.find((x) => x.id === id);
    if (!m) throw new Error(`no member ${id}`);
    return m;
  }

  argsFor(m: ProcessMember, overrides: string[] = []): string[] {
    return [
      '--id', m.id,
      '--peers', this.peersFor(m),
      '--listen', `127.0.0.1:${m.peerPort}`,
      '--http', `127.0.0.1:${m.httpPort}`,
      '--data-dir', m.dataDir,
      '--secret-file', this.secretFile,
      '--tick-ms', String(this.tickMs),
      '--election-ticks', String(this.electionTicks),
      ...this.args,
      ...overrides,
    ];
  }

  spawn(m: ProcessMember, overrides: string[] = []): ChildProcess {
    if (m.child) throw new Error(`${m.id} is already running`);
    const child = spawn(process.execPath, [...this.nodeArgs, this.bin, ...this.argsFor(m, overrides)], { stdio: ['ignore', 'pipe', 'pipe'] });
    m.child = child;
    const collect = (chunk: Buffer): void => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() === '') continue;
        m.lines.push(line);
        if (m.lines.length > MaxLinesPerMember) m.lines.shift();
      }
    };
    let pendingOut = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      const text = pendingOut + chunk.toString('utf8');
      const cut = text.lastIndexOf('\n');
      pendingOut = text.slice(cut + 1);
      collect(Buffer.from(text.slice(0, cut + 1)));
    });
    child.stderr!.on('data', collect);
    child.on('exit', (code, signal) => {
      if (pendingOut) collect(Buffer.from(pendingOut));
      m.exits.push({ code, signal });
      if (m.child === child) m.child = undefined;
    });
    return child;
  }

  /** Sends a signal and, for SIGKILL/SIGTERM, waits for the exit. */
  async signal(id: string, signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null } | undefined> {
    const m = this.member(id);
    const child = m.child;
    if (!child) return undefined;
    if (signal === 'SIGSTOP' || signal === 'SIGCONT') {
      child.kill(signal);
      return undefined;
    }
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
      child.once('exit', (code, sig) => r({ code, signal: sig })),
    );
    child.kill(signal);
    return exited;
  }

  async leader(id: string, timeoutMs = 500): Promise<LeaderAnswer> {
    const res = await fetch(`http://127.0.0.1:${this.member(id).httpPort}/leader`, { signal: AbortSignal.timeout(timeoutMs) });
    return (await res.json()) as LeaderAnswer;
  }

  running(): ProcessMember[] {
    return this.members.filter((m) => m.child !== undefined);
  }

  /** Every running member answers, all name the same leader in the same term, and that leader claims isLeader. */
  async agreedLeader(deadlineMs: number, among: string[] = this.running().map((m) => m.id)): Promise<LeaderAnswer> {
    try {
      return await waitFor(`members ${among.join(',')} to agree on a leader`, deadlineMs, async () => {
        const answers = await Promise.all(among.map((id) => this.leader(id)));
        const first = answers[0];
        if (!first?.leader) return undefined;
        if (!answers.every((a) => a.leader === first.leader && a.term === first.term)) return undefined;
        const holder = answers.find((a) => a.self === first.leader);
        return holder?.isLeader ? holder : undefined;
      });
    } catch (err) {
      // Name what each member did: an exit, or its last line, says more than "fetch failed".
      const detail = among.map((id) => {
        const m = this.member(id);
        const exit = m.exits.at(-1);
        return `${id}: ${exit ? `exited (code ${exit.code}, signal ${exit.signal})` : 'running'}, last line ${JSON.stringify(m.lines.at(-1)?.slice(0, 300) ?? null)}`;
      });
      throw new Error(`${(err as Error).message}\n${detail.join('\n')}`, { cause: err });
    }
  }

  /** JSON log lines of a member with a given msg. */
  logs(id: string, msg: string): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const line of this.member(id).lines) {
      if (!line.includes(msg)) continue;
      try {
        const parsed = JSON.parse(line) as Record<string, unknown>;
        if (parsed.msg === msg) out.push(parsed);
      } catch {
        // stderr text, not a log line
      }
    }
    return out;
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.members.map(async (m) => {
        if (!m.child) return;
        m.child.kill('SIGCONT');
        await this.signal(m.id, 'SIGKILL');
      }),
    );
    await Promise.all([...this.proxies.values()].map((p) => p.close()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
