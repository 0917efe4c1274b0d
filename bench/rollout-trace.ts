/**
 * bench/rollout.ts's reading of what it measured: the leaderless gaps in the samples, and the
 * same gaps and each new pod's way to voter in the members' own log lines (one wall clock).
 */
import { performance } from 'node:perf_hooks';
import type { Incarnation } from '../test/e2e/group.js';
import type { Sample } from '../test/e2e/leader-sampler.js';

/** A leaderless gap: the last claim seen before it and the first after it. */
export type Span = { from: Sample; to: Sample };

/**
 * Leaderless time seen by a sampler in [fromMs, toMs]: each gap between two answered claims
 * (any member) in which the claim was seen to end: the next claim comes from another member or
 * term, or the claimant answered isLeader false in between. A gap in which nobody answered
 * (the sampler or a CPU-starved process stalled) shows nothing and is not counted.
 */
export function leaderlessMs(samples: readonly Sample[], fromMs: number, toMs: number): { totalMs: number; longestMs: number; gaps: number; spans: Span[] } {
  const inWindow = samples.filter((s) => s.receivedAt >= fromMs && s.receivedAt <= toMs).sort((a, b) => a.receivedAt - b.receivedAt);
  let totalMs = 0;
  let longestMs = 0;
  let gaps = 0;
  const spans: Span[] = [];
  let last: Sample | undefined;
  let ended = false;
  for (const s of inWindow) {
    if (!s.isLeader) {
      if (last && s.key === last.key && s.sentAt > last.receivedAt) ended = true;
      continue;
    }
    if (last && (ended || s.key !== last.key || s.term !== last.term)) {
      const d = s.receivedAt - last.receivedAt;
      totalMs += d;
      longestMs = Math.max(longestMs, d);
      gaps += 1;
      spans.push({ from: last, to: s });
    }
    last = s;
    ended = false;
  }
  return { totalMs, longestMs, gaps, spans };
}

/** One new pod's way from Running to voter, in ms (see joinSplit). */
export interface JoinSplit {
  /** Process spawned → the kubelet's Running (reported after the containers started). */
  spawnToRunning: number;
  spawnToUp: number;
  upToLinked: number;
  linkedToProposed: number;
  learnerCommit: number;
  learnerToPromote: number;
  promoteCommit: number;
  memberUpToVoter: number;
  runningToVoter: number;
  /** The whole way, independent of when the kubelet reports Running. */
  spawnToVoter: number;
}

/**
 * One leaderless gap traced through the two members' logs, in ms after the old claimant's last
 * claim the sampler saw: when it logged the end of its claim and the transfer, when the new
 * one logged becoming leader and its first claim, and when the sampler saw that claim.
 */
export function traceGap(incarnations: readonly Incarnation[], span: Span): string {
  const wall = (t: number) => performance.timeOrigin + t;
  const t0 = wall(span.from.receivedAt);
  const linesOf = (key: string) => {
    const inc = incarnations.find((i) => `${i.name}@${i.uid}` === key);
    return (inc?.process.lines ?? []).flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  };
  const near = (lines: Record<string, unknown>[], test: (l: Record<string, unknown>) => boolean) =>
    lines.filter((l) => typeof l.time === 'number' && (l.time as number) >= t0 - 3_000 && (l.time as number) <= wall(span.to.receivedAt) + 1_000 && test(l));
  const rel = (l: Record<string, unknown> | undefined) => (l === undefined ? '-' : `${((l.time as number) - t0).toFixed(0)}`);
  const oldLines = linesOf(span.from.key);
  const newLines = linesOf(span.to.key);
  const ended = near(oldLines, (l) => l.msg === 'no longer claiming leadership').at(-1);
  const transfer = near(oldLines, (l) => l.msg === 'transferring leadership').at(-1);
  const elected = near(newLines, (l) => typeof l.msg === 'string' && l.msg.startsWith('role Leader')).at(-1);
  const claimed = near(newLines, (l) => l.msg === 'claiming leadership (lease held)').at(-1);
  const forgot = near([...newLines, ...oldLines], (l) => typeof l.msg === 'string' && /forget|forgot/i.test(l.msg)).length;
  const sent = span.to.sentAt - span.from.receivedAt;
  return `gap ${(span.to.receivedAt - span.from.receivedAt).toFixed(0)} ms: transfer ${rel(transfer)}, old claim ended ${rel(ended)}, new leader ${rel(elected)}, its claim logged ${rel(claimed)}, ` +
    `first claim seen: asked ${sent.toFixed(0)}, answered ${(span.to.receivedAt - span.from.receivedAt).toFixed(0)} (ms after the last claim seen; ${span.from.key === span.to.key ? 'same member' : 'another member'}${forgot > 0 ? `, ${forgot} forget-leader lines` : ''})`;
}

/**
 * The same gap as the members themselves had it (their log lines, one wall clock): from the old
 * claimant's end of claim (its transfer began, or its claim ended, whichever is logged first) to
 * the new claimant's start of claim. Undefined when a line is missing.
 */
export function memberGapMs(incarnations: readonly Incarnation[], span: Span): number | undefined {
  const wall = (t: number) => performance.timeOrigin + t;
  const t0 = wall(span.from.receivedAt);
  const t1 = wall(span.to.receivedAt);
  const timesOf = (key: string, test: (msg: string) => boolean) => {
    const inc = incarnations.find((i) => `${i.name}@${i.uid}` === key);
    return (inc?.process.lines ?? []).flatMap((l) => {
      try {
        const j = JSON.parse(l) as { msg?: unknown; time?: unknown };
        return typeof j.msg === 'string' && typeof j.time === 'number' && test(j.msg) ? [j.time] : [];
      } catch {
        return [];
      }
    });
  };
  const ends = timesOf(span.from.key, (m) => m === 'transferring leadership' || m === 'no longer claiming leadership').filter((t) => t >= t0 - 1_000 && t <= t1);
  const starts = timesOf(span.to.key, (m) => m === 'claiming leadership (lease held)').filter((t) => t >= t0 - 1_000 && t <= t1 + 1_000);
  const end = ends.length > 0 ? Math.min(...ends) : undefined;
  const start = starts.filter((t) => end !== undefined && t >= end)[0];
  return end === undefined || start === undefined ? undefined : start - end;
}

/**
 * Where one new pod's Running → voter went, from the processes' own logs (wall clock, ms):
 * the kubelet's token request and spawn, Node's start-up until the member logs its start, the
 * leader's first link to it, the learner proposal and its commit, the promotion proposal and its
 * commit. Undefined when a step is missing (the pod did not become a voter this way).
 */
export function joinSplit(incarnations: readonly Incarnation[], uid: string, runningAt: number): JoinSplit | undefined {
  const inc = incarnations.find((i) => i.uid === uid);
  if (!inc) return undefined;
  const id = `${inc.name}@${uid}`;
  const parsed = (lines: readonly string[]) => lines.flatMap((l) => {
    try {
      return [JSON.parse(l) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
  const at = (lines: Record<string, unknown>[], test: (l: Record<string, unknown>) => boolean, after = -Infinity) =>
    lines.find((l) => typeof l.time === 'number' && l.time >= after && test(l))?.time as number | undefined;
  const proposes = (type: string) => (l: Record<string, unknown>) =>
    l.msg === 'proposing configuration change' && ((l.change as { changes?: { type: string; nodeId: string }[] } | undefined)?.changes ?? []).some((c) => c.type === type && c.nodeId === id);
  const memberUp = at(parsed(inc.process.lines), (l) => typeof l.msg === 'string' && l.msg.startsWith('member starting'));
  for (const other of incarnations) {
    if (other.uid === uid) continue;
    const lines = parsed(other.process.lines);
    const learnerProposed = at(lines, proposes('AddLearnerNode'));
    if (learnerProposed === undefined || memberUp === undefined) continue;
    // The leader's link to the new member that the proposal used: the last one up before it.
    const linked = lines.filter((l) => l.msg === 'peer connected' && l.peer === id && typeof l.time === 'number' && l.time <= learnerProposed).at(-1)?.time as number | undefined;
    const learner = at(lines, (l) => l.component === 'reconciler' && l.member === id && l.to === 'learner', learnerProposed);
    const promoteProposed = at(lines, proposes('AddNode'), learner ?? Infinity);
    const voter = at(lines, (l) => l.component === 'reconciler' && l.member === id && l.to === 'voter', promoteProposed ?? Infinity);
    if (linked === undefined || learner === undefined || promoteProposed === undefined || voter === undefined) return undefined;
    return {
      spawnToRunning: runningAt - inc.spawnedAtMs,
      spawnToUp: memberUp - inc.spawnedAtMs,
      upToLinked: linked - memberUp,
      linkedToProposed: learnerProposed - linked,
      learnerCommit: learner - learnerProposed,
      learnerToPromote: promoteProposed - learner,
      promoteCommit: voter - promoteProposed,
      memberUpToVoter: voter - memberUp,
      runningToVoter: voter - runningAt,
      spawnToVoter: voter - inc.spawnedAtMs,
    };
  }
  return undefined;
}

/** The log lines that explain who led when: role changes, claims, transfers, forgets, membership changes. */
const LeadershipLine = /^(role |claiming leadership|no longer claiming|transferring leadership|handed leadership|leader pod |membership: |stopping)/;

/**
 * For a rollout with more than one leaderless gap (a leader handed over twice): every member's
 * leadership lines from 3 s before the first gap to 1 s after the last, in time order, in ms
 * after the first gap's last claim, so the next occurrence explains itself without a kept dir.
 */
export function leadershipTimeline(incarnations: readonly Incarnation[], spans: readonly Span[]): string[] {
  const first = spans[0];
  const last = spans.at(-1);
  if (!first || !last || spans.length < 2) return [];
  const t0 = performance.timeOrigin + first.from.receivedAt;
  const t1 = performance.timeOrigin + last.to.receivedAt + 1_000;
  const rows: { time: number; text: string }[] = [];
  for (const inc of incarnations) {
    for (const line of inc.process.lines) {
      let l: Record<string, unknown>;
      try {
        l = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      const time = l.time;
      if (typeof time !== 'number' || time < t0 - 3_000 || time > t1 || typeof l.msg !== 'string' || !LeadershipLine.test(l.msg)) continue;
      const detail = ['to', 'reason', 'term', 'leader'].filter((k) => l[k] !== undefined).map((k) => `${k}=${JSON.stringify(l[k])}`).join(' ');
      rows.push({ time, text: `${(time - t0).toFixed(0).padStart(6)} ${inc.name}@${inc.uid.slice(0, 8)} ${l.msg.slice(0, 120)}${detail ? ` (${detail})` : ''}` });
    }
  }
  return rows.sort((a, b) => a.time - b.time).map((r) => r.text);
}
