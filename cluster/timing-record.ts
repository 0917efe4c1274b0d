/**
 * The longest vote-refusal window this member ever announced, kept in a small fsynced file
 * in the data dir. A leader fixes each ack's lease window with the timing the follower
 * announced when it acked; if the follower restarts with shorter timing, that ack still
 * counts with the old window, so the restarted member's start-up vote refusal must cover the
 * longest window it ever announced, not only its current one (cluster/lease.ts).
 *
 * It also keeps the longest lease window (R - maxClockDriftMs) it ever announced, which the
 * handshake announces for the waits that cover another leader's lease: R alone would make them
 * count a drift the old incarnation already took off. Written as version 1 with that field
 * beside R, so the previous build (which ignores unknown fields) still starts on a rolled-back
 * pod's data dir; a file without the field (the previous build's) lets R stand in for it (the
 * old drift is unknown, and may have been 0). Version 2 files (an unreleased build wrote them)
 * are still read.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ClusterError } from './errors.js';

export const TIMING_RECORD_FILE_NAME = 'raft-timing.json';
const Format = 'raft-elector-timing';
/** What this build writes: the previous build reads version 1 only. */
const Version = 1;
const MaxBytes = 4096;

/** The longest windows this member ever announced, in ms; each only ever grows. */
export interface TimingRecord {
  /** The longest (electionTicks - 1) * tickMs. */
  longestRefusalWindowMs: number;
  /** The longest (electionTicks - 1) * tickMs - maxClockDriftMs (0 when none was positive). */
  longestLeaseWindowMs: number;
}

export interface TimingRecordStore {
  /** undefined when there is no record. */
  load(): TimingRecord | undefined;
  /** Written, fsynced and renamed into place (and the dir fsynced) before it returns. */
  save(record: TimingRecord): void;
}

export class TimingRecordFile implements TimingRecordStore {
  readonly filePath: string;

  constructor(readonly dataDir: string) {
    this.filePath = path.join(dataDir, TIMING_RECORD_FILE_NAME);
  }

  load(): TimingRecord | undefined {
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

  save(record: TimingRecord): void {
    const { longestRefusalWindowMs, longestLeaseWindowMs } = record;
    const text = `${JSON.stringify({ format: Format, version: Version, longestRefusalWindowMs, longestLeaseWindowMs })}\n`;
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

export function parseTimingRecord(text: string, filePath: string): TimingRecord {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw corrupt(filePath, 'not JSON');
  }
  const v = value as { format?: unknown; version?: unknown; longestRefusalWindowMs?: unknown; longestLeaseWindowMs?: unknown } | null;
  if (v === null || typeof v !== 'object' || v.format !== Format || (v.version !== 1 && v.version !== 2)) {
    throw corrupt(filePath, `not a ${Format} file of version 1 or 2`);
  }
  const refusal = readWindow(v.longestRefusalWindowMs, 'longestRefusalWindowMs', filePath);
  // Without a lease window (the previous build's file) no drift was kept: the refusal window
  // counts whole, the longest lease it can have granted.
  if (v.version === 1 && v.longestLeaseWindowMs === undefined) return { longestRefusalWindowMs: refusal, longestLeaseWindowMs: refusal };
  const lease = readWindow(v.longestLeaseWindowMs, 'longestLeaseWindowMs', filePath);
  if (lease > refusal) throw corrupt(filePath, 'longestLeaseWindowMs is longer than longestRefusalWindowMs');
  return { longestRefusalWindowMs: refusal, longestLeaseWindowMs: lease };
}

function readWindow(ms: unknown, name: string, filePath: string): number {
  if (typeof ms !== 'number' || !Number.isSafeInteger(ms) || ms < 0) throw corrupt(filePath, `${name} is not a non-negative integer`);
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
  constructor(public value: TimingRecord | undefined = undefined) {}
  load(): TimingRecord | undefined {
    return this.value && { ...this.value };
  }
  save(record: TimingRecord): void {
    this.value = { ...record };
  }
}
