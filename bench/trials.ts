/**
 * One failover trial, for raft-elector and for the etcd anchor, timed the same way: from the
 * signal to the leader until every survivor names the same new leader (and, for
 * raft-elector, until that leader answers isLeader). Each trial brings the member back and
 * lets the group settle before it returns, so trials can alternate between the two systems.
 */
import { performance } from 'node:perf_hooks';
import { waitFor, type ProcessCluster } from '../test/integration/harness.js';
import type { EtcdCluster } from './etcd-cluster.js';
import { monotonicUs } from './cpu-profile.js';
import { onCpuMs } from './proc.js';

export type FailoverSignal = 'SIGKILL' | 'SIGTERM';

export interface RaftElectorTrial {
  agreeMs: number;
  claimMs: number;
  survivorsCpuMs: number;
  /** For profiles: who ran, and when (monotonic µs) the signal went, the survivors agreed, the old leader exited. */
  survivorPids: number[];
  oldPid: number;
  signalUs: number;
  agreedUs: number;
  exitedUs: number;
}

export async function raftElectorTrial(
  cluster: ProcessCluster,
  signal: FailoverSignal,
  settleMs: number,
): Promise<RaftElectorTrial> {
  const old = await cluster.agreedLeader(15_000);
  const survivors = cluster.members.filter((m) => m.id !== old.self).map((m) => m.id);
  const survivorPids = survivors.map((id) => cluster.member(id).child!.pid!);
  const oldPid = cluster.member(old.self).child!.pid!;
  const cpu0 = sum(survivorPids.map(onCpuMs));
  const signalUs = monotonicUs();
  const t0 = performance.now();
  const exited = cluster.signal(old.self, signal);
  let agreeMs = 0;
  let agreedUs = 0;
  let survivorsCpuMs = 0;
  const claimMs = await waitFor('a new leader', 15_000, async () => {
    const answers = await Promise.all(survivors.map((id) => cluster.leader(id, 1_000).catch(() => undefined)));
    const first = answers[0];
    if (!first?.leader || first.leader === old.self) return undefined;
    if (!answers.every((a) => a?.leader === first.leader && a.term === first.term)) return undefined;
    if (agreeMs === 0) {
      agreeMs = performance.now() - t0;
      agreedUs = monotonicUs();
      survivorsCpuMs = sum(survivorPids.map(onCpuMs)) - cpu0;
    }
    return answers.find((a) => a?.self === first.leader)?.isLeader ? performance.now() - t0 : undefined;
  }, 5);
  await exited;
  const exitedUs = monotonicUs();
  // Bring the member back and let it pass its restart vote delay before the next trial.
  cluster.spawn(cluster.member(old.self));
  await cluster.agreedLeader(15_000, cluster.members.map((m) => m.id));
  await new Promise((r) => setTimeout(r, settleMs));
  return { agreeMs, claimMs, survivorsCpuMs, survivorPids, oldPid, signalUs, agreedUs, exitedUs };
}

export async function etcdTrial(cluster: EtcdCluster, signal: FailoverSignal, settleMs: number): Promise<{ agreeMs: number; survivorsCpuMs: number }> {
  const old = await cluster.agreedLeader(15_000);
  const survivors = cluster.running().filter((m) => m.name !== old.name);
  const survivorPids = survivors.map((m) => m.child!.pid!);
  const cpu0 = sum(survivorPids.map(onCpuMs));
  const t0 = performance.now();
  const exited = cluster.signal(old.name, signal);
  let survivorsCpuMs = 0;
  const agreeMs = await waitFor('a new etcd leader', 15_000, async () => {
    const all = await Promise.all(survivors.map((m) => cluster.status(m.name, 1_000).catch(() => undefined)));
    const first = all[0];
    if (!first || first.leader === '0' || first.leader === old.id) return undefined;
    if (!all.every((s) => s?.leader === first.leader)) return undefined;
    survivorsCpuMs = sum(survivorPids.map(onCpuMs)) - cpu0;
    return performance.now() - t0;
  }, 5);
  await exited;
  cluster.spawn(cluster.member(old.name));
  await cluster.agreedLeader(30_000, cluster.members.map((m) => m.name));
  await new Promise((r) => setTimeout(r, settleMs));
  return { agreeMs, survivorsCpuMs };
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}
