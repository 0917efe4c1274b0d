/** Reading V8 `.cpuprofile` files (`node --cpu-prof`): self time inside chosen windows, by function and by category. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** A span of the profiled process's monotonic clock, in µs (`process.hrtime.bigint() / 1000n` in any process). */
export interface WindowUs {
  fromUs: number;
  toUs: number;
}

export interface ProfileSummary {
  byFunction: Map<string, number>;
  byCategory: Map<string, number>;
  totalMs: number;
}

/** The monotonic clock in µs, the one the profiles' timestamps use. */
export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/** Which part of the process a frame belongs to, from its script URL. */
export function category(frame: ProfileNode['callFrame']): string {
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

/** Adds the self time (ms) of the samples inside any of the windows to `into`. */
export function summarizeProfile(profile: CpuProfile, windows: WindowUs[], into: ProfileSummary = emptySummary()): ProfileSummary {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0;
    t += delta;
    if (!windows.some((w) => t >= w.fromUs && t <= w.toUs)) continue;
    const node = nodes.get(profile.samples[i]!)!;
    const f = node.callFrame;
    const where = f.url ? `${f.url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${f.lineNumber + 1}` : '';
    const fn = `${f.functionName || '(anonymous)'} ${where}`.trim();
    const ms = delta / 1000;
    into.totalMs += ms;
    into.byFunction.set(fn, (into.byFunction.get(fn) ?? 0) + ms);
    const cat = category(f);
    into.byCategory.set(cat, (into.byCategory.get(cat) ?? 0) + ms);
  }
  return into;
}

export function emptySummary(): ProfileSummary {
  return { byFunction: new Map(), byCategory: new Map(), totalMs: 0 };
}

export function top(map: Map<string, number>, n: number): [string, number][] {
  return [...map.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, n);
}

/** The profiles in a directory, by the pid in their file name (CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile). */
export function profilesByPid(dir: string): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort()) {
    const pid = Number(/^CPU\.\d+\.\d+\.(\d+)\./.exec(file)?.[1]);
    out.set(pid, [...(out.get(pid) ?? []), join(dir, file)]);
  }
  return out;
}

export function readProfile(file: string): CpuProfile {
  return JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
}

/** Prints busy time by category and the top functions (self ms) of a summary. */
export function printSummary(title: string, s: ProfileSummary, topFunctions: number): void {
  const busy = s.totalMs - (s.byCategory.get('(idle)') ?? 0);
  console.log(`\n== ${title}: ${busy.toFixed(0)} ms busy of ${s.totalMs.toFixed(0)} ms sampled`);
  console.log('by category (self ms, % of busy):');
  for (const [cat, ms] of top(s.byCategory, 20)) if (cat !== '(idle)') console.log(`  ${ms.toFixed(1).padStart(8)}  ${((ms / busy) * 100).toFixed(1).padStart(5)} %  ${cat}`);
  console.log(`top ${topFunctions} functions (self ms):`);
  for (const [fn, ms] of top(s.byFunction, topFunctions + 1)) if (!fn.startsWith('(idle)')) console.log(`  ${ms.toFixed(1).padStart(8)}  ${fn}`);
}
