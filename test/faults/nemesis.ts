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

/**
 * Membership changes (in-cluster runs), each made during a fault's hold: a pod deleted (the
 * leader's or a follower's; the slot stays empty), recreated under its name (a StatefulSet pod:
 * new UID, fresh disk), or a new pod in an empty slot (a Deployment scaling up).
 */
export const MemberActionKinds = ['delete-leader', 'delete-follower', 'recreate-leader', 'recreate-follower', 'add'] as const;
export type MemberActionKind = (typeof MemberActionKinds)[number];

export interface MemberAction {
  kind: MemberActionKind;
  /** Into the step's hold. */
  delayMs: number;
  /** Between the pod showing deleting and its container's SIGTERM (a preStop hook). */
  preStopMs: number;
  /** Picks the follower or the empty slot, in [0, 1). */
  pick: number;
}

export interface Step {
  kind: NemesisKind;
  holdMs: number;
  restMs: number;
  /** A permutation of member indexes 1..size, for splits and random picks. */
  order: number[];
  /** Kind-specific: loss/duplication bits, or a rate in kbit/s. */
  param: number;
  /** In-cluster runs: the membership change made while the fault holds. */
  member?: MemberAction;
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
  /** Add a membership change to most steps (draws more from the seed, so schedules differ from fixed-membership ones). */
  membership?: boolean;
  /** Only these membership changes, on every step, with this preStop (the broken-build run). */
  memberKinds?: readonly MemberActionKind[];
  memberPreStopMs?: number;
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
    if (o.membership && (rand() < 0.75 || o.memberKinds)) {
      const kind = pick(o.memberKinds ?? MemberActionKinds);
      const delayMs = between(0, step.holdMs / 2);
      const preStopMs = rand() < 0.5 ? 0 : between(0.2 * et, 2 * et);
      step.member = { kind, delayMs, preStopMs: o.memberPreStopMs ?? preStopMs, pick: rand() };
    }
    if (steps.length > 0 && used + step.holdMs + step.restMs > o.budgetMs) break;
    steps.push(step);
    used += step.holdMs + step.restMs;
  }
  return steps;
}

export function describeStep(s: Step): string {
  const p = s.kind === 'lossy' ? ` 1/${1 << s.param}` : s.kind === 'duplicate-reorder' ? ` 1/${1 << s.param}` : s.kind === 'slow-link' ? ` ${s.param}kbit` : '';
  const m = s.member ? ` + ${s.member.kind} at ${s.member.delayMs} ms${s.member.preStopMs ? ` preStop ${s.member.preStopMs} ms` : ''}` : '';
  return `${s.kind}${p} hold ${s.holdMs} ms rest ${s.restMs} ms order ${s.order.join('')}${m}`;
}

/** Pods a delete leaves at least: below it the change becomes an add. */
const MinPods = 2;

/**
 * Makes the step's membership change: resolves "the leader" and the follower or empty slot
 * now, deletes and creates pods through the test API server, and returns what it did.
 */
export async function applyMemberAction(c: NsCluster, a: MemberAction, generation: () => number): Promise<string> {
  const withPod = c.members.filter((m) => m.pod !== undefined);
  const empty = c.members.filter((m) => m.pod === undefined && m.child === undefined);
  const leader = c.currentLeader() ?? c.namedLeader();
  let kind = a.kind;
  const deletes = kind !== 'add' && !kind.startsWith('recreate');
  if (deletes && withPod.length <= MinPods) kind = 'add';
  if (kind === 'add' && empty.length === 0) kind = 'recreate-follower';
  const byLeader = kind.endsWith('leader');
  const followers = withPod.filter((m) => m !== leader);
  const target = byLeader ? (leader?.pod ? leader : undefined) : followers[Math.floor(a.pick * followers.length)];
  if (kind === 'add') {
    const slot = empty[Math.floor(a.pick * empty.length)]!;
    const name = `${slot.id}-${generation()}`;
    c.addPod(slot, name);
    return `add pod ${name} in ${slot.id}`;
  }
  if (!target?.pod) return `${kind}: no target (no member is named leader now)`;
  if (!c.canLose(target)) {
    if (empty.length > 0) {
      const slot = empty[Math.floor(a.pick * empty.length)]!;
      const name = `${slot.id}-${generation()}`;
      c.addPod(slot, name);
      return `${kind} of ${target.pod.name} would leave no quorum to remove it (see canLose): add pod ${name} in ${slot.id} instead`;
    }
    return `${kind} of ${target.pod.name} skipped: it would leave no quorum to remove it (see canLose)`;
  }
  const was = `${target.pod.name}@${target.pod.uid.slice(0, 8)}`;
  await c.deletePod(target, a.preStopMs);
  if (kind.startsWith('recreate')) {
    const name = was.split('@')[0]!;
    c.addPod(target, name);
    return `${kind}: ${was} deleted (preStop ${a.preStopMs} ms), recreated as ${name}@${target.pod!.uid.slice(0, 8)}`;
  }
  return `${kind}: ${was} deleted (preStop ${a.preStopMs} ms), slot ${target.id} empty`;
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
      const pod = victim.pod;
      await c.kill(victim);
      if (c.kube && pod && s.kind === 'kill-wipe' && c.canLose(victim)) {
        // In-cluster a disk is lost only with its pod: the pod goes, and comes back under its name with a new UID.
        await c.deletePod(victim, 0);
        return {
          detail: `SIGKILL ${victim.id} (${pod.name}), pod deleted, recreated on a fresh disk after the hold`,
          heal: async () => {
            if (!victim.pod && !victim.child) c.addPod(victim, pod.name);
          },
        };
      }
      return {
        detail: `SIGKILL ${victim.id}${s.kind === 'kill-wipe' ? (c.kube ? ', restart in the same pod (losing it would leave no quorum)' : ', restart with an empty data dir') : ''}`,
        // The same pod only: a membership change may have deleted it meanwhile.
        heal: async () => {
          if (victim.pod?.uid === pod?.uid) c.restart(victim, s.kind === 'kill-wipe' && !c.kube);
        },
      };
    }
    case 'pause-leader':
      c.pause(leader);
      return { detail: `SIGSTOP ${leader.id}`, heal: async () => c.resume(leader) };
  }
}
