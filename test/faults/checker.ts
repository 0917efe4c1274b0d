/**
 * Judges a recorded fault-run history after the fact (Jepsen style). Pure: no I/O, no clocks.
 * All times are CLOCK_MONOTONIC milliseconds, shared by the harness and the sampler process.
 */

/** One GET /leader answer; it held at some instant in [sentMs, receivedMs]. */
export interface Sample {
  member: string;
  sentMs: number;
  receivedMs: number;
  isLeader: boolean;
  leader: string | null;
  term: number;
}

/** One life of a member process. `incarnation` grows when the data dir is wiped (a new identity). */
export interface Life {
  member: string;
  incarnation: number;
  startMs: number;
  endMs: number | null;
}

/** A role change as the member logged it. */
export interface RoleEvent {
  member: string;
  incarnation: number;
  atMs: number;
  term: number;
  role: string;
  leader: string | null;
}

/** The state file's hard state as the harness read it, or a "vote granted" log line. */
export interface VoteRecord {
  member: string;
  incarnation: number;
  atMs: number;
  term: number;
  /** '' for no vote. */
  vote: string;
  source: 'state-file' | 'log';
}

export interface FaultRecord {
  kind: string;
  detail: string;
  startMs: number;
  endMs: number;
}

export interface History {
  members: string[];
  electionTimeoutMs: number;
  samples: Sample[];
  lives: Life[];
  roles: RoleEvent[];
  votes: VoteRecord[];
  faults: FaultRecord[];
  /** When the last fault was healed and every member was running again. */
  healedMs: number;
  endMs: number;
}

export type ViolationKind = 'two-leaders-in-term' | 'overlapping-isLeader' | 'term-went-back' | 'double-vote' | 'no-convergence';

export interface Violation {
  kind: ViolationKind;
  message: string;
}

export interface Verdict {
  /** The first few of each kind. */
  violations: Violation[];
  /** Every violation, including those left out of the list. */
  violationCount: number;
  faultsInjected: number;
  /** Distinct (term, leader) pairs in the role logs: elections won, the first one included. */
  leaderChanges: number;
  /** Longest stretch with no member observed answering isLeader: true. */
  worstNoLeaderMs: number;
  /** The same, by the step under way when the stretch ended: its fault or the rest after it ('none' before the first). */
  worstNoLeaderByKindMs: Record<string, number>;
  /** From healedMs to every member agreeing on one leader that answers isLeader, or null. */
  convergedAfterMs: number | null;
}

/** After the faults stop: one leader within this many election timeouts, and every member agrees. */
export const ConvergenceElectionTimeouts = 5;
const MaxReportedPerKind = 5;

export function check(h: History): Verdict {
  const violations: Violation[] = [];
  const counts = new Map<ViolationKind, number>();
  const report = (kind: ViolationKind, message: string): void => {
    const n = (counts.get(kind) ?? 0) + 1;
    counts.set(kind, n);
    if (n <= MaxReportedPerKind) violations.push({ kind, message });
    else if (n === MaxReportedPerKind + 1) violations.push({ kind, message: `more ${kind} violations left out` });
  };
  checkLeaderPerTerm(h, report);
  checkOverlappingClaims(h, report);
  checkTermsMonotonic(h, report);
  checkVotes(h, report);
  const convergedAfterMs = convergence(h);
  const limitMs = ConvergenceElectionTimeouts * h.electionTimeoutMs;
  if (convergedAfterMs === null || convergedAfterMs > limitMs) {
    report(
      'no-convergence',
      convergedAfterMs === null
        ? `members never agreed on one leader after the faults stopped (watched ${Math.round(h.endMs - h.healedMs)} ms)`
        : `members agreed ${Math.round(convergedAfterMs)} ms after the faults stopped, over the ${limitMs} ms bound`,
    );
  }
  const gaps = leaderGaps(h);
  const leaderTerms = new Set(h.roles.filter((r) => r.role === 'Leader').map((r) => `${r.term}/${r.member}`));
  return {
    violations,
    violationCount: [...counts.values()].reduce((a, b) => a + b, 0),
    faultsInjected: h.faults.length,
    leaderChanges: leaderTerms.size,
    worstNoLeaderMs: gaps.worst,
    worstNoLeaderByKindMs: gaps.byKind,
    convergedAfterMs,
  };
}

type Report = (kind: ViolationKind, message: string) => void;

/** Election safety: every claim of who leads term T, from logs and answers, names one member. */
function checkLeaderPerTerm(h: History, report: Report): void {
  const leaderOf = new Map<number, { leader: string; from: string }>();
  const reported = new Set<string>();
  const note = (term: number, leader: string | null, from: string): void => {
    if (!leader) return;
    const seen = leaderOf.get(term);
    if (!seen) leaderOf.set(term, { leader, from });
    else if (seen.leader !== leader && !reported.has(`${term}/${leader}`)) {
      reported.add(`${term}/${leader}`);
      report('two-leaders-in-term', `term ${term}: ${seen.leader} (${seen.from}) and ${leader} (${from})`);
    }
  };
  for (const r of h.roles) if (r.role === 'Leader') note(r.term, r.member, `${r.member}'s log`);
  for (const r of h.roles) note(r.term, r.leader, `${r.member}'s log`);
  for (const s of h.samples) note(s.term, s.leader, `${s.member}'s /leader`);
}

/**
 * A claim whose request took longer than this cannot be placed in time: the member may have
 * computed its answer (with a valid lease) just before a SIGSTOP and sent it after, so its
 * window says nothing about when it held. Half the default lease window (800 ms); an honest
 * sample takes a few ms.
 */
export const MaxPlaceableClaimMs = 400;

/** Lease safety: two isLeader answers from different members whose windows overlap could have held at once. */
function checkOverlappingClaims(h: History, report: Report): void {
  const claims = h.samples
    .filter((s) => s.isLeader && s.receivedMs - s.sentMs <= MaxPlaceableClaimMs)
    .sort((a, b) => a.sentMs - b.sentMs);
  // The last claim per member whose window is still open at the current sentMs.
  let open: Sample[] = [];
  for (const c of claims) {
    open = open.filter((o) => o.receivedMs >= c.sentMs);
    for (const o of open) {
      if (o.member !== c.member) {
        report(
          'overlapping-isLeader',
          `${o.member} (term ${o.term}, [${o.sentMs.toFixed(1)}, ${o.receivedMs.toFixed(1)}]) and ${c.member} (term ${c.term}, [${c.sentMs.toFixed(1)}, ${c.receivedMs.toFixed(1)}]) both answered isLeader`,
        );
      }
    }
    open = open.filter((o) => o.member !== c.member || o.receivedMs > c.receivedMs);
    open.push(c);
  }
}

/** Terms never go back per member identity: in its logs, its state file and its answers. */
function checkTermsMonotonic(h: History, report: Report): void {
  const series = new Map<string, { atMs: number; term: number; from: string }[]>();
  const add = (member: string, incarnation: number, atMs: number, term: number, from: string): void => {
    const key = `${member}#${incarnation}`;
    let list = series.get(key);
    if (!list) series.set(key, (list = []));
    list.push({ atMs, term, from });
  };
  for (const r of h.roles) add(r.member, r.incarnation, r.atMs, r.term, 'log');
  for (const v of h.votes) if (v.source === 'state-file') add(v.member, v.incarnation, v.atMs, v.term, 'state file');
  for (const s of h.samples) {
    const life = h.lives.find((l) => l.member === s.member && l.startMs <= s.sentMs && (l.endMs === null || s.receivedMs <= l.endMs));
    if (life) add(s.member, life.incarnation, s.receivedMs, s.term, '/leader');
  }
  for (const key of [...series.keys()].sort()) {
    // Answers are ordered by when they arrived; logs and state reads by when they were seen.
    const byFrom = new Map<string, { atMs: number; term: number }[]>();
    for (const e of series.get(key)!) {
      let l = byFrom.get(e.from);
      if (!l) byFrom.set(e.from, (l = []));
      l.push(e);
    }
    for (const [from, list] of [...byFrom].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      list.sort((a, b) => a.atMs - b.atMs);
      for (let i = 1; i < list.length; i++) {
        if (list[i]!.term < list[i - 1]!.term) {
          report('term-went-back', `${key} (${from}): term ${list[i - 1]!.term} then ${list[i]!.term} at ${list[i]!.atMs.toFixed(1)}`);
          break;
        }
      }
    }
  }
}

/** Durability: one identity grants at most one vote per term, across restarts that keep its data dir. */
function checkVotes(h: History, report: Report): void {
  const votes = new Map<string, { vote: string; source: string }>();
  for (const v of [...h.votes].sort((a, b) => a.atMs - b.atMs)) {
    if (v.vote === '') continue;
    const key = `${v.member}#${v.incarnation}@${v.term}`;
    const seen = votes.get(key);
    if (!seen) votes.set(key, { vote: v.vote, source: v.source });
    else if (seen.vote !== v.vote) {
      report('double-vote', `${v.member} (incarnation ${v.incarnation}) voted for ${seen.vote} (${seen.source}) and ${v.vote} (${v.source}) in term ${v.term}`);
    }
  }
}

/**
 * The first instant after healedMs at which every member's latest answer (sent after
 * healedMs) names the same leader and term, and that leader's own latest answer says isLeader.
 */
function convergence(h: History): number | null {
  const after = h.samples.filter((s) => s.sentMs >= h.healedMs).sort((a, b) => a.receivedMs - b.receivedMs);
  const latest = new Map<string, Sample>();
  for (const s of after) {
    latest.set(s.member, s);
    if (latest.size < h.members.length) continue;
    const answers = [...latest.values()];
    const first = answers[0]!;
    if (!first.leader || !answers.every((a) => a.leader === first.leader && a.term === first.term)) continue;
    if (latest.get(first.leader)?.isLeader) return s.receivedMs - h.healedMs;
  }
  return null;
}

/** Stretches with no observed isLeader claim, attributed to the step under way when each ended. */
function leaderGaps(h: History): { worst: number; byKind: Record<string, number> } {
  const claims = h.samples.filter((s) => s.isLeader).sort((a, b) => a.sentMs - b.sentMs);
  const byKind: Record<string, number> = {};
  let worst = 0;
  let lastEnd: number | undefined;
  for (const c of claims) {
    if (lastEnd !== undefined && c.sentMs > lastEnd) {
      const gap = c.sentMs - lastEnd;
      // By when it ended: a killed leader's last answer arrives just before the kill is recorded.
      const kind = stepAt(h, c.sentMs);
      byKind[kind] = Math.max(byKind[kind] ?? 0, gap);
      worst = Math.max(worst, gap);
    }
    lastEnd = Math.max(lastEnd ?? c.receivedMs, c.receivedMs);
  }
  return { worst, byKind: Object.fromEntries(Object.entries(byKind).sort((a, b) => (a[0] < b[0] ? -1 : 1))) };
}

/** The step under way at atMs: the last fault started by then (a step's rest is its own); 'none' before any. */
function stepAt(h: History, atMs: number): string {
  let found = 'none';
  let startedMs = -Infinity;
  for (const f of h.faults) {
    if (f.startMs <= atMs && f.startMs >= startedMs) {
      found = f.kind;
      startedMs = f.startMs;
    }
  }
  return found;
}
