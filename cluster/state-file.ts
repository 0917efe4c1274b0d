/**
 * The durable raft state of one member: a single JSON file in the data dir,
 *
 *   {"format":"raft-elector-state","version":2,"sha256":"<hex>","identity":{memberId, group, podUid?},"state":{hardState, snapshot, confState?, entries}}
 *
 * where sha256 covers JSON.stringify({identity, state}) as written, so a torn write or a
 * hand edit is detected. The identity says whose votes these are: a file of another member
 * or group refuses to load (copying b's file to c must not make c vote as b did). Version 1
 * (no identity; sha256 over JSON.stringify(state)) is still read and adopted: the next save
 * records the identity.
 *
 * A save writes a temp file beside the file (beside its target when it is a symlink, so the
 * link stays a link), fsyncs it, renames it over the old file and fsyncs the directory: after
 * a crash the file holds either the old or the new state, never a mix (the rename is atomic on
 * POSIX file systems). A damaged file stops the member with a typed error naming the file:
 * silently starting fresh could let it vote twice in a term.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { devNull } from 'node:os';
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { DurableState, Entry, EntryId } from '../raft/index.js';
import type { StateStore } from './interfaces.js';
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
import { parseMemberId } from './member-id.js';

export const STATE_FILE_NAME = 'raft-state.json';
export const STATE_FILE_FORMAT = 'raft-elector-state';
export const STATE_FILE_VERSION = 2;
/** The landed format without identity; read and adopted, never written. */
export const STATE_FILE_VERSION_NO_IDENTITY = 1;
/** A save that hits EMFILE/ENFILE frees the spare fd and tries again, this many times in all. */
export const MAX_SAVE_ATTEMPTS = 3;
const MAX_GROUP_LENGTH = 253;
const MAX_POD_UID_LENGTH = 64;

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
/** A state file this large is not ours: the elector's log holds a few thousand tiny entries at most. */
export const MAX_STATE_FILE_BYTES = 64 * 1024 * 1024;
const TEMP_SUFFIX = '.tmp';

export class StateFile implements StateStore {
  readonly filePath: string;
  private readonly log: Logger;
  private dirReady = false;
  /** Held so a save that finds the fd table full can free one and still reach the disk (the accept trick). */
  private spareFd: number | undefined;

  constructor(
    readonly dataDir: string,
    logger: Logger,
    readonly identity: StateIdentity,
  ) {
    this.filePath = path.join(dataDir, STATE_FILE_NAME);
    this.log = logger.child({ component: 'state-file', file: this.filePath });
  }

  load(): DurableState | undefined {
    this.ensureDir();
    this.reserveSpareFd();
    this.removeStaleTemp();
    let text: string;
    try {
      const stat = fs.statSync(this.filePath);
      if (!stat.isFile()) throw new ClusterError('STATE_FILE_UNREADABLE', `state file ${this.filePath} is not a regular file`);
      if (stat.size > MAX_STATE_FILE_BYTES) {
        throw new ClusterError(
          'STATE_FILE_CORRUPT',
          `state file ${this.filePath} is corrupt: ${stat.size} bytes, more than the ${MAX_STATE_FILE_BYTES} a state file can hold`,
        );
      }
      text = fs.readFileSync(this.filePath, 'utf8');
    } catch (err) {
      if (err instanceof ClusterError) throw err;
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        // A link whose target is gone means the state is missing, not absent: starting fresh could vote twice.
        if (isSymlink(this.filePath)) {
          throw new ClusterError(
            'STATE_FILE_UNREADABLE',
            `state file ${this.filePath} is a symlink to ${JSON.stringify(readLinkOrUnknown(this.filePath))}, which does not exist (an unmounted volume?)`,
            { cause: err },
          );
        }
        this.log.info('no state file: starting as a fresh member');
        return undefined;
      }
      throw new ClusterError('STATE_FILE_UNREADABLE', `state file ${this.filePath} cannot be read: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const contents = parseStateFileContents(text, this.filePath);
    const state = contents.state;
    const staleUid = otherIncarnation(contents.identity, this.identity);
    if (staleUid !== undefined) {
      this.moveAside(staleUid, contents.identity);
      return undefined;
    }
    if (contents.identity === undefined) {
      this.log.warn(
        { version: contents.version, identity: this.identity },
        'state file records no identity (written by an older raft-elector): adopting it as this member\'s; the next save records the identity',
      );
    } else {
      const mismatch = identityMismatch(contents.identity, this.identity);
      if (mismatch) {
        throw new ClusterError(
          'STATE_FILE_IDENTITY_MISMATCH',
          `state file ${this.filePath} belongs to ${describeIdentity(contents.identity)}, but this process is ${describeIdentity(this.identity)} (${mismatch}); give each member its own --data-dir`,
        );
      }
    }
    this.log.info(
      { term: state.hardState.term, vote: state.hardState.vote, commit: state.hardState.commit, lastIndex: lastIndex(state) },
      'loaded raft state',
    );
    return state;
  }

  /**
   * A file of another incarnation of this pod holds votes cast under another id: reusing it
   * could not make this one vote twice, but its log names a member that is gone. Kept for
   * inspection, never read again; this member starts as a fresh joiner.
   */
  private moveAside(staleUid: string, recorded: StateIdentity | undefined): void {
    let target = `${this.filePath}.stale-${staleUid}`;
    if (fs.existsSync(target)) target = `${target}-${Date.now()}`;
    try {
      fs.renameSync(this.filePath, target);
      fsyncDir(path.dirname(this.filePath));
    } catch (err) {
      throw new ClusterError('STATE_FILE_UNREADABLE', `state file ${this.filePath} of another pod incarnation cannot be moved aside to ${target}: ${(err as Error).message}`, { cause: err });
    }
    this.log.warn(
      { recorded: recorded ?? null, identity: this.identity, movedTo: target },
      'state file belongs to another incarnation of this pod (another pod UID): moved aside; starting as a fresh joiner',
    );
  }

  save(state: DurableState): void {
    try {
      validateDurableState(state);
    } catch (err) {
      if (err instanceof ShapeError) {
        throw new ClusterError('STATE_INVALID', `refusing to write an invalid state to ${this.filePath}: ${err.message}`);
      }
      throw err;
    }
    this.ensureDir();
    const text = serializeState(state, this.identity);
    for (let attempt = 1; ; attempt++) {
      try {
        this.writeOnce(text);
        break;
      } catch (err) {
        const code = ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code;
        if ((code !== 'EMFILE' && code !== 'ENFILE') || attempt >= MAX_SAVE_ATTEMPTS) throw err;
        const freed = this.releaseSpareFd();
        this.log.warn({ code, attempt, freedSpareFd: freed }, 'out of file descriptors while saving state: retrying');
      }
    }
    this.reserveSpareFd();
  }

  private writeOnce(text: string): void {
    // Beside the link's target, so a symlinked state file stays a symlink.
    const target = this.resolvedPath();
    const tempPath = target + TEMP_SUFFIX;
    let step = 'open the temp file';
    let renamed = false;
    try {
      const fd = fs.openSync(tempPath, 'w', 0o600);
      try {
        step = 'write the temp file';
        fs.writeFileSync(fd, text, 'utf8');
        step = 'fsync the temp file';
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      step = 'rename the temp file into place';
      fs.renameSync(tempPath, target);
      renamed = true;
      step = 'fsync the data dir';
      fsyncDir(path.dirname(target));
    } catch (err) {
      // A half-written temp file (ENOSPC) only takes space the next save needs.
      if (!renamed) removeQuietly(tempPath);
      throw new ClusterError('STATE_FILE_WRITE_FAILED', `cannot save state to ${this.filePath}: failed to ${step}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  /** The file itself, or the end of its symlink chain; load() refuses a dangling link first. */
  private resolvedPath(): string {
    try {
      return fs.realpathSync(this.filePath);
    } catch {
      return this.filePath;
    }
  }

  private reserveSpareFd(): void {
    if (this.spareFd !== undefined) return;
    try {
      this.spareFd = fs.openSync(devNull, 'r');
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'cannot hold a spare file descriptor for state writes');
    }
  }

  private releaseSpareFd(): boolean {
    if (this.spareFd === undefined) return false;
    fs.closeSync(this.spareFd);
    this.spareFd = undefined;
    return true;
  }

  private ensureDir(): void {
    if (this.dirReady) return;
    try {
      fs.mkdirSync(this.dataDir, { recursive: true, mode: 0o700 });
      if (!fs.statSync(this.dataDir).isDirectory()) throw new Error('not a directory');
    } catch (err) {
      throw new ClusterError('STATE_FILE_UNREADABLE', `data dir ${this.dataDir} is not usable: ${(err as Error).message}`, {
        cause: err,
      });
    }
    this.dirReady = true;
  }

  /** A temp file is left only by a crash before its rename: the real file is still the truth. */
  private removeStaleTemp(): void {
    const temps = [...new Set([this.filePath + TEMP_SUFFIX, this.resolvedPath() + TEMP_SUFFIX])];
    for (const temp of temps) {
      try {
        fs.unlinkSync(temp);
        this.log.warn({ temp }, 'removed a temp state file left by an interrupted save');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
          this.log.warn({ temp, err: (err as Error).message }, 'cannot remove a stale temp state file');
        }
      }
    }
  }
}

/**
 * The pod UID (or 'legacy' for a file without one) of another incarnation of the configured
 * pod, when `configured` is an incarnation (has a podUid) and the file is of the same group and
 * pod name but not of this UID; undefined otherwise (same incarnation, plain ids, or a file of
 * another member: that one is refused, not moved).
 */
export function otherIncarnation(recorded: StateIdentity | undefined, configured: StateIdentity): string | undefined {
  if (configured.podUid === undefined) return undefined;
  // A version-1 file predates identities: it was written under the plain pod name.
  if (recorded === undefined) return 'legacy';
  if (recorded.group !== configured.group) return undefined;
  const rec = parseMemberId(recorded.memberId);
  const conf = parseMemberId(configured.memberId);
  if (rec.podName !== conf.podName) return undefined;
  const recordedUid = recorded.podUid ?? rec.podUid;
  if (recordedUid === configured.podUid) return undefined;
  return recordedUid ?? 'legacy';
}

/** Why `recorded` is not `configured`, or undefined when they agree (a pod UID only counts where both have one). */
export function identityMismatch(recorded: StateIdentity, configured: StateIdentity): string | undefined {
  const diffs: string[] = [];
  if (recorded.memberId !== configured.memberId) diffs.push('the member id differs: --id, or POD_NAME in-cluster');
  if (recorded.group !== configured.group) diffs.push('the group differs: --cluster-name');
  if (recorded.podUid !== undefined && configured.podUid !== undefined && recorded.podUid !== configured.podUid) {
    diffs.push('the pod UID differs');
  }
  return diffs.length > 0 ? diffs.join('; ') : undefined;
}

function describeIdentity(identity: StateIdentity): string {
  const uid = identity.podUid !== undefined ? ` (pod UID ${identity.podUid})` : '';
  return `member ${JSON.stringify(identity.memberId)} of group ${JSON.stringify(identity.group)}${uid}`;
}

function isSymlink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

function readLinkOrUnknown(p: string): string {
  try {
    return fs.readlinkSync(p);
  } catch {
    return '?';
  }
}

function removeQuietly(p: string): void {
  try {
    fs.unlinkSync(p);
  } catch {
    // Nothing was created, or it is already gone; load() removes any leftover too.
  }
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function lastIndex(state: DurableState): number {
  return state.snapshot.index + state.entries.length;
}

function checksum(stateJson: string): string {
  return createHash('sha256').update(stateJson, 'utf8').digest('hex');
}

/**
 * The whole file's text for `state`, recording `identity`; without one, the version-1 text the
 * landed raft-elector wrote (for tests of the upgrade path and of damaged files).
 */
export function serializeState(state: DurableState, identity?: StateIdentity): string {
  const plain = {
    hardState: { term: state.hardState.term, vote: state.hardState.vote, commit: state.hardState.commit },
    snapshot: { index: state.snapshot.index, term: state.snapshot.term },
    ...(state.confState ? { confState: encodeConfState(state.confState) } : {}),
    entries: state.entries.map(encodeEntry),
  };
  if (!identity) {
    const stateJson = JSON.stringify(plain);
    return `{"format":"${STATE_FILE_FORMAT}","version":${STATE_FILE_VERSION_NO_IDENTITY},"sha256":"${checksum(stateJson)}","state":${stateJson}}\n`;
  }
  const id: StateIdentity = { memberId: identity.memberId, group: identity.group };
  if (identity.podUid !== undefined) id.podUid = identity.podUid;
  const sum = checksum(JSON.stringify({ identity: id, state: plain }));
  return `{"format":"${STATE_FILE_FORMAT}","version":${STATE_FILE_VERSION},"sha256":"${sum}","identity":${JSON.stringify(id)},"state":${JSON.stringify(plain)}}\n`;
}

/** Parses and checks a state file's text; throws STATE_FILE_CORRUPT naming `filePath` and the fault. */
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
  const corrupt = (what: string): ClusterError =>
    new ClusterError('STATE_FILE_CORRUPT', `state file ${filePath} is corrupt: ${what}; restore it from a backup or, if this member's votes may be forgotten safely, move it away`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw corrupt(`not valid JSON (${(err as Error).message})`);
  }
  try {
    const doc = readObject(parsed, 'file');
    const format = field(doc, 'format', 'file');
    if (format !== STATE_FILE_FORMAT) throw new ShapeError(`file.format must be "${STATE_FILE_FORMAT}", got ${describe(format)}`);
    const version = field(doc, 'version', 'file');
    if (typeof version === 'number' && Number.isSafeInteger(version) && version > STATE_FILE_VERSION) {
      // Not damage: advising to move it away would throw away this member's votes.
      throw new ClusterError(
        'STATE_FILE_CORRUPT',
        `state file ${filePath} has format version ${version}, written by a newer raft-elector (this build reads versions 1 to ${STATE_FILE_VERSION}); run that version or newer, and keep the file`,
      );
    }
    if (version !== STATE_FILE_VERSION && version !== STATE_FILE_VERSION_NO_IDENTITY) {
      throw new ShapeError(`version ${describe(version)} is not supported (this build reads versions 1 to ${STATE_FILE_VERSION})`);
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
    if (err instanceof ShapeError) throw corrupt(err.message);
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
