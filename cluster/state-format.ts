/**
 * The bytes of a state file, every version this build reads.
 *
 * Version 3 (written): two slots of equal size, one after the other, each one line
 *
 *   {"format":"raft-elector-state","version":3,"seq":N,"sha256":"<hex>","identity":{...},"state":{...}}
 *
 * padded with spaces to the slot size and ended by "\n". sha256 covers
 * JSON.stringify({seq, identity, state}) as written. A save overwrites the slot that does not
 * hold the newest durable state, so a torn write damages only that slot; the reader takes the
 * valid slot with the highest seq (etcd's WAL likewise relies on a checksum per record, not on
 * a rename, and syncs with one fdatasync).
 *
 * Version 2: one JSON document {"format","version":2,"sha256","identity","state"}, sha256 over
 * JSON.stringify({identity, state}). Version 1: the same without identity, sha256 over
 * JSON.stringify(state). Both are still read and adopted; the next save writes version 3.
 */
import { createHash } from 'node:crypto';
import type { DurableState, Entry, EntryId } from '../raft/index.js';
import { ClusterError } from './errors.js';
import {
  ShapeError,
  checkUnknownKeys,
  describe,
  field,
  isValidMemberId,
  encodeConfState,
  encodeEntry,
  readConfState,
  readEntry,
  readEntryId,
  readNat,
  readObject,
  MAX_ID_LENGTH,
} from './codec.js';

export const STATE_FILE_FORMAT = 'raft-elector-state';
/** The version save() writes: two checksummed slots. */
export const STATE_FILE_VERSION = 3;
/** One whole-file JSON document with identity; read and adopted, never written. */
export const STATE_FILE_VERSION_NO_SLOTS = 2;
/** The landed format without identity; read and adopted, never written. */
export const STATE_FILE_VERSION_NO_IDENTITY = 1;
/** A state file this large is not ours: the elector's log holds a few thousand tiny entries at most. */
export const MAX_STATE_FILE_BYTES = 64 * 1024 * 1024;
/** The smallest slot: one page, so a slot write touches one or two file-system blocks. */
export const MIN_SLOT_BYTES = 4096;
const MAX_GROUP_LENGTH = 253;
const MAX_POD_UID_LENGTH = 64;
const SLOT_HEAD = /^\{"format":"raft-elector-state","version":(\d{1,9}),"seq":/;

/** Whose state a file holds. podUid is for issue 11 (a member is pod name + pod UID). */
export interface StateIdentity {
  memberId: string;
  /** The cluster name the handshake uses (--cluster-name). */
  group: string;
  podUid?: string;
}

export interface StateFileContents {
  version: number;
  /** Undefined in a version-1 file. */
  identity: StateIdentity | undefined;
  state: DurableState;
}

/** A version-3 file as read: the newest valid slot, and why the other one was not used (if it was not). */
export interface SlotFileContents extends StateFileContents {
  seq: number;
  slot: 0 | 1;
  slotBytes: number;
  /** Set when the other slot is damaged: a save was interrupted (the newest valid slot is the truth). */
  otherSlotDamage?: string;
}

function checksum(stateJson: string): string {
  return createHash('sha256').update(stateJson, 'utf8').digest('hex');
}

function plainState(state: DurableState): Record<string, unknown> {
  return {
    hardState: { term: state.hardState.term, vote: state.hardState.vote, commit: state.hardState.commit },
    snapshot: { index: state.snapshot.index, term: state.snapshot.term },
    ...(state.confState ? { confState: encodeConfState(state.confState) } : {}),
    entries: state.entries.map(encodeEntry),
  };
}

function plainIdentity(identity: StateIdentity): StateIdentity {
  const id: StateIdentity = { memberId: identity.memberId, group: identity.group };
  if (identity.podUid !== undefined) id.podUid = identity.podUid;
  return id;
}

/**
 * A whole-file text of an older version: version 2 with `identity`, version 1 without. Not
 * written by save(); for tests of the upgrade path and of damaged files.
 */
export function serializeState(state: DurableState, identity?: StateIdentity): string {
  const plain = plainState(state);
  if (!identity) {
    const stateJson = JSON.stringify(plain);
    return `{"format":"${STATE_FILE_FORMAT}","version":${STATE_FILE_VERSION_NO_IDENTITY},"sha256":"${checksum(stateJson)}","state":${stateJson}}\n`;
  }
  const id = plainIdentity(identity);
  const sum = checksum(JSON.stringify({ identity: id, state: plain }));
  return `{"format":"${STATE_FILE_FORMAT}","version":${STATE_FILE_VERSION_NO_SLOTS},"sha256":"${sum}","identity":${JSON.stringify(id)},"state":${JSON.stringify(plain)}}\n`;
}

/** One version-3 slot's line, without its padding. */
export function encodeSlot(seq: number, state: DurableState, identity: StateIdentity): string {
  const plain = plainState(state);
  const id = plainIdentity(identity);
  const sum = checksum(JSON.stringify({ seq, identity: id, state: plain }));
  return `{"format":"${STATE_FILE_FORMAT}","version":${STATE_FILE_VERSION},"seq":${seq},"sha256":"${sum}","identity":${JSON.stringify(id)},"state":${JSON.stringify(plain)}}`;
}

/** The slot size for a line of `lineBytes`: room to grow twice over, in whole pages. */
export function slotBytesFor(lineBytes: number): number {
  const want = Math.max(MIN_SLOT_BYTES, 2 * (lineBytes + 1));
  return Math.ceil(want / MIN_SLOT_BYTES) * MIN_SLOT_BYTES;
}

/** `line` padded with spaces to `slotBytes`, ending in "\n". The caller checks that it fits. */
export function slotBuffer(line: string, slotBytes: number): Buffer {
  const buf = Buffer.alloc(slotBytes, 0x20);
  const used = buf.write(line, 0, 'utf8');
  if (used !== Buffer.byteLength(line, 'utf8') || used >= slotBytes) throw new RangeError(`a ${used}-byte slot line does not fit ${slotBytes} bytes`);
  buf[slotBytes - 1] = 0x0a;
  return buf;
}

/** True when `bytes` is laid out as version-3 (or later) slots rather than one JSON document. */
export function isSlotFile(bytes: Buffer): boolean {
  if (bytes.length === 0 || bytes.length % 2 !== 0) return false;
  const half = bytes.length / 2;
  return SLOT_HEAD.test(bytes.toString('latin1', 0, 64)) || SLOT_HEAD.test(bytes.toString('latin1', half, half + 64));
}

function corruptError(filePath: string, what: string): ClusterError {
  return new ClusterError(
    'STATE_FILE_CORRUPT',
    `state file ${filePath} is corrupt: ${what}; restore it from a backup or, if this member's votes may be forgotten safely, move it away`,
  );
}

function newerVersionError(filePath: string, version: number): ClusterError {
  // Not damage: advising to move it away would throw away this member's votes.
  return new ClusterError(
    'STATE_FILE_CORRUPT',
    `state file ${filePath} has format version ${version}, written by a newer raft-elector (this build reads versions 1 to ${STATE_FILE_VERSION}); run that version or newer, and keep the file`,
  );
}

/** Any version: the newest state a file holds. Throws STATE_FILE_CORRUPT naming `filePath` and the fault. */
export function parseStateBytes(bytes: Buffer, filePath: string): StateFileContents | SlotFileContents {
  if (isSlotFile(bytes)) return parseSlotFile(bytes, filePath);
  return parseStateFileContents(bytes.toString('utf8'), filePath);
}

/** A version-3 file: the valid slot with the highest seq; both damaged is corruption. */
export function parseSlotFile(bytes: Buffer, filePath: string): SlotFileContents {
  const slotBytes = bytes.length / 2;
  const found: Array<SlotFileContents | string> = [];
  for (const slot of [0, 1] as const) {
    const text = bytes.toString('utf8', slot * slotBytes, (slot + 1) * slotBytes);
    const head = SLOT_HEAD.exec(text);
    if (head && Number(head[1]) > STATE_FILE_VERSION) throw newerVersionError(filePath, Number(head[1]));
    try {
      found.push({ ...parseSlot(text.trimEnd()), slot, slotBytes });
    } catch (err) {
      if (!(err instanceof ShapeError)) throw err;
      found.push(`slot ${slot}: ${err.message}`);
    }
  }
  const valid = found.filter((f): f is SlotFileContents => typeof f !== 'string');
  const damage = found.filter((f): f is string => typeof f === 'string');
  if (valid.length === 0) throw corruptError(filePath, `both slots are damaged (${damage.join('; ')})`);
  const newest = valid.reduce((a, b) => (b.seq > a.seq ? b : a));
  return damage[0] !== undefined ? { ...newest, otherSlotDamage: damage[0] } : newest;
}

function parseSlot(line: string): Omit<SlotFileContents, 'slot' | 'slotBytes'> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch (err) {
    throw new ShapeError(`not valid JSON (${(err as Error).message})`);
  }
  const doc = readObject(parsed, 'slot');
  const format = field(doc, 'format', 'slot');
  if (format !== STATE_FILE_FORMAT) throw new ShapeError(`slot.format must be "${STATE_FILE_FORMAT}", got ${describe(format)}`);
  const version = field(doc, 'version', 'slot');
  if (version !== STATE_FILE_VERSION) throw new ShapeError(`slot.version must be ${STATE_FILE_VERSION}, got ${describe(version)}`);
  const seq = readNat(doc, 'seq', 'slot');
  const sum = field(doc, 'sha256', 'slot');
  if (typeof sum !== 'string') throw new ShapeError(`slot.sha256 must be a string, got ${describe(sum)}`);
  const rawIdentity = field(doc, 'identity', 'slot');
  const rawState = field(doc, 'state', 'slot');
  if (checksum(JSON.stringify({ seq, identity: rawIdentity, state: rawState })) !== sum) {
    throw new ShapeError('checksum mismatch (the slot was torn or edited)');
  }
  return { version, seq, identity: readIdentity(rawIdentity), state: validateDurableState(rawState) };
}

/** Parses and checks a whole-file (version 1 or 2) text; throws STATE_FILE_CORRUPT naming `filePath` and the fault. */
export function parseStateFile(text: string, filePath: string): DurableState {
  return parseStateFileContents(text, filePath).state;
}

const identityKeys: ReadonlySet<string> = new Set(['memberId', 'group', 'podUid']);

function readIdentity(value: unknown): StateIdentity {
  const o = readObject(value, 'file.identity');
  checkUnknownKeys(o, identityKeys, 'file.identity');
  const memberId = field(o, 'memberId', 'file.identity');
  if (!isValidMemberId(memberId)) throw new ShapeError(`file.identity.memberId must be a member id, got ${describe(memberId)}`);
  const group = field(o, 'group', 'file.identity');
  if (typeof group !== 'string' || group === '' || group.length > MAX_GROUP_LENGTH) {
    throw new ShapeError(`file.identity.group must be a group name (1 to ${MAX_GROUP_LENGTH} characters), got ${describe(group)}`);
  }
  const identity: StateIdentity = { memberId, group };
  if (Object.prototype.hasOwnProperty.call(o, 'podUid')) {
    const podUid = o.podUid;
    if (typeof podUid !== 'string' || podUid === '' || podUid.length > MAX_POD_UID_LENGTH) {
      throw new ShapeError(`file.identity.podUid must be a pod UID (1 to ${MAX_POD_UID_LENGTH} characters), got ${describe(podUid)}`);
    }
    identity.podUid = podUid;
  }
  return identity;
}

/** parseStateFile, also returning the format version and the recorded identity (none in version 1). */
export function parseStateFileContents(text: string, filePath: string): StateFileContents {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw corruptError(filePath, `not valid JSON (${(err as Error).message})`);
  }
  try {
    const doc = readObject(parsed, 'file');
    const format = field(doc, 'format', 'file');
    if (format !== STATE_FILE_FORMAT) throw new ShapeError(`file.format must be "${STATE_FILE_FORMAT}", got ${describe(format)}`);
    const version = field(doc, 'version', 'file');
    if (typeof version === 'number' && Number.isSafeInteger(version) && version > STATE_FILE_VERSION) {
      throw newerVersionError(filePath, version);
    }
    if (version !== STATE_FILE_VERSION_NO_SLOTS && version !== STATE_FILE_VERSION_NO_IDENTITY) {
      throw new ShapeError(`version ${describe(version)} is not supported as one JSON document (this build reads versions 1 to ${STATE_FILE_VERSION})`);
    }
    const sum = field(doc, 'sha256', 'file');
    if (typeof sum !== 'string') throw new ShapeError(`file.sha256 must be a string, got ${describe(sum)}`);
    const rawState = field(doc, 'state', 'file');
    if (version === STATE_FILE_VERSION_NO_IDENTITY) {
      if (checksum(JSON.stringify(rawState)) !== sum) throw new ShapeError('checksum mismatch (the file was torn or edited)');
      return { version, identity: undefined, state: validateDurableState(rawState) };
    }
    const rawIdentity = field(doc, 'identity', 'file');
    if (checksum(JSON.stringify({ identity: rawIdentity, state: rawState })) !== sum) {
      throw new ShapeError('checksum mismatch (the file was torn or edited)');
    }
    return { version, identity: readIdentity(rawIdentity), state: validateDurableState(rawState) };
  } catch (err) {
    if (err instanceof ShapeError) throw corruptError(filePath, err.message);
    throw err;
  }
}

const stateKeys: ReadonlySet<string> = new Set(['hardState', 'snapshot', 'confState', 'entries']);
const hardStateKeys: ReadonlySet<string> = new Set(['term', 'vote', 'commit']);

/**
 * The invariants raft's log relies on (raft/log.ts checkInvariants), checked here so a
 * bad file is reported as such and not as a core crash: entries follow the compaction
 * marker contiguously with non-decreasing terms, none above the current term, and
 * commit lies within the log. Throws ShapeError.
 */
export function validateDurableState(value: unknown): DurableState {
  const s = readObject(value, 'state');
  checkUnknownKeys(s, stateKeys, 'state');
  const hs = readObject(field(s, 'hardState', 'state'), 'state.hardState');
  checkUnknownKeys(hs, hardStateKeys, 'state.hardState');
  const term = readNat(hs, 'term', 'state.hardState');
  const vote = field(hs, 'vote', 'state.hardState');
  if (vote !== '' && !isValidMemberId(vote)) {
    throw new ShapeError(`state.hardState.vote must be "" or a member id (at most ${MAX_ID_LENGTH} characters), got ${describe(vote)}`);
  }
  const commit = readNat(hs, 'commit', 'state.hardState');
  const snapshot: EntryId = readEntryId(field(s, 'snapshot', 'state'), 'state.snapshot');
  if (snapshot.term > term) throw new ShapeError(`state.snapshot.term ${snapshot.term} is above the current term ${term}`);
  const rawEntries = field(s, 'entries', 'state');
  if (!Array.isArray(rawEntries)) throw new ShapeError(`state.entries must be an array, got ${describe(rawEntries)}`);
  const entries: Entry[] = [];
  let expected = snapshot.index + 1;
  let prevTerm = snapshot.term;
  for (let i = 0; i < rawEntries.length; i++) {
    const e = readEntry(rawEntries[i], `state.entries[${i}]`);
    if (e.index !== expected) throw new ShapeError(`state.entries[${i}].index is ${e.index}, expected ${expected} (entries must be contiguous)`);
    if (e.term < prevTerm) throw new ShapeError(`state.entries[${i}].term ${e.term} is below the previous term ${prevTerm}`);
    if (e.term > term) throw new ShapeError(`state.entries[${i}].term ${e.term} is above the current term ${term}`);
    entries.push(e);
    expected++;
    prevTerm = e.term;
  }
  const last = snapshot.index + entries.length;
  if (commit < snapshot.index || commit > last) {
    throw new ShapeError(`state.hardState.commit ${commit} lies outside the log [${snapshot.index}, ${last}]`);
  }
  const state: DurableState = { hardState: { term, vote, commit }, snapshot, entries };
  // Absent in files written before membership changes: the configured voters apply.
  if (Object.prototype.hasOwnProperty.call(s, 'confState')) state.confState = readConfState(s.confState, 'state.confState');
  return state;
}
