/**
 * The durable raft state of one member: one file in the data dir (format: state-format.ts).
 * The identity it records says whose votes these are: a file of another member or group
 * refuses to load (copying b's file to c must not make c vote as b did). Files of versions 1
 * and 2 (one JSON document) are still read and adopted: the next save writes version 3.
 *
 * A save overwrites, in place, the one of the file's two slots that does not hold the newest
 * durable state, then fdatasyncs: one sync, no metadata change (the file keeps its size),
 * where a rename costs a journal commit behind every other process's metadata. A crash
 * mid-write damages only that slot, and the reader takes the valid slot with the highest
 * sequence number: the old state or the new one, never a mix. A save with `sync: false`
 * (etcd's MustSync rule: only the commit index changed) writes to the same non-durable slot
 * without the sync, so the durable slot is never overwritten before another slot is durable.
 * The file is created, and regrown when a state outgrows its slot, as before: a temp file
 * beside it (beside its target when it is a symlink, so the link stays a link), fsynced,
 * renamed over it, the directory fsynced. A damaged file stops the member with a typed error
 * naming the file: silently starting fresh could let it vote twice in a term.
 */
import * as fs from 'node:fs';
import { devNull } from 'node:os';
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { DurableState } from '../raft/index.js';
import type { SaveOptions, StateStore } from './interfaces.js';
import { ClusterError } from './errors.js';
import { ShapeError } from './codec.js';
import { parseMemberId } from './member-id.js';
import {
  MAX_STATE_FILE_BYTES,
  encodeSlot,
  parseStateBytes,
  slotBuffer,
  slotBytesFor,
  validateDurableState,
  type StateIdentity,
} from './state-format.js';

export {
  MAX_STATE_FILE_BYTES,
  STATE_FILE_FORMAT,
  STATE_FILE_VERSION,
  STATE_FILE_VERSION_NO_IDENTITY,
  STATE_FILE_VERSION_NO_SLOTS,
  parseStateBytes,
  parseStateFile,
  parseStateFileContents,
  serializeState,
  validateDurableState,
  type StateFileContents,
  type StateIdentity,
} from './state-format.js';

export const STATE_FILE_NAME = 'raft-state.json';
/** A save that hits EMFILE/ENFILE frees the spare fd and tries again, this many times in all. */
export const MAX_SAVE_ATTEMPTS = 3;
const TEMP_SUFFIX = '.tmp';

/** The open version-3 file. */
interface SlotFile {
  /** Undefined when reopening after a create failed (EMFILE); the next save opens it. */
  fd: number | undefined;
  path: string;
  slotBytes: number;
  /** The slot holding the newest state known to be on disk: never overwritten before the other is. */
  durableSlot: 0 | 1;
}

export class StateFile implements StateStore {
  readonly filePath: string;
  private readonly log: Logger;
  private dirReady = false;
  /** Held so a save that finds the fd table full can free one and still reach the disk (the accept trick). */
  private spareFd: number | undefined;
  private slots: SlotFile | undefined;
  /** A background fdatasync runs on the slots' fd: nothing else may use or close it meanwhile. */
  private syncing = false;
  private closeWhenSynced = false;
  /** The sequence number of the last state read or written (0 before version 3). */
  private seq = 0;

  constructor(
    readonly dataDir: string,
    logger: Logger,
    readonly identity: StateIdentity,
  ) {
    this.filePath = path.join(dataDir, STATE_FILE_NAME);
    this.log = logger.child({ component: 'state-file', file: this.filePath });
  }

  load(): DurableState | undefined {
    this.refuseWhileSyncing('load');
    this.ensureDir();
    this.reserveSpareFd();
    this.removeStaleTemp();
    this.closeSlots();
    let bytes: Buffer;
    try {
      const stat = fs.statSync(this.filePath);
      if (!stat.isFile()) throw new ClusterError('STATE_FILE_UNREADABLE', `state file ${this.filePath} is not a regular file`);
      if (stat.size > MAX_STATE_FILE_BYTES) {
        throw new ClusterError(
          'STATE_FILE_CORRUPT',
          `state file ${this.filePath} is corrupt: ${stat.size} bytes, more than the ${MAX_STATE_FILE_BYTES} a state file can hold`,
        );
      }
      bytes = fs.readFileSync(this.filePath);
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
    const contents = parseStateBytes(bytes, this.filePath);
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
    const slotted = 'seq' in contents ? contents : undefined;
    if (slotted) {
      this.openSlots(slotted.slot, slotted.slotBytes);
      if (slotted.otherSlotDamage !== undefined) {
        this.log.warn({ damage: slotted.otherSlotDamage, seq: slotted.seq }, 'one slot of the state file was damaged by an interrupted save; using the newest valid one');
      }
    }
    this.seq = slotted?.seq ?? 0;
    // The newest slot may live in the page cache only: a predecessor's fdatasync that failed is
    // reported once, and its pages may be dropped unwritten while later syncs succeed. Write the
    // state again into the other slot and sync it, so nothing acted on is missing from the disk.
    if (slotted) this.save(state);
    this.log.info(
      { version: contents.version, seq: this.seq, term: state.hardState.term, vote: state.hardState.vote, commit: state.hardState.commit, lastIndex: lastIndex(state) },
      'loaded raft state',
    );
    return state;
  }

  /**
   * Makes what the page cache holds durable before any slot is overwritten: the newest slot may
   * be a `sync: false` write this process's predecessor never synced.
   */
  private openSlots(slot: 0 | 1, slotBytes: number): void {
    const target = this.resolvedPath();
    let fd: number | undefined;
    try {
      fd = fs.openSync(target, 'r+');
      fs.fdatasyncSync(fd);
    } catch (err) {
      if (fd !== undefined) fs.closeSync(fd);
      throw new ClusterError('STATE_FILE_UNREADABLE', `state file ${this.filePath} cannot be opened for writing: ${(err as Error).message}`, { cause: err });
    }
    this.slots = { fd, path: target, slotBytes, durableSlot: slot };
  }

  /** Closes the file held open for in-place saves (a stopped member needs it no more). */
  close(): void {
    // Closing the fd under a running fdatasync could sync (and report on) a file that reused its number.
    if (this.syncing) {
      this.closeWhenSynced = true;
      return;
    }
    this.closeSlots();
    this.releaseSpareFd();
  }

  /** The caller broke the one-at-a-time contract: refused before it touches the file. */
  private refuseWhileSyncing(what: string): void {
    if (this.syncing) throw new ClusterError('STATE_FILE_WRITE_FAILED', `cannot ${what} ${this.filePath}: a background save is still syncing it`);
  }

  private closeSlots(): void {
    if (this.slots?.fd !== undefined) fs.closeSync(this.slots.fd);
    this.slots = undefined;
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

  save(state: DurableState, options: SaveOptions = {}): void {
    this.refuseWhileSyncing('save state to');
    const { seq, line, lineBytes } = this.encode(state);
    for (let attempt = 1; ; attempt++) {
      try {
        if (this.slots && lineBytes < this.slots.slotBytes) this.writeSlot(this.slots, line, options.sync ?? true);
        else this.create(line);
        break;
      } catch (err) {
        const code = ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code;
        if ((code !== 'EMFILE' && code !== 'ENFILE') || attempt >= MAX_SAVE_ATTEMPTS) throw err;
        const freed = this.releaseSpareFd();
        this.log.warn({ code, attempt, freedSpareFd: freed }, 'out of file descriptors while saving state: retrying');
      }
    }
    this.seq = seq;
    this.reserveSpareFd();
  }

  /**
   * StateStore.saveInBackground: the pwrite now (into the page cache, so a killed process loses
   * nothing written), the fdatasync in libuv's thread pool, so the event loop answers and reads
   * on meanwhile. A save that must create or regrow the file, or reopen it, is done whole, now.
   */
  saveInBackground(state: DurableState, done: (err: Error | undefined) => void): void {
    let encoded: { seq: number; line: string; lineBytes: number };
    try {
      this.refuseWhileSyncing('save state to');
      encoded = this.encode(state);
    } catch (err) {
      queueMicrotask(() => done(err as Error));
      return;
    }
    const slots = this.slots;
    if (slots?.fd === undefined || encoded.lineBytes >= slots.slotBytes) {
      let failure: Error | undefined;
      try {
        this.save(state);
      } catch (err) {
        failure = err as Error;
      }
      queueMicrotask(() => done(failure));
      return;
    }
    const target = slots.durableSlot === 0 ? 1 : 0;
    const fd = slots.fd;
    try {
      writeAll(fd, slotBuffer(encoded.line, slots.slotBytes), target * slots.slotBytes);
    } catch (err) {
      const failure = this.writeFailed(`write slot ${target}`, err);
      queueMicrotask(() => done(failure));
      return;
    }
    this.seq = encoded.seq;
    this.syncing = true;
    fs.fdatasync(fd, (err) => {
      this.syncing = false;
      if (!err) slots.durableSlot = target;
      if (this.closeWhenSynced) {
        this.closeWhenSynced = false;
        this.close();
      } else {
        this.reserveSpareFd();
      }
      done(err ? this.writeFailed('fdatasync the state file', err) : undefined);
    });
  }

  /** The state checked and encoded as the next slot's line; throws STATE_INVALID. */
  private encode(state: DurableState): { seq: number; line: string; lineBytes: number } {
    try {
      validateDurableState(state);
    } catch (err) {
      if (err instanceof ShapeError) {
        throw new ClusterError('STATE_INVALID', `refusing to write an invalid state to ${this.filePath}: ${err.message}`);
      }
      throw err;
    }
    this.ensureDir();
    const seq = this.seq + 1;
    const line = encodeSlot(seq, state, this.identity);
    const lineBytes = Buffer.byteLength(line, 'utf8');
    if (2 * slotBytesFor(lineBytes) > MAX_STATE_FILE_BYTES && (!this.slots || lineBytes >= this.slots.slotBytes)) {
      throw new ClusterError('STATE_INVALID', `refusing to write a ${lineBytes}-byte state to ${this.filePath}: a state file holds at most ${MAX_STATE_FILE_BYTES} bytes`);
    }
    return { seq, line, lineBytes };
  }

  private writeFailed(step: string, err: unknown): ClusterError {
    return new ClusterError('STATE_FILE_WRITE_FAILED', `cannot save state to ${this.filePath}: failed to ${step}: ${(err as Error).message}`, {
      cause: err,
    });
  }

  /** One pwrite into the slot that is not durable, and one fdatasync unless `sync` is false. */
  private writeSlot(slots: SlotFile, line: string, sync: boolean): void {
    const target = slots.durableSlot === 0 ? 1 : 0;
    let step = 'open the state file';
    try {
      slots.fd ??= fs.openSync(slots.path, 'r+');
      step = `write slot ${target}`;
      writeAll(slots.fd, slotBuffer(line, slots.slotBytes), target * slots.slotBytes);
      if (sync) {
        step = 'fdatasync the state file';
        fs.fdatasyncSync(slots.fd);
        slots.durableSlot = target;
      }
    } catch (err) {
      throw this.writeFailed(step, err);
    }
  }

  /** A new file (both slots holding `line`), or a bigger one: temp file, fsync, rename, directory fsync. */
  private create(line: string): void {
    // Beside the link's target, so a symlinked state file stays a symlink.
    const target = this.resolvedPath();
    const tempPath = target + TEMP_SUFFIX;
    const slotBytes = slotBytesFor(Buffer.byteLength(line, 'utf8'));
    const slot = slotBuffer(line, slotBytes);
    let step = 'open the temp file';
    let renamed = false;
    this.closeSlots();
    try {
      const fd = fs.openSync(tempPath, 'w', 0o600);
      try {
        step = 'write the temp file';
        writeAll(fd, slot, 0);
        writeAll(fd, slot, slotBytes);
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
      throw this.writeFailed(step, err);
    }
    // Both slots hold the new state; the next save goes to slot 1. The fd opens after the
    // directory's was closed, so a save on a full fd table needs only the one spare fd.
    this.slots = { fd: undefined, path: target, slotBytes, durableSlot: 0 };
    try {
      this.slots.fd = fs.openSync(target, 'r+');
    } catch {
      // Opened by the next save, which reports it if it fails there too.
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

function writeAll(fd: number, buf: Buffer, position: number): void {
  for (let done = 0; done < buf.length; ) done += fs.writeSync(fd, buf, done, buf.length - done, position + done);
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

