/**
 * Judges a recorded fault-run history after the fact (Jepsen style). Pure: no I/O, no clocks.
 * All times are CLOCK_MONOTONIC milliseconds, shared by the harness and the sampler process.
 *
 * `member` is a slot (one network namespace); `identity` is who ran in it: in-cluster the raft
 * id `<pod>@<uid>`, otherwise `<slot>#<data-dir incarnation>`. Per-identity rules key on it.
 */
import { confStateAfter, type ConfChangeV2, type ConfState } from '../../raft/index.js';

/** One GET /leader answer; it held at some instant in [sentMs, receivedMs]. */
export interface Sample {
  member: string;
  sentMs: number;
  receivedMs: number;
  isLeader: boolean;
  leader: string | null;
  term: number;
  /** The answer's selfId and leaderId (raft ids), where the member reports them. */
  selfId?: string;
  leaderId?: string | null;
}

/** One life of a member process. `incarnation` grows when the data dir is wiped (a new identity). */
export interface Life {
  member: string;
  incarnation: number;
  identity?: string;
  startMs: number;
  endMs: number | null;
}

/** A role change as the member logged it. */
export interface RoleEvent {
  member: string;
  incarnation: number;
  identity?: string;
  atMs: number;
  term: number;
  role: string;
  leader: string | null;
}

/** The state file's hard state as the harness read it, or a "vote granted" log line. */
export interface VoteRecord {
  member: string;
  incarnation: number;
  identity?: string;
  atMs: number;
  term: number;
  /** '' for no vote. */
  vote: string;
  source: 'state-file' | 'log';
}

/**
 * A member's committed configurations as its state file showed them at atMs: the snapshot's
 * and the one after each committed conf-change entry, by log index (conf: canonical JSON).
 * Recorded when the list changes, so atMs is when each commit was first seen on disk.
 */
export interface ConfigRecord {
  member: string;
  identity: string;
  atMs: number;
  commit: number;
  configs: { index: number; conf: string }[];
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
  /** Absent for fixed-membership runs. */
  configs?: ConfigRecord[];
  faults: FaultRecord[];
  /** When the last fault was healed and every member was running again. */
  healedMs: number;
  endMs: number;
}

export type ViolationKind =
  | 'two-leaders-in-term'
  | 'overlapping-isLeader'
  | 'term-went-back'
  | 'double-vote'
  | 'no-convergence'
  | 'config-diverged'
  | 'removed-isLeader';

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
  checkConfigsAgree(h, report);
  checkRemovedNeverLead(h, report);
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

const identityOf = (r: { member: string; incarnation: number; identity?: string }): string => r.identity ?? `${r.member}#${r.incarnation}`;

/** Who answered: the answer's own selfId, else the life the sample falls in. */
function sampleIdentity(h: History, s: Sample): string | undefined {
  if (s.selfId) return s.selfId;
  const life = h.lives.find((l) => l.member === s.member && l.startMs <= s.sentMs && (l.endMs === null || s.receivedMs <= l.endMs));
  return life ? identityOf(life) : undefined;
}

/** The canonical text of a configuration: sorted id lists, so equal sets compare equal. */
export function canonicalConf(cs: ConfState): string {
  const sorted = (xs: readonly string[]): string[] => [...xs].sort();
  return JSON.stringify({ voters: sorted(cs.voters), votersOutgoing: sorted(cs.votersOutgoing), learners: sorted(cs.learners), learnersNext: sorted(cs.learnersNext), autoLeave: cs.autoLeave });
}

/**
 * The committed configurations a state file implies: the snapshot's ConfState at its index, then
 * each committed conf-change entry applied in turn. Stops (returning what it has and the reason)
 * at a change that does not apply, which the divergence check then shows against the others.
 */
export function committedConfigs(
  snapshot: { index: number; confState?: ConfState },
  entries: readonly { index: number; confChange?: ConfChangeV2 }[],
  commit: number,
): { configs: { index: number; conf: string }[]; error?: string } {
  const configs: { index: number; conf: string }[] = [];
  let cs: ConfState = snapshot.confState ?? { voters: [], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false };
  if (snapshot.confState && snapshot.index > 0) configs.push({ index: snapshot.index, conf: canonicalConf(cs) });
  for (const e of entries) {
    if (e.index > commit) break;
    if (!e.confChange) continue;
    try {
      cs = confStateAfter(cs, e.confChange);
    } catch (err) {
      return { configs, error: `entry ${e.index}: ${(err as Error).message}` };
    }
    configs.push({ index: e.index, conf: canonicalConf(cs) });
  }
  return { configs };
}

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
  // A leader logs itself as the leader: its raft id, which samples' leaderId also carry.
  for (const r of h.roles) if (r.role === 'Leader') note(r.term, r.leader ?? r.member, `${r.member}'s log`);
  for (const r of h.roles) note(r.term, r.leader, `${r.member}'s log`);
  for (const s of h.samples) note(s.term, s.leaderId !== undefined ? s.leaderId : s.leader, `${s.member}'s /leader`);
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
  const add = (key: string, atMs: number, term: number, from: string): void => {
    let list = series.get(key);
    if (!list) series.set(key, (list = []));
    list.push({ atMs, term, from });
  };
  for (const r of h.roles) add(identityOf(r), r.atMs, r.term, 'log');
  for (const v of h.votes) if (v.source === 'state-file') add(identityOf(v), v.atMs, v.term, 'state file');
  for (const s of h.samples) {
    const id = sampleIdentity(h, s);
    if (id) add(id, s.receivedMs, s.term, '/leader');
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
    const key = `${identityOf(v)}@${v.term}`;
    const seen = votes.get(key);
    if (!seen) votes.set(key, { vote: v.vote, source: v.source });
    else if (seen.vote !== v.vote) {
      report('double-vote', `${identityOf(v)} (in ${v.member}) voted for ${seen.vote} (${seen.source}) and ${v.vote} (${v.source}) in term ${v.term}`);
    }
  }
}

/** Configurations never diverge: every member that committed index i holds the same configuration at i. */
function checkConfigsAgree(h: History, report: Report): void {
  const at = new Map<number, { conf: string; from: string }>();
  const reported = new Set<number>();
  for (const r of [...(h.configs ?? [])].sort((a, b) => a.atMs - b.atMs)) {
    for (const c of r.configs) {
      const seen = at.get(c.index);
      if (!seen) at.set(c.index, { conf: c.conf, from: r.identity });
      else if (seen.conf !== c.conf && !reported.has(c.index)) {
        reported.add(c.index);
        report('config-diverged', `index ${c.index}: ${seen.from} committed ${seen.conf}, ${r.identity} committed ${c.conf}`);
      }
    }
  }
}

/**
 * When each identity's removal was first seen committed: the earliest record in which a
 * committed configuration leaves it out after an earlier one held it (a joiner not yet added
 * was never in, so it is not removed). Identities are never re-added: a new pod is a new id.
 */
export function removalsCommitted(configs: readonly ConfigRecord[]): Map<string, { atMs: number; index: number }> {
  const out = new Map<string, { atMs: number; index: number }>();
  for (const r of configs) {
    const members = new Set<string>();
    for (const c of r.configs) {
      const cs = JSON.parse(c.conf) as ConfState;
      const now = new Set([...cs.voters, ...cs.votersOutgoing, ...cs.learners, ...cs.learnersNext]);
      for (const id of members) {
        if (now.has(id)) continue;
        const seen = out.get(id);
        if (!seen || r.atMs < seen.atMs) out.set(id, { atMs: r.atMs, index: c.index });
      }
      members.clear();
      for (const id of now) members.add(id);
    }
  }
  return out;
}

/** A removed member never answers isLeader in a request sent after its removal was seen committed. */
function checkRemovedNeverLead(h: History, report: Report): void {
  if (!h.configs) return;
  const removed = removalsCommitted(h.configs);
  if (removed.size === 0) return;
  const reported = new Set<string>();
  for (const s of h.samples) {
    if (!s.isLeader) continue;
    const id = sampleIdentity(h, s);
    const r = id === undefined ? undefined : removed.get(id);
    if (!id || !r || s.sentMs <= r.atMs || reported.has(id)) continue;
    reported.add(id);
    report('removed-isLeader', `${id} answered isLeader (term ${s.term}, sent ${s.sentMs.toFixed(1)}) after its removal at index ${r.index} was seen committed at ${r.atMs.toFixed(1)}`);
  }
}

/**
 * The first instant after healedMs at which every member's latest answer (sent after
 * healedMs) names the same leader and term, and that leader's own latest answer says isLeader.
 */
function convergence(h: History): number | null {
  const members = new Set(h.members);
  const after = h.samples.filter((s) => s.sentMs >= h.healedMs && members.has(s.member)).sort((a, b) => a.receivedMs - b.receivedMs);
  const latest = new Map<string, Sample>();
  for (const s of after) {
    latest.set(s.member, s);
    if (latest.size < members.size) continue;
    if (agreed([...latest.values()])) return s.receivedMs - h.healedMs;
  }
  return null;
}

/** Every answer names one leader and term, and that leader's own answer says isLeader. */
export function agreed(answers: readonly Sample[]): boolean {
  const first = answers[0];
  const leaderOf = (s: Sample): string | null => (s.leaderId !== undefined ? s.leaderId : s.leader);
  const lead = first ? leaderOf(first) : null;
  if (!first || !lead || !answers.every((a) => leaderOf(a) === lead && a.term === first.term)) return false;
  return answers.some((a) => (a.selfId ?? a.member) === lead && a.isLeader);
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
