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

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

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

/** Which part of the process a frame belongs to, from its script URL. */
function category(frame: ProfileNode['callFrame']): string {
  const { url, functionName } = frame;
  if (url === '') {
    if (functionName.startsWith('(')) return functionName;
    return '(native)';
  }
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  if (pkg) return pkg;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const own = /dist\/([^/]+)\//.exec(url)?.[1];
  return own ? `ours:${own}` : url;
}

/** Self time (ms) by function and by category of the samples between fromUs and toUs (monotonic). */
function summarize(profile: CpuProfile, fromUs: number, toUs: number): { byFunction: Map<string, number>; byCategory: Map<string, number>; totalMs: number } {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const byFunction = new Map<string, number>();
  const byCategory = new Map<string, number>();
  let t = profile.startTime;
  let totalMs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0;
    t += delta;
    if (t < fromUs || t > toUs) continue;
    const node = nodes.get(profile.samples[i]!)!;
    const f = node.callFrame;
    const where = f.url ? `${f.url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${f.lineNumber + 1}` : '';
    const fn = `${f.functionName || '(anonymous)'} ${where}`.trim();
    const ms = delta / 1000;
    totalMs += ms;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + ms);
    const cat = category(f);
    byCategory.set(cat, (byCategory.get(cat) ?? 0) + ms);
  }
  return { byFunction, byCategory, totalMs };
}

function top(map: Map<string, number>, n: number): [string, number][] {
  return [...map.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, n);
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
    const fromUs = Number(process.hrtime.bigint() / 1000n);
    await new Promise((r) => setTimeout(r, windowMs));
    const toUs = Number(process.hrtime.bigint() / 1000n);
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
  const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
  for (const file of files.sort()) {
    // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile
    const pid = Number(/^CPU\.\d+\.\d+\.(\d+)\./.exec(file)?.[1]);
    const id = pidToId.get(pid) ?? file;
    const s = summarize(JSON.parse(readFileSync(join(profDir, file), 'utf8')) as CpuProfile, window.fromUs, window.toUs);
    const busy = s.totalMs - (s.byCategory.get('(idle)') ?? 0);
    console.log(`\n== ${id}${id === leaderId ? ' (leader)' : ''}: ${busy.toFixed(0)} ms busy of ${s.totalMs.toFixed(0)} ms sampled`);
    console.log('by category (self ms, % of busy):');
    for (const [cat, ms] of top(s.byCategory, 20)) if (cat !== '(idle)') console.log(`  ${ms.toFixed(1).padStart(8)}  ${((ms / busy) * 100).toFixed(1).padStart(5)} %  ${cat}`);
    console.log(`top ${topFunctions} functions (self ms):`);
    for (const [fn, ms] of top(s.byFunction, topFunctions + 1)) if (!fn.startsWith('(idle)')) console.log(`  ${ms.toFixed(1).padStart(8)}  ${fn}`);
  }
  if (!process.env.BENCH_PROFILE_DIR) rmSync(profDir, { recursive: true, force: true });
  console.log(`\nload average at the end: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
