/**
 * Nemeses and the seeded schedule that picks them. The schedule (kinds, durations, sides,
 * rates) comes from the seed alone and is printed; targets named "the leader" are resolved
 * when the step runs, as Jepsen does.
 */
import type { NsCluster } from './cluster.js';

export const NemesisKinds = [
  'partition-leader',
  'partition-halves',
  'one-way-leader-out',
  'one-way-leader-in',
  'bridge',
  'lossy',
  'duplicate-reorder',
  'slow-link',
  'kill-leader',
  'kill-random',
  'kill-wipe',
  'pause-leader',
] as const;
export type NemesisKind = (typeof NemesisKinds)[number];

export interface Step {
  kind: NemesisKind;
  holdMs: number;
  restMs: number;
  /** A permutation of member indexes 1..size, for splits and random picks. */
  order: number[];
  /** Kind-specific: loss/duplication bits, or a rate in kbit/s. */
  param: number;
}

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface ScheduleOptions {
  seed: number;
  size: number;
  /** Total time of the faulty part; steps are added while they fit. */
  budgetMs: number;
  electionTimeoutMs: number;
  kinds?: readonly NemesisKind[];
}

export function schedule(o: ScheduleOptions): Step[] {
  const rand = prng(o.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const between = (lo: number, hi: number): number => Math.round(lo + rand() * (hi - lo));
  const kinds = o.kinds ?? NemesisKinds;
  const et = o.electionTimeoutMs;
  const steps: Step[] = [];
  let used = 0;
  for (;;) {
    const kind = pick(kinds);
    const order = Array.from({ length: o.size }, (_, i) => i + 1);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const param =
      kind === 'lossy' ? between(2, 4) : kind === 'duplicate-reorder' ? between(1, 3) : kind === 'slow-link' ? between(16, 64) : 0;
    // Long enough for an election (and for a pause, beyond the lease); rests let the group settle.
    const step: Step = { kind, holdMs: between(1.5 * et, 4 * et), restMs: between(1 * et, 2.5 * et), order, param };
    if (steps.length > 0 && used + step.holdMs + step.restMs > o.budgetMs) break;
    steps.push(step);
    used += step.holdMs + step.restMs;
  }
  return steps;
}

export function describeStep(s: Step): string {
  const p = s.kind === 'lossy' ? ` 1/${1 << s.param}` : s.kind === 'duplicate-reorder' ? ` 1/${1 << s.param}` : s.kind === 'slow-link' ? ` ${s.param}kbit` : '';
  return `${s.kind}${p} hold ${s.holdMs} ms rest ${s.restMs} ms order ${s.order.join('')}`;
}

/** Injects the step's fault; returns what it did (for the log) and how to heal it. */
export async function inject(c: NsCluster, s: Step): Promise<{ detail: string; heal: () => Promise<void> }> {
  const net = c.net;
  const all = c.members.map((m) => m.index);
  const leader = c.currentLeader() ?? c.member(`m${s.order[0]!}`);
  const others = all.filter((i) => i !== leader.index);
  const healNet = async (): Promise<void> => net.healAll();
  const cut = (a: number[], b: number[]): void => {
    for (const x of a) for (const y of b) {
      net.drop(x, y);
      net.drop(y, x);
    }
  };
  switch (s.kind) {
    case 'partition-leader':
      cut([leader.index], others);
      return { detail: `${leader.id} | rest`, heal: healNet };
    case 'partition-halves': {
      const k = Math.floor(s.order.length / 2);
      const a = s.order.slice(0, k);
      const b = s.order.slice(k);
      cut(a, b);
      return { detail: `${a.map((i) => `m${i}`).join(',')} | ${b.map((i) => `m${i}`).join(',')}`, heal: healNet };
    }
    case 'one-way-leader-out':
      for (const o of others) net.drop(leader.index, o);
      return { detail: `${leader.id} -> rest dropped`, heal: healNet };
    case 'one-way-leader-in':
      for (const o of others) net.drop(o, leader.index);
      return { detail: `rest -> ${leader.id} dropped`, heal: healNet };
    case 'bridge': {
      // One member sees both sides; the sides do not see each other.
      const [bridge, ...rest] = s.order;
      const k = Math.floor(rest.length / 2);
      const a = rest.slice(0, k);
      const b = rest.slice(k);
      cut(a, b);
      return { detail: `m${bridge} bridges ${a.map((i) => `m${i}`).join(',')} | ${b.map((i) => `m${i}`).join(',')}`, heal: healNet };
    }
    case 'lossy':
      for (const i of all) net.lossy(i, s.param);
      return { detail: `every member drops 1/${1 << s.param} of its packets`, heal: healNet };
    case 'duplicate-reorder':
      for (const i of all) net.duplicate(i, s.param, 64);
      return { detail: `every member duplicates 1/${1 << s.param} of its packets, copies late`, heal: healNet };
    case 'slow-link':
      net.slow(leader.index, s.param);
      return { detail: `${leader.id} sends at ${s.param} kbit/s`, heal: healNet };
    case 'kill-leader':
    case 'kill-random':
    case 'kill-wipe': {
      const victim = s.kind === 'kill-leader' ? leader : c.member(`m${s.order[0]!}`);
      await c.kill(victim);
      return {
        detail: `SIGKILL ${victim.id}${s.kind === 'kill-wipe' ? ', restart with an empty data dir' : ''}`,
        heal: async () => c.restart(victim, s.kind === 'kill-wipe'),
      };
    }
    case 'pause-leader':
      c.pause(leader);
      return { detail: `SIGSTOP ${leader.id}`, heal: async () => c.resume(leader) };
  }
}
