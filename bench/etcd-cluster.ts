/**
 * The anchor for failover and idle cost: a three-member etcd cluster on loopback, from
 * Debian's etcd-server (3.4), run with the same timings as raft-elector's defaults
 * (heartbeat 100 ms, election timeout 1000 ms) and pre-vote on. Leaders are read through
 * etcd's gRPC gateway (`POST /v3/maintenance/status`), which every member answers itself.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from '../test/integration/harness.js';

export const EtcdBin = process.env.ETCD_BIN ?? '/usr/bin/etcd';

export interface EtcdMember {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  child: ChildProcess | undefined;
}

export interface EtcdStatus {
  /** The member's own id and the leader it knows, as etcd's decimal uint64 strings. */
  memberId: string;
  leader: string;
  raftTerm: number;
}

/** The etcd version, or why the anchor cannot run (printed instead of a ratio). */
export function etcdVersion(): { version: string } | { missing: string } {
  const r = spawnSync(EtcdBin, ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return { missing: `${EtcdBin} is not installed (apt-get install etcd-server)` };
  const m = /etcd Version: (\S+)/.exec(r.stdout);
  return { version: m?.[1] ?? 'unknown' };
}

/**
 * One member's command line; `hosts[i]` is where member i listens for peers and clients
 * (loopback here, a namespace's address in the partition bench).
 */
export function etcdArgs(
  members: { name: string; clientPort: number; peerPort: number; dataDir: string }[],
  hosts: string[],
  index: number,
  state: 'new' | 'existing',
  timing: { heartbeatMs: number; electionMs: number },
  clientHost = hosts[index]!,
): string[] {
  const m = members[index]!;
  const host = hosts[index]!;
  const cluster = members.map((x, i) => `${x.name}=http://${hosts[i]!}:${x.peerPort}`).join(',');
  return [
    `--name=${m.name}`,
    `--data-dir=${m.dataDir}`,
    `--listen-client-urls=http://${clientHost}:${m.clientPort}`,
    `--advertise-client-urls=http://${clientHost}:${m.clientPort}`,
    `--listen-peer-urls=http://${host}:${m.peerPort}`,
    `--initial-advertise-peer-urls=http://${host}:${m.peerPort}`,
    `--initial-cluster=${cluster}`,
    `--initial-cluster-state=${state}`,
    '--initial-cluster-token=raft-elector-bench',
    `--heartbeat-interval=${timing.heartbeatMs}`,
    `--election-timeout=${timing.electionMs}`,
    '--pre-vote=true',
    '--logger=zap',
    '--log-level=error',
  ];
}

export class EtcdCluster {
  private readonly root = mkdtempSync(join(tmpdir(), 'raft-elector-etcd-'));
  private constructor(
    readonly members: EtcdMember[],
    private readonly timing: { heartbeatMs: number; electionMs: number },
  ) {}

  static async start(options: { size: number; heartbeatMs: number; electionMs: number }): Promise<EtcdCluster> {
    const members: EtcdMember[] = [];
    for (let i = 0; i < options.size; i++) {
      members.push({ name: `etcd-${i}`, clientPort: await freePort(), peerPort: await freePort(), dataDir: '', child: undefined });
    }
    const cluster = new EtcdCluster(members, { heartbeatMs: options.heartbeatMs, electionMs: options.electionMs });
    for (const m of members) {
      m.dataDir = join(cluster.root, m.name);
      cluster.spawn(m, 'new');
    }
    await cluster.agreedLeader(30_000);
    return cluster;
  }

  /** `existing` rejoins with the data dir it has. */
  spawn(m: EtcdMember, state: 'new' | 'existing' = 'existing'): ChildProcess {
    const hosts = this.members.map(() => '127.0.0.1');
    const args = etcdArgs(this.members, hosts, this.members.indexOf(m), state, this.timing);
    const child = spawn(EtcdBin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr?.resume();
    m.child = child;
    child.once('exit', () => {
      if (m.child === child) m.child = undefined;
    });
    return child;
  }

  member(name: string): EtcdMember {
    const m = this.members.find((x) => x.name === name);
    if (!m) throw new Error(`no etcd member ${name}`);
    return m;
  }

  running(): EtcdMember[] {
    return this.members.filter((m) => m.child !== undefined);
  }

  async status(name: string, timeoutMs = 500): Promise<EtcdStatus> {
    const m = this.member(name);
    const response = await fetch(`http://127.0.0.1:${m.clientPort}/v3/maintenance/status`, {
      method: 'POST',
      body: '{}',
      signal: AbortSignal.timeout(timeoutMs),
    });
    const body = (await response.json()) as { header?: { member_id?: string }; leader?: string; raftTerm?: string };
    return { memberId: body.header?.member_id ?? '', leader: body.leader ?? '0', raftTerm: Number(body.raftTerm ?? 0) };
  }

  /** The member name whose etcd id is `id`. */
  async nameOf(id: string): Promise<string | undefined> {
    for (const m of this.running()) {
      const s = await this.status(m.name).catch(() => undefined);
      if (s?.memberId === id) return m.name;
    }
    return undefined;
  }

  /** Every running member (or `among`) names the same leader; returns its name. */
  async agreedLeader(deadlineMs: number, among: string[] = this.running().map((m) => m.name)): Promise<{ name: string; id: string; term: number }> {
    return waitFor(`etcd members ${among.join(',')} to agree on a leader`, deadlineMs, async () => {
      const all = await Promise.all(among.map((n) => this.status(n).catch(() => undefined)));
      const first = all[0];
      if (!first || first.leader === '0' || !all.every((s) => s?.leader === first.leader)) return undefined;
      const name = await this.nameOf(first.leader);
      return name ? { name, id: first.leader, term: first.raftTerm } : undefined;
    }, 10);
  }

  async signal(name: string, signal: NodeJS.Signals): Promise<void> {
    const child = this.member(name).child;
    if (!child) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill(signal);
    await exited;
  }

  pids(): number[] {
    return this.running().map((m) => m.child!.pid!);
  }

  async stop(): Promise<void> {
    await Promise.all(this.running().map((m) => this.signal(m.name, 'SIGKILL')));
    rmSync(this.root, { recursive: true, force: true });
  }
}
