/**
 * The longest vote-refusal window this member ever announced, kept in a small fsynced file
 * in the data dir. A leader fixes each ack's lease window with the timing the follower
 * announced when it acked; if the follower restarts with shorter timing, that ack still
 * counts with the old window, so the restarted member's start-up vote refusal must cover the
 * longest window it ever announced, not only its current one (cluster/lease.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { ClusterError } from './errors.js';

export const TIMING_RECORD_FILE_NAME = 'raft-timing.json';
const Format = 'raft-elector-timing';
const Version = 1;
const MaxBytes = 4096;

export interface TimingRecordStore {
  /** The longest refusal window ever recorded, in ms; undefined when there is no record. */
  load(): number | undefined;
  /** Written, fsynced and renamed into place (and the dir fsynced) before it returns. */
  save(longestRefusalWindowMs: number): void;
}

export class TimingRecordFile implements TimingRecordStore {
  readonly filePath: string;

  constructor(readonly dataDir: string) {
    this.filePath = path.join(dataDir, TIMING_RECORD_FILE_NAME);
  }

  load(): number | undefined {
    let text: string;
    try {
      const stat = fs.statSync(this.filePath);
      if (!stat.isFile() || stat.size > MaxBytes) throw corrupt(this.filePath, `not a regular file of at most ${MaxBytes} bytes`);
      text = fs.readFileSync(this.filePath, 'utf8');
    } catch (err) {
      if (err instanceof ClusterError) throw err;
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new ClusterError('TIMING_RECORD_UNREADABLE', `timing record ${this.filePath} cannot be read: ${(err as Error).message}`, {
        cause: err,
      });
    }
    return parseTimingRecord(text, this.filePath);
  }

  save(longestRefusalWindowMs: number): void {
    const text = `${JSON.stringify({ format: Format, version: Version, longestRefusalWindowMs })}\n`;
    const temp = `${this.filePath}.tmp`;
    let step = 'write the temp file';
    try {
      fs.mkdirSync(this.dataDir, { recursive: true });
      const fd = fs.openSync(temp, 'w', 0o600);
      try {
        fs.writeFileSync(fd, text, 'utf8');
        step = 'fsync the temp file';
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      step = 'rename the temp file into place';
      fs.renameSync(temp, this.filePath);
      step = 'fsync the data dir';
      const dirFd = fs.openSync(this.dataDir, 'r');
      try {
        fs.fsyncSync(dirFd);
      } finally {
        fs.closeSync(dirFd);
      }
    } catch (err) {
      throw new ClusterError('TIMING_RECORD_WRITE_FAILED', `cannot save the timing record ${this.filePath}: failed to ${step}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
}

export function parseTimingRecord(text: string, filePath: string): number {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw corrupt(filePath, 'not JSON');
  }
  const v = value as { format?: unknown; version?: unknown; longestRefusalWindowMs?: unknown } | null;
  if (v === null || typeof v !== 'object' || v.format !== Format || v.version !== Version) {
    throw corrupt(filePath, `not a ${Format} file of version ${Version}`);
  }
  const ms = v.longestRefusalWindowMs;
  if (typeof ms !== 'number' || !Number.isSafeInteger(ms) || ms < 0) throw corrupt(filePath, 'longestRefusalWindowMs is not a non-negative integer');
  return ms;
}

function corrupt(filePath: string, why: string): ClusterError {
  return new ClusterError(
    'TIMING_RECORD_CORRUPT',
    `timing record ${filePath} is corrupt (${why}); if this member has been stopped for longer than its largest ` +
      'election timeout ever configured, delete the file and start again',
  );
}

/** An in-memory record, for tests and for members without a data dir. */
export class MemoryTimingRecord implements TimingRecordStore {
  constructor(public value: number | undefined = undefined) {}
  load(): number | undefined {
    return this.value;
  }
  save(longestRefusalWindowMs: number): void {
    this.value = longestRefusalWindowMs;
  }
}
