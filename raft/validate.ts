/**
 * Checks at the raft boundary: a message from a peer that breaks an invariant raft relies
 * on is refused whole, before it changes anything (not an etcd rule: etcd trusts its peers
 * and panics on such input). The driver logs and counts the refusal and keeps running.
 */
import { LocalMessageTypes, RaftError, type Message } from './types.js';

/**
 * The largest term a member adopts from any peer, in one jump, or accepts on its disk at
 * start-up. A group that one frame lifted to it can still elect 2^32 times before a term would
 * pass Number.MAX_SAFE_INTEGER (2^53 - 1), the largest integer the codec and the state file
 * carry exactly (about 13 years of one election every 100 ms). etcd's uint64 term has the same
 * ceiling in principle (at 2^64); a term near it is just as fatal there.
 */
export const MaxTerm = Number.MAX_SAFE_INTEGER - 2 ** 32;
/**
 * A term is accepted up to this far above the larger of MaxTerm and the receiver's own term:
 * campaigns step terms by one, so a group lifted to MaxTerm (even a member that lags far behind
 * it) keeps electing, while one forged frame can use up at most this much of the headroom.
 */
export const MaxTermStepAboveMaxTerm = 2 ** 16;
/**
 * A persisted term above this leaves too little room to campaign (fewer than 2^16 elections
 * before 2^53): the driver refuses to start on it and says how to recover.
 */
export const MaxRestoredTerm = Number.MAX_SAFE_INTEGER - MaxTermStepAboveMaxTerm;

export type InvalidMessageReason =
  /** A peer message without a term: term 0 means local to raft and would skip its term checks. */
  | 'term_missing'
  /** A term above MaxTerm: adopting it would leave too little room to campaign. */
  | 'term_no_headroom'
  /** An entry, snapshot or last-log term above the message's own term. */
  | 'log_term_above_term'
  /** MsgApp entries that do not follow `index` one by one with non-decreasing terms. */
  | 'entries_out_of_order'
  /** A number that is not a non-negative safe integer. */
  | 'number_invalid'
  /** A local-only type, a message from this member itself, or one addressed to another. */
  | 'misaddressed';

/** A peer message refused at the raft boundary; `reason` is stable (a metric label). */
export class InvalidMessageError extends RaftError {
  readonly reason: InvalidMessageReason;
  constructor(reason: InvalidMessageReason, message: string) {
    super('INVALID_MESSAGE', message);
    this.name = 'InvalidMessageError';
    this.reason = reason;
  }
}

function fail(m: Message, reason: InvalidMessageReason, why: string): never {
  throw new InvalidMessageError(reason, `${m.type} from ${m.from} refused: ${why}`);
}

function isCount(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

/**
 * Throws InvalidMessageError when `m`, from a peer to member `self` (now at `localTerm`), breaks
 * an invariant. Never changes `m`.
 */
export function validatePeerMessage(m: Message, self: string, localTerm: number): void {
  if (LocalMessageTypes.has(m.type)) fail(m, 'misaddressed', 'a local-only type cannot arrive from a peer');
  if (m.from === self || m.from === '') fail(m, 'misaddressed', `it claims to come from ${m.from === '' ? 'nobody' : 'this member'}`);
  if (m.to !== self) fail(m, 'misaddressed', `it is addressed to ${m.to}, not ${self}`);
  // On every message: plain checks, no allocation.
  if (!isCount(m.term)) fail(m, 'number_invalid', `term ${m.term} is not a non-negative safe integer`);
  if (!isCount(m.logTerm)) fail(m, 'number_invalid', `logTerm ${m.logTerm} is not a non-negative safe integer`);
  if (!isCount(m.index)) fail(m, 'number_invalid', `index ${m.index} is not a non-negative safe integer`);
  if (!isCount(m.commit)) fail(m, 'number_invalid', `commit ${m.commit} is not a non-negative safe integer`);
  if (!isCount(m.rejectHint)) fail(m, 'number_invalid', `rejectHint ${m.rejectHint} is not a non-negative safe integer`);
  if (m.term === 0) fail(m, 'term_missing', 'a peer message must carry a term (term 0 is local and skips the term checks)');
  const ceiling = Math.max(MaxTerm, localTerm) + MaxTermStepAboveMaxTerm;
  if (m.term > ceiling) fail(m, 'term_no_headroom', `term ${m.term} is above the largest term this member adopts now (${ceiling})`);
  // A leader's log, a candidate's last entry and a snapshot never run ahead of their term.
  if (m.logTerm > m.term) fail(m, 'log_term_above_term', `log term ${m.logTerm} is above the message term ${m.term}`);
  if (m.snapshot) {
    if (!isCount(m.snapshot.index) || !isCount(m.snapshot.term)) fail(m, 'number_invalid', 'the snapshot id is not made of safe integers');
    if (m.snapshot.term > m.term) fail(m, 'log_term_above_term', `snapshot term ${m.snapshot.term} is above the message term ${m.term}`);
  }
  let prevIndex = m.index;
  let prevTerm = m.logTerm;
  for (const e of m.entries) {
    if (!isCount(e.index) || !isCount(e.term)) fail(m, 'number_invalid', 'an entry id is not made of safe integers');
    if (e.term > m.term) fail(m, 'log_term_above_term', `entry ${e.index}@${e.term} is above the message term ${m.term}`);
    if (e.index !== prevIndex + 1 || e.term < prevTerm) {
      fail(m, 'entries_out_of_order', `entry ${e.index}@${e.term} does not follow ${prevIndex}@${prevTerm}`);
    }
    prevIndex = e.index;
    prevTerm = e.term;
  }
}
