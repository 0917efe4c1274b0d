/**
 * The peer handshake: four small JSON text frames right after the WebSocket opens,
 * before any raft frame may flow.
 *
 *   dialer  -> acceptor  hello     {kind, v, cluster, from, to, auth, nonce: Nd, instance, timing, freshVoteDelayMs?, longestRefusalWindowMs?, longestLeaseWindowMs?}
 *   acceptor -> dialer   challenge {kind, v, cluster, from, to, auth, nonce: Na, instance, timing, freshVoteDelayMs?, longestRefusalWindowMs?, longestLeaseWindowMs?}
 *   dialer  -> acceptor  proof     {kind, mac: HMAC(secret, "…dialer-proof",   v, cluster, dialer, acceptor, Nd, Na, hello, challenge)}
 *   acceptor -> dialer   welcome   {kind, mac: HMAC(secret, "…acceptor-proof", v, cluster, dialer, acceptor, Nd, Na, hello, challenge)}
 *
 * Both sides contribute a fresh 32-byte nonce, so neither proof can be replayed on
 * another connection; the two proofs carry different labels, so the acceptor's
 * proof cannot be reflected back as the dialer's (or the other way round). The
 * MACs cover the exact hello and challenge texts, so the instance id and the timing
 * each side announced are authenticated with the rest. The dialer proves first, so
 * a stranger who merely connects to the port never sees a MAC under the secret.
 * Fields are length-prefixed before hashing (no ambiguity between "ab"+"c" and
 * "a"+"bc"), MACs are compared in constant time, and the secret never goes on the
 * wire. With `auth: "none"` (insecure mode) the MACs are empty, but version,
 * cluster and ids are still checked; a side with a secret refuses a side without one.
 * After the welcome, every frame is sealed with keys derived from the same inputs
 * (frame-auth.ts).
 *
 * Compatibility rule for later protocol versions: `kind` and `v` stay readable in
 * every hello/challenge, so a member can always say "bad version" instead of "malformed".
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { PROTOCOL_VERSION, ShapeError, describe, field, isValidClusterName, readNat, readObject, readId } from './codec.js';
import type { PeerTiming } from './interfaces.js';

export const NONCE_BYTES = 32;
const MAC_BYTES = 32;
const INSTANCE_BYTES = 16;
const DIALER_LABEL = 'raft-elector/v2/dialer-proof';
const ACCEPTOR_LABEL = 'raft-elector/v2/acceptor-proof';
/** Bounds on announced timing: the same ranges the command line accepts. */
export const TIMING_BOUNDS = {
  tickMs: [1, 60_000],
  electionTicks: [2, 10_000],
  maxClockDriftMs: [0, 3_600_000],
} as const;

export type AuthMode = 'hmac-sha256' | 'none';

/** Two election timeouts of the largest timing TIMING_BOUNDS allow. */
export const MaxFreshVoteDelayMs = 2 * TIMING_BOUNDS.tickMs[1] * TIMING_BOUNDS.electionTicks[1];
/** The refusal window (electionTicks - 1) * tickMs of the largest timing TIMING_BOUNDS allow. */
export const MaxRefusalWindowMs = (TIMING_BOUNDS.electionTicks[1] - 1) * TIMING_BOUNDS.tickMs[1];

/** Why a handshake was refused; also the `reason` field of the refusal log line. */
export type RefusalReason =
  | 'wrong_secret'
  | 'wrong_cluster'
  | 'unknown_member'
  | 'bad_version'
  | 'auth_mode_mismatch'
  | 'wrong_member'
  | 'wrong_dial_direction'
  | 'malformed'
  | 'timeout'
  | 'duplicate_member';

/**
 * WebSocket close codes (4000-4999 are for applications). The peer that is refused
 * reads the code and logs the reason too.
 */
export const CloseCodes = {
  normal: 1000,
  goingAway: 1001,
  messageTooBig: 1009,
  wrong_secret: 4001,
  wrong_cluster: 4002,
  unknown_member: 4003,
  bad_version: 4004,
  auth_mode_mismatch: 4005,
  wrong_member: 4006,
  wrong_dial_direction: 4007,
  malformed: 4008,
  timeout: 4009,
  /** Too many bad frames from an authenticated peer. */
  misbehaving: 4010,
  /** The peer's address changed, or a newer connection from the same peer replaced this one. */
  replaced: 4011,
  /** Another live process already holds a link under this member id (a second process with one id). */
  duplicate_member: 4012,
  /** A frame failed its authentication tag or sequence check (injected, altered, replayed, reordered, truncated). */
  frame_auth_failed: 4013,
} as const;

const refusalByCode = new Map<number, RefusalReason>(
  (Object.entries(CloseCodes) as Array<[string, number]>)
    .filter(([, code]) => (code >= 4001 && code <= 4009) || code === 4012)
    .map(([name, code]) => [code, name as RefusalReason]),
);

export function refusalForCloseCode(code: number): RefusalReason | undefined {
  return refusalByCode.get(code);
}

export class HandshakeRefusal extends Error {
  override name = 'HandshakeRefusal';
  /** The id the other side claimed, for the refusal log line (unverified). */
  claimedId: string | undefined;
  constructor(
    readonly reason: RefusalReason,
    message: string,
  ) {
    super(message);
  }
  get closeCode(): number {
    return CloseCodes[this.reason];
  }
}

export interface Hello {
  kind: 'hello' | 'challenge';
  v: number;
  cluster: string;
  from: string;
  to: string;
  auth: AuthMode;
  nonce: string;
  /** Random per process start: tells two live processes that claim one member id apart. */
  instance: string;
  timing: PeerTiming;
  /**
   * Ms left of the fresh-vote delay this side would serve if the group ran before it started
   * (0: none, it has state or served it). Optional: older members neither send nor read it.
   */
  freshVoteDelayMs?: number;
  /** Set when freshVoteDelayMs was out of range and taken adjusted: what the peer announced. */
  freshVoteDelayAnnounced?: number;
  /**
   * The longest refusal window, and the longest lease window (refusal window - drift), this side
   * ever announced, across restarts (its timing record): its old incarnation's acks may still
   * count at some leader (cluster/lease.ts). Optional: older members neither send nor read them.
   */
  longestRefusalWindowMs?: number;
  longestLeaseWindowMs?: number;
  /** Set when longestRefusalWindowMs was out of range and taken adjusted: what the peer announced. */
  longestRefusalWindowAnnounced?: number;
  /** Set when longestLeaseWindowMs was out of range and taken adjusted: what the peer announced. */
  longestLeaseWindowAnnounced?: number;
}

export interface Proof {
  kind: 'proof' | 'welcome';
  mac: string;
}

export function newNonce(): string {
  return randomBytes(NONCE_BYTES).toString('base64url');
}

export function newInstanceId(): string {
  return randomBytes(INSTANCE_BYTES).toString('base64url');
}

/** The hello or challenge text this side sends (the MACs cover it byte for byte). */
export function buildHello(h: Omit<Hello, 'v'>): string {
  const timing = { tickMs: h.timing.tickMs, electionTicks: h.timing.electionTicks, maxClockDriftMs: h.timing.maxClockDriftMs };
  const fresh = h.freshVoteDelayMs === undefined ? {} : { freshVoteDelayMs: h.freshVoteDelayMs };
  const refusal = h.longestRefusalWindowMs === undefined ? {} : { longestRefusalWindowMs: h.longestRefusalWindowMs };
  const lease = h.longestLeaseWindowMs === undefined ? {} : { longestLeaseWindowMs: h.longestLeaseWindowMs };
  return JSON.stringify({ kind: h.kind, v: PROTOCOL_VERSION, cluster: h.cluster, from: h.from, to: h.to, auth: h.auth, nonce: h.nonce, instance: h.instance, timing, ...fresh, ...refusal, ...lease });
}

/** Checks timing (ours from options, or a peer's) against TIMING_BOUNDS; returns a problem or undefined. */
export function timingProblem(t: PeerTiming): string | undefined {
  for (const key of ['tickMs', 'electionTicks', 'maxClockDriftMs'] as const) {
    const [lo, hi] = TIMING_BOUNDS[key];
    const v = t[key];
    if (!Number.isSafeInteger(v) || v < lo || v > hi) return `timing.${key} must be an integer in ${lo}..${hi}, got ${describe(v)}`;
  }
  return undefined;
}

/** What this side expects of the other, for checking its hello or challenge. */
export interface HelloExpectation {
  kind: Hello['kind'];
  cluster: string;
  self: string;
  auth: AuthMode;
  isMember(id: string): boolean;
  /** For a challenge: the member we dialed. */
  expectedPeer?: string;
}

/**
 * Checks a hello or challenge. Order matters for the refusal reason: version first
 * (a newer peer may shape the rest differently), then cluster, then ids, then auth.
 */
export function parseHello(text: string, exp: HelloExpectation): Hello {
  const obj = parseObject(text, exp.kind);
  try {
    return checkHello(obj, exp);
  } catch (err) {
    if (err instanceof HandshakeRefusal && typeof obj.from === 'string') err.claimedId = obj.from.slice(0, 253);
    throw err;
  }
}

function checkHello(obj: Record<string, unknown>, exp: HelloExpectation): Hello {
  // Every read goes through shape(): a missing field is a refusal, never a throw into ws.
  const kind = shape(() => field(obj, 'kind', exp.kind));
  if (kind !== exp.kind) throw new HandshakeRefusal('malformed', `expected a ${exp.kind}, got kind ${describe(kind)}`);
  const v = shape(() => field(obj, 'v', exp.kind));
  if (v !== PROTOCOL_VERSION) {
    throw new HandshakeRefusal('bad_version', `peer speaks protocol version ${describe(v)}, this member speaks ${PROTOCOL_VERSION}`);
  }
  return shape(() => {
    const cluster = field(obj, 'cluster', exp.kind);
    if (!isValidClusterName(cluster)) throw new ShapeError(`${exp.kind}.cluster must be a cluster name, got ${describe(cluster)}`);
    const from = readId(obj, 'from', exp.kind);
    if (cluster !== exp.cluster) {
      throw new HandshakeRefusal('wrong_cluster', `peer ${from} is in cluster ${JSON.stringify(cluster)}, this member is in ${JSON.stringify(exp.cluster)}`);
    }
    if (exp.expectedPeer !== undefined && from !== exp.expectedPeer) {
      throw new HandshakeRefusal('wrong_member', `dialed member ${exp.expectedPeer} but ${from} answered (a stale or wrong address?)`);
    }
    if (from === exp.self || !exp.isMember(from)) {
      throw new HandshakeRefusal('unknown_member', `member id ${JSON.stringify(from)} is not a peer of this cluster`);
    }
    const to = readId(obj, 'to', exp.kind);
    if (to !== exp.self) throw new HandshakeRefusal('wrong_member', `peer ${from} wanted member ${to}, this is ${exp.self}`);
    const auth = field(obj, 'auth', exp.kind);
    if (auth !== 'hmac-sha256' && auth !== 'none') throw new ShapeError(`${exp.kind}.auth must be "hmac-sha256" or "none", got ${describe(auth)}`);
    if (auth !== exp.auth) {
      throw new HandshakeRefusal(
        'auth_mode_mismatch',
        exp.auth === 'none'
          ? `peer ${from} authenticates with a shared secret but this member runs insecure`
          : `peer ${from} runs insecure (no shared secret) but this member requires one`,
      );
    }
    const nonce = field(obj, 'nonce', exp.kind);
    if (typeof nonce !== 'string' || Buffer.from(nonce, 'base64url').length !== NONCE_BYTES || nonce.length > 64) {
      throw new ShapeError(`${exp.kind}.nonce must be ${NONCE_BYTES} random bytes in base64url`);
    }
    const instance = field(obj, 'instance', exp.kind);
    if (typeof instance !== 'string' || instance.length > 32 || Buffer.from(instance, 'base64url').length !== INSTANCE_BYTES) {
      throw new ShapeError(`${exp.kind}.instance must be ${INSTANCE_BYTES} random bytes in base64url`);
    }
    const t = readObject(field(obj, 'timing', exp.kind), `${exp.kind}.timing`);
    const path = `${exp.kind}.timing`;
    const timing: PeerTiming = { tickMs: readNat(t, 'tickMs', path), electionTicks: readNat(t, 'electionTicks', path), maxClockDriftMs: readNat(t, 'maxClockDriftMs', path) };
    const problem = timingProblem(timing);
    if (problem) throw new ShapeError(`${exp.kind}: ${problem}`);
    const hello: Hello = { kind: exp.kind, v, cluster, from, to, auth, nonce, instance, timing };
    if (obj.freshVoteDelayMs !== undefined) {
      const read = readFreshVoteDelay(obj.freshVoteDelayMs, exp.kind);
      hello.freshVoteDelayMs = read.ms;
      if (read.adjustedFrom !== undefined) hello.freshVoteDelayAnnounced = read.adjustedFrom;
    }
    if (obj.longestRefusalWindowMs !== undefined) {
      const read = readRecordedWindow(obj.longestRefusalWindowMs, `${exp.kind}.longestRefusalWindowMs`);
      hello.longestRefusalWindowMs = read.ms;
      if (read.adjustedFrom !== undefined) hello.longestRefusalWindowAnnounced = read.adjustedFrom;
    }
    if (obj.longestLeaseWindowMs !== undefined) {
      const read = readRecordedWindow(obj.longestLeaseWindowMs, `${exp.kind}.longestLeaseWindowMs`);
      hello.longestLeaseWindowMs = read.ms;
      if (read.adjustedFrom !== undefined) hello.longestLeaseWindowAnnounced = read.adjustedFrom;
    }
    return hello;
  });
}

/**
 * An announced freshVoteDelayMs. A number out of 0..MaxFreshVoteDelayMs (a peer on another build)
 * is taken, not refused: refusing would cut the peer off from the group, while the value only
 * decides when a leader may hand over to it. Taken, it is never shorter than announced (a leader
 * must not count on a vote sooner than the peer grants one): a fraction rounds up, a negative
 * (over) is 0, and above the bound is Infinity (this build cannot bound it: not over while the
 * link lasts). Anything but a number is malformed.
 */
export function readFreshVoteDelay(v: unknown, kind: string): { ms: number; adjustedFrom?: number } {
  if (typeof v !== 'number') throw new ShapeError(`${kind}.freshVoteDelayMs must be a number, got ${describe(v)}`);
  if (Number.isSafeInteger(v) && v >= 0 && v <= MaxFreshVoteDelayMs) return { ms: v === 0 ? 0 : v };
  const ms = v > MaxFreshVoteDelayMs ? Infinity : Math.max(0, Math.ceil(v));
  return { ms, adjustedFrom: v };
}

/**
 * An announced longestRefusalWindowMs or longestLeaseWindowMs (`name`), treated as freshVoteDelayMs is: a number out of
 * 0..MaxRefusalWindowMs is taken, not refused (it only lengthens waits), and never shorter than
 * announced where that matters: a fraction rounds up, a negative is 0 (nothing beyond the peer's
 * current timing). Above the bound it is the bound, not Infinity: no leader of this build counts
 * an ack with a longer window (it refuses timing outside TIMING_BOUNDS), and the waits it feeds
 * arm timers, which Node fires at once when longer than 2^31 - 1 ms. Anything but a number is malformed.
 */
export function readRecordedWindow(v: unknown, name: string): { ms: number; adjustedFrom?: number } {
  if (typeof v !== 'number') throw new ShapeError(`${name} must be a number, got ${describe(v)}`);
  if (Number.isSafeInteger(v) && v >= 0 && v <= MaxRefusalWindowMs) return { ms: v === 0 ? 0 : v };
  return { ms: v > MaxRefusalWindowMs ? MaxRefusalWindowMs : Math.max(0, Math.ceil(v)), adjustedFrom: v };
}

export function parseProof(text: string, kind: Proof['kind']): Proof {
  const obj = parseObject(text, kind);
  return shape(() => {
    const k = field(obj, 'kind', kind);
    if (k !== kind) throw new ShapeError(`expected a ${kind}, got kind ${describe(k)}`);
    const mac = field(obj, 'mac', kind);
    if (typeof mac !== 'string' || mac.length > 128) throw new ShapeError(`${kind}.mac must be a hex string`);
    return { kind, mac };
  });
}

export interface MacInput {
  cluster: string;
  dialer: string;
  acceptor: string;
  dialerNonce: string;
  acceptorNonce: string;
  /** The exact texts of the hello and the challenge. */
  hello: string;
  challenge: string;
}

export function computeMac(secret: Buffer, role: 'dialer' | 'acceptor', input: MacInput): string {
  return lengthPrefixedHmac(secret, [
    role === 'dialer' ? DIALER_LABEL : ACCEPTOR_LABEL,
    String(PROTOCOL_VERSION),
    input.cluster,
    input.dialer,
    input.acceptor,
    input.dialerNonce,
    input.acceptorNonce,
    input.hello,
    input.challenge,
  ]);
}

/** HMAC-SHA256 (hex) over length-prefixed parts: no ambiguity between "ab"+"c" and "a"+"bc". */
export function lengthPrefixedHmac(secret: Buffer, parts: readonly string[]): string {
  const h = createHmac('sha256', secret);
  for (const part of parts) {
    const bytes = Buffer.from(part, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(bytes.length);
    h.update(len);
    h.update(bytes);
  }
  return h.digest('hex');
}

/** Constant-time check of a received MAC; a length mismatch is decided before comparing. */
export function verifyMac(secret: Buffer, role: 'dialer' | 'acceptor', input: MacInput, received: string): boolean {
  const expected = Buffer.from(computeMac(secret, role, input), 'hex');
  const got = /^[0-9a-f]*$/.test(received) ? Buffer.from(received, 'hex') : Buffer.alloc(0);
  if (got.length !== MAC_BYTES) return false;
  return timingSafeEqual(expected, got);
}

function parseObject(text: string, what: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new HandshakeRefusal('malformed', `${what} is not valid JSON`);
  }
  return shape(() => readObject(parsed, what));
}

function shape<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ShapeError) throw new HandshakeRefusal('malformed', err.message);
    throw err;
  }
}
