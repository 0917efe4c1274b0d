/**
 * Quorum arithmetic (etcd's quorum package): a majority configuration is a set of
 * voter ids; a joint configuration is two of them, and a decision needs both.
 */
export type VoteResult = 'VotePending' | 'VoteLost' | 'VoteWon';

/** The highest index a member is known to hold, or undefined when it acknowledged nothing. */
export type AckedIndexer = (id: string) => number | undefined;

/** Voter ids, sorted once so every iteration and every printed list has one order. */
export type MajorityConfig = readonly string[];

/** [incoming, outgoing]; outgoing is empty unless the configuration is joint. */
export type JointConfig = readonly [incoming: MajorityConfig, outgoing: MajorityConfig];

export function majorityConfig(ids: Iterable<string>): MajorityConfig {
  return [...new Set(ids)].sort();
}

/** "(a b c)", as etcd prints a MajorityConfig. */
export function describeMajority(c: MajorityConfig): string {
  return `(${[...c].sort().join(' ')})`;
}

/** "(a b)&&(a)" while joint, "(a b)" otherwise. */
export function describeJoint(c: JointConfig): string {
  const [incoming, outgoing] = c;
  return outgoing.length > 0 ? `${describeMajority(incoming)}&&${describeMajority(outgoing)}` : describeMajority(incoming);
}

/**
 * The largest index acknowledged by a majority. An empty configuration places no
 * constraint (Infinity), so a joint config with an empty half acts as its other half.
 */
export function majorityCommittedIndex(c: MajorityConfig, acked: AckedIndexer): number {
  if (c.length === 0) return Infinity;
  const idx = c.map((id) => acked(id) ?? 0).sort((a, b) => b - a);
  return idx[Math.floor(c.length / 2)] ?? 0;
}

/** An empty configuration wins every vote (etcd: it lets a joint config degrade to its non-empty half). */
export function majorityVoteResult(c: MajorityConfig, votes: ReadonlyMap<string, boolean>): VoteResult {
  if (c.length === 0) return 'VoteWon';
  let granted = 0;
  let missing = 0;
  for (const id of c) {
    const v = votes.get(id);
    if (v === undefined) missing++;
    else if (v) granted++;
  }
  const q = Math.floor(c.length / 2) + 1;
  if (granted >= q) return 'VoteWon';
  if (granted + missing >= q) return 'VotePending';
  return 'VoteLost';
}

/** An index is committed jointly only once it is committed in both halves. */
export function jointCommittedIndex(c: JointConfig, acked: AckedIndexer): number {
  return Math.min(majorityCommittedIndex(c[0], acked), majorityCommittedIndex(c[1], acked));
}

/** Won only when both halves won; lost as soon as either half lost. */
export function jointVoteResult(c: JointConfig, votes: ReadonlyMap<string, boolean>): VoteResult {
  const r0 = majorityVoteResult(c[0], votes);
  const r1 = majorityVoteResult(c[1], votes);
  if (r0 === r1) return r0;
  if (r0 === 'VoteLost' || r1 === 'VoteLost') return 'VoteLost';
  return 'VotePending';
}

/** Every voter of either half, sorted. */
export function jointIds(c: JointConfig): string[] {
  return [...new Set([...c[0], ...c[1]])].sort();
}
