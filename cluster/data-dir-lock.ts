/**
 * One process per data dir: an exclusive OS lock on `<data-dir>/raft-elector.lock`, held
 * for the life of the process. Two live processes sharing one state file can vote twice
 * in a term (issue 9, finding 1), so the second one refuses to start.
 *
 * The lock is fs-native-extensions' tryLock: on Linux an OFD lock (fcntl F_OFD_SETLK),
 * on macOS flock. The kernel drops it when the holder's last fd closes, so a SIGKILLed
 * holder never blocks a restart, while a SIGSTOPped (paused) holder keeps it. A lock
 * based on a file's mtime would expire under a paused holder: exactly the double vote.
 *
 * After locking, the holder writes who it is (pid, start time, member id) into the file,
 * so the refused process can name it.
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const LOCK_FILE_NAME = 'raft-elector.lock';
/** The holder record is a short JSON line; never read more of a file a stranger could grow. */
const MAX_HOLDER_BYTES = 4096;
const BINDING_FILE = 'fs-native-extensions.node';

export type DataDirErrorCode =
  /** Another live process holds the data dir's lock. */
  | 'DATA_DIR_LOCKED'
  /** The data dir cannot be created, opened, locked or written. */
  | 'DATA_DIR_UNUSABLE'
  /** The native lock binding cannot be loaded. */
  | 'LOCK_UNAVAILABLE';

export class DataDirError extends Error {
  readonly code: DataDirErrorCode;
  constructor(code: DataDirErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DataDirError';
    this.code = code;
  }
}

export interface LockHolder {
  pid: number;
  startedAt: string;
  memberId: string;
}

interface LockBinding {
  /** Throws an error with code EAGAIN when another open file description holds a conflicting lock. */
  tryLock(fd: number, offset: number, length: number, exclusive: boolean): void;
}

let binding: LockBinding | undefined;

/**
 * The addon's own loader (require-addon) resolves the prebuild relative to the package at
 * run time, which a bundle does not have. So: first `fs-native-extensions.node` beside the
 * running file (the image copies the build's prebuild next to the bundle), then the package's
 * prebuild for this platform, then the package's own loader.
 */
function loadBinding(): LockBinding {
  if (binding) return binding;
  const nodeRequire = createRequire(import.meta.url);
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.join(here, BINDING_FILE)];
  try {
    const pkgDir = path.dirname(nodeRequire.resolve('fs-native-extensions/package.json'));
    candidates.push(path.join(pkgDir, 'prebuilds', `${process.platform}-${process.arch}`, BINDING_FILE));
  } catch {
    // Not installed beside us (the bundle): the first candidate is the one.
  }
  const failures: string[] = [];
  for (const file of candidates) {
    if (!fs.existsSync(file)) continue;
    try {
      binding = nodeRequire(file) as LockBinding;
      return binding;
    } catch (err) {
      failures.push(`${file}: ${(err as Error).message}`);
    }
  }
  throw new DataDirError(
    'LOCK_UNAVAILABLE',
    `cannot load the data-dir lock (${BINDING_FILE} for ${process.platform}-${process.arch}): ${failures.length > 0 ? failures.join('; ') : `looked in ${candidates.join(', ')}`}`,
  );
}

export class DataDirLock {
  private constructor(
    readonly dataDir: string,
    readonly lockPath: string,
    private fd: number | undefined,
  ) {}

  /**
   * Takes the data dir's lock or throws DataDirError: DATA_DIR_LOCKED naming the dir and the
   * holder, DATA_DIR_UNUSABLE when the dir or lock file cannot be made.
   */
  static acquire(dataDir: string, memberId: string, now: () => Date = () => new Date()): DataDirLock {
    const lib = loadBinding();
    const lockPath = path.join(dataDir, LOCK_FILE_NAME);
    let fd: number;
    try {
      fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      // O_NOFOLLOW: a planted symlink must not make us truncate some other file.
      fd = fs.openSync(lockPath, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const what = code === 'EACCES' || code === 'EPERM' || code === 'EROFS' ? 'is not writable' : 'is not usable';
      throw new DataDirError('DATA_DIR_UNUSABLE', `data dir ${dataDir} ${what}: cannot open ${lockPath}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    try {
      lib.tryLock(fd, 0, 0, true);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      fs.closeSync(fd);
      if (code === 'EAGAIN' || code === 'EACCES' || code === 'EWOULDBLOCK') {
        throw new DataDirError(
          'DATA_DIR_LOCKED',
          `data dir ${dataDir} is in use by another raft-elector process (${describeHolder(readHolder(lockPath))}); one process per data dir`,
        );
      }
      throw new DataDirError('DATA_DIR_UNUSABLE', `data dir ${dataDir}: cannot lock ${lockPath}: ${(err as Error).message}`, { cause: err });
    }
    const holder: LockHolder = { pid: process.pid, startedAt: now().toISOString(), memberId };
    try {
      const text = `${JSON.stringify(holder)}\n`;
      fs.ftruncateSync(fd, 0);
      fs.writeSync(fd, text, 0, 'utf8');
      fs.fsyncSync(fd);
    } catch (err) {
      fs.closeSync(fd);
      throw new DataDirError('DATA_DIR_UNUSABLE', `data dir ${dataDir} is not writable: cannot write ${lockPath}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    return new DataDirLock(dataDir, lockPath, fd);
  }

  /** Drops the lock (process exit does the same). The file stays: removing it could race a new holder. */
  release(): void {
    if (this.fd === undefined) return;
    fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

/** The holder record, or undefined when the file is empty (a holder between lock and write) or not ours. */
export function readHolder(lockPath: string): LockHolder | undefined {
  let fd: number | undefined;
  try {
    fd = fs.openSync(lockPath, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    const buf = Buffer.alloc(MAX_HOLDER_BYTES);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    const parsed: unknown = JSON.parse(buf.subarray(0, n).toString('utf8'));
    if (typeof parsed !== 'object' || parsed === null) return undefined;
    const { pid, startedAt, memberId } = parsed as Record<string, unknown>;
    if (!Number.isSafeInteger(pid) || typeof startedAt !== 'string' || typeof memberId !== 'string') return undefined;
    return { pid: pid as number, startedAt: startedAt.slice(0, 64), memberId: memberId.slice(0, 253) };
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function describeHolder(holder: LockHolder | undefined): string {
  if (!holder) return 'holder not recorded yet';
  return `pid ${holder.pid}, started ${holder.startedAt}, member ${JSON.stringify(holder.memberId)}`;
}
