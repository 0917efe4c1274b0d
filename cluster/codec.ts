/**
 * Wire format of raft messages between members: one WebSocket text frame per
 * message, sealed by frame-auth.ts around a versioned JSON envelope
 *
 *   {"v":2,"cluster":"<name>","msg":{"type":"MsgHeartbeat","to":"b","from":"a",...}}
 *
 * Decoding validates everything before a message can reach the raft core:
 * - the frame is at most `maxFrameBytes` bytes (FRAME_OVERSIZED);
 * - it is a JSON object with `v` equal to PROTOCOL_VERSION (FRAME_UNSUPPORTED_VERSION)
 *   and `cluster` equal to this member's cluster (FRAME_WRONG_CLUSTER);
 * - `msg.type` is a raft message type that may travel between members (no local-only type);
 * - `to`/`from` are member ids (see isValidMemberId), every number is a non-negative safe
 *   integer, `reject` a boolean, `context` a string of at most MAX_CONTEXT_LENGTH characters;
 * - `entries` is empty except on MsgApp, where it holds at most MAX_ENTRIES_PER_MESSAGE
 *   {index, term} that follow `index` contiguously with non-decreasing terms;
 * - `snapshot` {index, term} is present on MsgSnap and absent elsewhere; `confState` (the
 *   membership at the snapshot) may come with it;
 * - an entry may carry `confChange` {transition, changes: [{type, nodeId}]} (see readConfChange).
 * Every field the encoder writes is required. Tolerance for forward-compatible
 * additions within version 1: up to MAX_UNKNOWN_FIELDS unknown keys per object
 * (envelope, message, entry, snapshot) are ignored; more is FRAME_MALFORMED.
 * Anything else is FRAME_MALFORMED with the offending field named.
 */
import {
  LocalMessageTypes,
  MessageTypes,
  type ConfChangeSingle,
  type ConfChangeTransition,
  type ConfChangeType,
  type ConfChangeV2,
  type ConfState,
  type Entry,
  type EntryId,
  type Message,
  type MessageType,
} from '../raft/index.js';
import { ClusterError, type ClusterErrorCode } from './errors.js';

/**
 * Protocol version of the handshake and of every frame. 2: every frame after the
 * handshake is sealed (frame-auth.ts), and the hello carries the instance id and the
 * timing. A v1 and a v2 member refuse each other (bad_version): no fallback, so no
 * downgrade can skip frame authentication.
 */
export const PROTOCOL_VERSION = 2;
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024;
/**
 * Kubernetes pod names are DNS subdomains (at most 253 characters); an in-cluster id is
 * `<podName>@<podUid>` (member-id.ts), a UID at most 64 characters.
 */
export const MAX_ID_LENGTH = 253 + 1 + 64;
export const MAX_CLUSTER_NAME_LENGTH = 253;
export const MAX_CONTEXT_LENGTH = 1024;
export const MAX_ENTRIES_PER_MESSAGE = 4096;
export const MAX_UNKNOWN_FIELDS = 4;
/** Bounds on membership data: far above the voter cap, low enough to keep frames small. */
export const MAX_CONF_CHANGES = 64;
export const MAX_CONF_MEMBERS = 1024;

const messageTypeSet: ReadonlySet<string> = new Set<string>(MessageTypes);
// eslint-disable-next-line no-control-regex
const forbiddenIdChars = /[\s\u0000-\u001f\u007f]/u;

/** A member id is 1..MAX_ID_LENGTH characters with no whitespace or control characters. */
export function isValidMemberId(id: unknown): id is string {
  return typeof id === 'string' && id.length > 0 && id.length <= MAX_ID_LENGTH && !forbiddenIdChars.test(id);
}

export function isValidClusterName(name: unknown): name is string {
  return typeof name === 'string' && name.length > 0 && name.length <= MAX_CLUSTER_NAME_LENGTH && !forbiddenIdChars.test(name);
}

/** Raised by the shape readers below; callers rewrap it with their own code and context. */
export class ShapeError extends Error {
  override name = 'ShapeError';
}

export type JsonObject = Record<string, unknown>;

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return value.length > 40 ? `a string of ${value.length} characters` : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return `a value of type ${typeof value}`;
}

export function readObject(value: unknown, path: string): JsonObject {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ShapeError(`${path} must be an object, got ${describe(value)}`);
  }
  return value as JsonObject;
}

/** Own keys only: JSON.parse makes "__proto__" an own key, never a prototype. */
export function field(obj: JsonObject, key: string, path: string): unknown {
  if (!Object.prototype.hasOwnProperty.call(obj, key)) throw new ShapeError(`${path}.${key} is missing`);
  return obj[key];
}

export function readNat(obj: JsonObject, key: string, path: string): number {
  const v = field(obj, key, path);
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new ShapeError(`${path}.${key} must be a non-negative safe integer, got ${describe(v)}`);
  }
  // JSON "-0" parses to -0, which passes the checks above; hand raft a plain 0.
  return v === 0 ? 0 : v;
}

export function readBool(obj: JsonObject, key: string, path: string): boolean {
  const v = field(obj, key, path);
  if (typeof v !== 'boolean') throw new ShapeError(`${path}.${key} must be a boolean, got ${describe(v)}`);
  return v;
}

export function readId(obj: JsonObject, key: string, path: string): string {
  const v = field(obj, key, path);
  if (!isValidMemberId(v)) {
    throw new ShapeError(
      `${path}.${key} must be a member id (1..${MAX_ID_LENGTH} characters, no whitespace), got ${describe(v)}`,
    );
  }
  return v;
}

export function readString(obj: JsonObject, key: string, path: string, maxLength: number): string {
  const v = field(obj, key, path);
  if (typeof v !== 'string' || v.length > maxLength) {
    throw new ShapeError(`${path}.${key} must be a string of at most ${maxLength} characters, got ${describe(v)}`);
  }
  return v;
}

export function checkUnknownKeys(obj: JsonObject, known: ReadonlySet<string>, path: string): void {
  let unknown = 0;
  for (const key of Object.keys(obj)) {
    if (!known.has(key) && ++unknown > MAX_UNKNOWN_FIELDS) {
      throw new ShapeError(`${path} has more than ${MAX_UNKNOWN_FIELDS} unknown fields (e.g. ${JSON.stringify(key.slice(0, 40))})`);
    }
  }
}

export function readEntryId(value: unknown, path: string): EntryId {
  const obj = readObject(value, path);
  checkUnknownKeys(obj, entryKeys, path);
  return { index: readNat(obj, 'index', path), term: readNat(obj, 'term', path) };
}

const envelopeKeys: ReadonlySet<string> = new Set(['v', 'cluster', 'msg']);
const entryKeys: ReadonlySet<string> = new Set(['index', 'term', 'confChange']);
const messageKeys: ReadonlySet<string> = new Set([
  'type',
  'to',
  'from',
  'term',
  'logTerm',
  'index',
  'entries',
  'commit',
  'reject',
  'rejectHint',
  'context',
  'snapshot',
  'confState',
]);

export interface DecodeOptions {
  clusterName: string;
  maxFrameBytes: number;
}

/** One text frame for `message`. Fields are written in a fixed order, all of them, every time. */
export function encodeMessage(message: Message, clusterName: string): string {
  const msg: Record<string, unknown> = {
    type: message.type,
    to: message.to,
    from: message.from,
    term: message.term,
    logTerm: message.logTerm,
    index: message.index,
    entries: message.entries.map(encodeEntry),
    commit: message.commit,
    reject: message.reject,
    rejectHint: message.rejectHint,
    context: message.context,
  };
  if (message.snapshot !== undefined) msg.snapshot = { index: message.snapshot.index, term: message.snapshot.term };
  if (message.confState !== undefined) msg.confState = encodeConfState(message.confState);
  return JSON.stringify({ v: PROTOCOL_VERSION, cluster: clusterName, msg });
}

/** Decodes and validates one frame; throws only ClusterError. */
export function decodeFrame(data: string | Buffer, options: DecodeOptions): Message {
  const bytes = typeof data === 'string' ? Buffer.byteLength(data, 'utf8') : data.length;
  if (bytes > options.maxFrameBytes) {
    throw new ClusterError('FRAME_OVERSIZED', `frame of ${bytes} bytes exceeds the limit of ${options.maxFrameBytes} bytes`);
  }
  const text = typeof data === 'string' ? data : data.toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    // JSON.parse also throws RangeError on absurd nesting; all of it is a malformed frame.
    throw new ClusterError('FRAME_MALFORMED', `frame is not valid JSON: ${(err as Error).message}`);
  }
  return wrapShape('FRAME_MALFORMED', () => {
    const env = readObject(parsed, 'frame');
    const v = field(env, 'v', 'frame');
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
      throw new ShapeError(`frame.v must be the protocol version (an integer), got ${describe(v)}`);
    }
    if (v !== PROTOCOL_VERSION) {
      throw new ClusterError(
        'FRAME_UNSUPPORTED_VERSION',
        `frame speaks protocol version ${v}, this member speaks ${PROTOCOL_VERSION}`,
      );
    }
    const cluster = field(env, 'cluster', 'frame');
    if (!isValidClusterName(cluster)) throw new ShapeError(`frame.cluster must be a cluster name, got ${describe(cluster)}`);
    if (cluster !== options.clusterName) {
      throw new ClusterError(
        'FRAME_WRONG_CLUSTER',
        `frame is for cluster ${JSON.stringify(cluster)}, this member is in ${JSON.stringify(options.clusterName)}`,
      );
    }
    checkUnknownKeys(env, envelopeKeys, 'frame');
    return readMessage(field(env, 'msg', 'frame'));
  });
}

function readMessage(value: unknown): Message {
  const path = 'msg';
  const obj = readObject(value, path);
  checkUnknownKeys(obj, messageKeys, path);
  const type = field(obj, 'type', path);
  if (typeof type !== 'string' || !messageTypeSet.has(type)) {
    throw new ShapeError(`msg.type must be a raft message type, got ${describe(type)}`);
  }
  if (LocalMessageTypes.has(type as MessageType)) {
    throw new ShapeError(`msg.type ${type} is local to a member and never travels between members`);
  }
  const m: Message = {
    type: type as MessageType,
    to: readId(obj, 'to', path),
    from: readId(obj, 'from', path),
    term: readNat(obj, 'term', path),
    logTerm: readNat(obj, 'logTerm', path),
    index: readNat(obj, 'index', path),
    entries: [],
    commit: readNat(obj, 'commit', path),
    reject: readBool(obj, 'reject', path),
    rejectHint: readNat(obj, 'rejectHint', path),
    context: readString(obj, 'context', path, MAX_CONTEXT_LENGTH),
  };
  m.entries = readEntries(field(obj, 'entries', path), m);
  const hasSnapshot = Object.prototype.hasOwnProperty.call(obj, 'snapshot');
  if (m.type === 'MsgSnap') {
    m.snapshot = readEntryId(field(obj, 'snapshot', path), 'msg.snapshot');
  } else if (hasSnapshot) {
    throw new ShapeError(`msg.snapshot is only allowed on MsgSnap, not on ${m.type}`);
  }
  if (Object.prototype.hasOwnProperty.call(obj, 'confState')) {
    if (m.type !== 'MsgSnap') throw new ShapeError(`msg.confState is only allowed on MsgSnap, not on ${m.type}`);
    m.confState = readConfState(obj.confState, 'msg.confState');
  }
  return m;
}

function readEntries(value: unknown, m: Message): Entry[] {
  if (!Array.isArray(value)) throw new ShapeError(`msg.entries must be an array, got ${describe(value)}`);
  if (value.length === 0) return [];
  if (m.type !== 'MsgApp') throw new ShapeError(`msg.entries must be empty on ${m.type}`);
  if (value.length > MAX_ENTRIES_PER_MESSAGE) {
    throw new ShapeError(`msg.entries holds ${value.length} entries, at most ${MAX_ENTRIES_PER_MESSAGE} are allowed`);
  }
  const entries: Entry[] = [];
  // MsgApp entries follow the (index, logTerm) they are appended after: contiguous, terms never fall.
  let expectedIndex = m.index + 1;
  let prevTerm = m.logTerm;
  for (let i = 0; i < value.length; i++) {
    const e = readEntry(value[i], `msg.entries[${i}]`);
    if (e.index !== expectedIndex) {
      throw new ShapeError(`msg.entries[${i}].index is ${e.index}, expected ${expectedIndex} (entries must be contiguous)`);
    }
    if (e.term < prevTerm) {
      throw new ShapeError(`msg.entries[${i}].term ${e.term} is below the previous term ${prevTerm}`);
    }
    entries.push(e);
    expectedIndex++;
    prevTerm = e.term;
  }
  return entries;
}

/** Runs a shape check and turns a ShapeError into a ClusterError with `code`. */
export function wrapShape<T>(code: ClusterErrorCode, fn: () => T, prefix = ''): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ShapeError) throw new ClusterError(code, prefix + err.message);
    throw err;
  }
}

// ---- membership: conf-change entries and ConfState ----

const confChangeTypes: ReadonlySet<string> = new Set<ConfChangeType>(['AddNode', 'AddLearnerNode', 'RemoveNode', 'UpdateNode']);
const confChangeTransitions: ReadonlySet<string> = new Set<ConfChangeTransition>(['Auto', 'JointImplicit', 'JointExplicit']);
const confChangeKeys: ReadonlySet<string> = new Set(['transition', 'changes']);
const confChangeSingleKeys: ReadonlySet<string> = new Set(['type', 'nodeId']);
const confStateKeys: ReadonlySet<string> = new Set(['voters', 'votersOutgoing', 'learners', 'learnersNext', 'autoLeave']);

export function encodeEntry(e: Entry): Record<string, unknown> {
  if (!e.confChange) return { index: e.index, term: e.term };
  return { index: e.index, term: e.term, confChange: encodeConfChange(e.confChange) };
}

function encodeConfChange(cc: ConfChangeV2): Record<string, unknown> {
  return { transition: cc.transition, changes: cc.changes.map((c) => ({ type: c.type, nodeId: c.nodeId })) };
}

export function encodeConfState(cs: ConfState): Record<string, unknown> {
  return {
    voters: [...cs.voters],
    votersOutgoing: [...cs.votersOutgoing],
    learners: [...cs.learners],
    learnersNext: [...cs.learnersNext],
    autoLeave: cs.autoLeave,
  };
}

/** {index, term} and, on a configuration-change entry, its confChange. Throws ShapeError. */
export function readEntry(value: unknown, path: string): Entry {
  const id = readEntryId(value, path);
  const obj = value as JsonObject;
  if (!Object.prototype.hasOwnProperty.call(obj, 'confChange')) return id;
  return { index: id.index, term: id.term, confChange: readConfChange(obj.confChange, `${path}.confChange`) };
}

/** Shape only: whether the change applies to the configuration is raft's to judge. */
export function readConfChange(value: unknown, path: string): ConfChangeV2 {
  const obj = readObject(value, path);
  checkUnknownKeys(obj, confChangeKeys, path);
  const transition = field(obj, 'transition', path);
  if (typeof transition !== 'string' || !confChangeTransitions.has(transition)) {
    throw new ShapeError(`${path}.transition must be one of ${[...confChangeTransitions].join(', ')}, got ${describe(transition)}`);
  }
  const raw = field(obj, 'changes', path);
  if (!Array.isArray(raw) || raw.length > MAX_CONF_CHANGES) {
    throw new ShapeError(`${path}.changes must be an array of at most ${MAX_CONF_CHANGES} changes, got ${describe(raw)}`);
  }
  const changes: ConfChangeSingle[] = raw.map((c, i) => {
    const p = `${path}.changes[${i}]`;
    const o = readObject(c, p);
    checkUnknownKeys(o, confChangeSingleKeys, p);
    const type = field(o, 'type', p);
    if (typeof type !== 'string' || !confChangeTypes.has(type)) {
      throw new ShapeError(`${p}.type must be one of ${[...confChangeTypes].join(', ')}, got ${describe(type)}`);
    }
    return { type: type as ConfChangeType, nodeId: readId(o, 'nodeId', p) };
  });
  return { transition: transition as ConfChangeTransition, changes };
}

/** Sorted, distinct member ids in each list; whether the lists fit together is raft's to judge. */
export function readConfState(value: unknown, path: string): ConfState {
  const obj = readObject(value, path);
  checkUnknownKeys(obj, confStateKeys, path);
  const ids = (key: string): string[] => {
    const raw = field(obj, key, path);
    if (!Array.isArray(raw) || raw.length > MAX_CONF_MEMBERS) {
      throw new ShapeError(`${path}.${key} must be an array of at most ${MAX_CONF_MEMBERS} member ids, got ${describe(raw)}`);
    }
    raw.forEach((id, i) => {
      if (!isValidMemberId(id)) throw new ShapeError(`${path}.${key}[${i}] must be a member id, got ${describe(id)}`);
    });
    const out = [...new Set(raw as string[])].sort();
    if (out.length !== raw.length) throw new ShapeError(`${path}.${key} repeats a member id`);
    return out;
  };
  return {
    voters: ids('voters'),
    votersOutgoing: ids('votersOutgoing'),
    learners: ids('learners'),
    learnersNext: ids('learnersNext'),
    autoLeave: readBool(obj, 'autoLeave', path),
  };
}
