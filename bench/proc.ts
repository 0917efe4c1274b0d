/** What /proc says of a process: resident memory and CPU time (Linux only). */
import { readdirSync, readFileSync } from 'node:fs';

export function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

/** User plus system CPU time in seconds (fields 14 and 15 of /proc/<pid>/stat, in clock ticks). */
export function cpuSeconds(pid: number, clockTicksPerSecond = 100): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces; fields after it start past the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond;
}

/**
 * On-CPU time of every thread of a process, in ms, from /proc/<pid>/task/<tid>/schedstat
 * (nanoseconds, not clock ticks: fine enough for a window of a few ms). Time spent waiting
 * for a CPU or for the disk is not in it, so it reads the same on a busy or a quiet machine.
 * A thread that exited within the window takes its time with it: compare windows in which
 * the process only lives.
 */
export function onCpuMs(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return ns / 1e6;
}

/** Median RSS and mean CPU share (percent of one core) of each process over a window. */
export async function idleCost(pids: number[], windowMs: number, sampleEveryMs = 500): Promise<{ rssMb: number; cpuPercent: number }[]> {
  const cpu0 = pids.map((p) => cpuSeconds(p));
  const t0 = performance.now();
  const samples: number[][] = pids.map(() => []);
  while (performance.now() - t0 < windowMs) {
    pids.forEach((pid, i) => samples[i]!.push(rssMb(pid)));
    await new Promise((r) => setTimeout(r, sampleEveryMs));
  }
  const elapsedS = (performance.now() - t0) / 1000;
  return pids.map((pid, i) => {
    const s = samples[i]!.sort((a, b) => a - b);
    return { rssMb: s[Math.floor(s.length / 2)]!, cpuPercent: ((cpuSeconds(pid) - cpu0[i]!) / elapsedS) * 100 };
  });
}
