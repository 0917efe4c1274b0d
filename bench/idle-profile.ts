/**
 * `npm run bench:idle-profile`: where an idle member's CPU goes. Starts three members as the
 * bench runs them (`node --max-semi-space-size=1`, heartbeat 100 ms, election 1000 ms) with
 * `--cpu-prof`, waits for a settled leader, then over one window (BENCH_IDLE_MS, default 20 s)
 * counts each member's wake-ups (voluntary context switches of every thread, /proc) and CPU
 * time, stops the members and sums the profiles' self time inside that window only, by
 * function and by category. Diagnostic figures: the anchor is the leader against a follower
 * and the window's wall time, not another system.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessCluster } from '../test/integration/harness.js';
import { monotonicUs, printSummary, profilesByPid, readProfile, summarizeProfile } from './cpu-profile.js';
import { cpuSeconds } from './proc.js';

const windowMs = Number(process.env.BENCH_IDLE_MS ?? 20_000);
const topFunctions = Number(process.env.BENCH_TOP ?? 25);
/** BENCH_PROFILE=0: no profiler (it wakes the main thread ~900 times a second), for wake-up counts and CPU. */
const profiling = process.env.BENCH_PROFILE !== '0';
/** How long the settled group runs before the window: V8 keeps compiling hot functions for about a minute. */
const warmupMs = Number(process.env.BENCH_WARMUP_MS ?? 3_000);
/** BENCH_BIN: another build's cmd/raft-elector.js. */
const bin = process.env.BENCH_BIN;
/** BENCH_NODE_ARGS: extra node flags, comma-separated (a V8 flag's effect on each thread). */
const extraNodeArgs = process.env.BENCH_NODE_ARGS ? process.env.BENCH_NODE_ARGS.split(',') : [];

/** Per thread name: voluntary context switches (each one a sleep the thread woke from) and user/system CPU seconds. */
function threadStats(pid: number): Map<string, { wakeups: number; userS: number; systemS: number }> {
  const out = new Map<string, { wakeups: number; userS: number; systemS: number }>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const name = tid === String(pid) ? 'main' : (/Name:\s+(.*)/.exec(status)?.[1] ?? tid);
      const prev = out.get(name) ?? { wakeups: 0, userS: 0, systemS: 0 };
      out.set(name, {
        wakeups: prev.wakeups + Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0),
        userS: prev.userS + Number(fields[11]) / 100,
        systemS: prev.systemS + Number(fields[12]) / 100,
      });
    } catch {
      // the thread ended between readdir and read
    }
  }
  return out;
}

async function main(): Promise<void> {
  // BENCH_PROFILE_DIR keeps the .cpuprofile files there (open them in Chrome's DevTools).
  const profDir = process.env.BENCH_PROFILE_DIR ?? mkdtempSync(join(tmpdir(), 'raft-elector-prof-'));
  console.log(`idle profile: 3 members, heartbeat 100 ms, election 1000 ms, window ${windowMs / 1000} s after ${warmupMs / 1000} s settled${bin ? `, build ${bin}` : ''}${extraNodeArgs.length ? `, node ${extraNodeArgs.join(' ')}` : ''}; load average at the start: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const profilerArgs = profiling ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
  const cluster = await ProcessCluster.start({ size: 3, nodeArgs: ['--max-semi-space-size=1', ...extraNodeArgs, ...profilerArgs], ...(bin ? { bin } : {}) });
  let window: { fromUs: number; toUs: number } | undefined;
  const pidToId = new Map<number, string>();
  let leaderId = '';
  try {
    leaderId = (await cluster.agreedLeader(30_000)).self;
    await new Promise((r) => setTimeout(r, warmupMs));
    const pids = cluster.members.map((m) => m.child!.pid!);
    cluster.members.forEach((m) => pidToId.set(m.child!.pid!, m.id));
    const stats0 = pids.map(threadStats);
    const cpu0 = pids.map((p) => cpuSeconds(p));
    const fromUs = monotonicUs();
    await new Promise((r) => setTimeout(r, windowMs));
    const toUs = monotonicUs();
    window = { fromUs, toUs };
    const seconds = (toUs - fromUs) / 1e6;
    pids.forEach((pid, i) => {
      const id = pidToId.get(pid)!;
      const threads = [...threadStats(pid).entries()]
        .map(([name, t]) => {
          const t0 = stats0[i]!.get(name) ?? { wakeups: 0, userS: 0, systemS: 0 };
          return { name, wakeups: (t.wakeups - t0.wakeups) / seconds, user: ((t.userS - t0.userS) / seconds) * 100, system: ((t.systemS - t0.systemS) / seconds) * 100 };
        })
        .filter((t) => t.wakeups > 0.05 || t.user + t.system > 0)
        .sort((a, b) => b.wakeups - a.wakeups || (a.name < b.name ? -1 : 1));
      const cpu = ((cpuSeconds(pid) - cpu0[i]!) / seconds) * 100;
      console.log(`${id}${id === leaderId ? ' (leader)' : ''}: CPU ${cpu.toFixed(2)} % of a core${profiling ? ' (with the profiler)' : ''}`);
      for (const t of threads) console.log(`  ${t.name}: ${t.wakeups.toFixed(1)} wake-ups/s, user ${t.user.toFixed(2)} %, system ${t.system.toFixed(2)} %`);
    });
  } finally {
    // SIGINT: the member stops without a handover, and the profiler writes its file on exit.
    await Promise.all(cluster.members.map((m) => cluster.signal(m.id, 'SIGINT')));
  }
  await cluster.stop();
  if (!window) return;
  for (const [pid, files] of profilesByPid(profDir)) {
    const id = pidToId.get(pid) ?? String(pid);
    for (const file of files) printSummary(`${id}${id === leaderId ? ' (leader)' : ''}`, summarizeProfile(readProfile(file), [window]), topFunctions);
  }
  if (!process.env.BENCH_PROFILE_DIR) rmSync(profDir, { recursive: true, force: true });
  console.log(`\nload average at the end: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
