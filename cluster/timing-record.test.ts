import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isClusterError } from './errors.js';
import { TIMING_RECORD_FILE_NAME, TimingRecordFile } from './timing-record.js';

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('TimingRecordFile', () => {
  it('has no record in a fresh data dir, and keeps what it saved across instances (version 1, with the lease window beside)', () => {
    dir = mkdtempSync(join(tmpdir(), 'timing-record-'));
    expect(new TimingRecordFile(dir).load()).toBeUndefined();
    new TimingRecordFile(dir).save({ longestRefusalWindowMs: 900, longestLeaseWindowMs: 800 });
    expect(new TimingRecordFile(dir).load()).toEqual({ longestRefusalWindowMs: 900, longestLeaseWindowMs: 800 });
    expect(JSON.parse(readFileSync(join(dir, TIMING_RECORD_FILE_NAME), 'utf8'))).toEqual({
      format: 'raft-elector-timing',
      version: 1,
      longestRefusalWindowMs: 900,
      longestLeaseWindowMs: 800,
    });
  });

  it('writes what the previous build reads (a rolled-back pod starts): version 1, R a non-negative integer', () => {
    dir = mkdtempSync(join(tmpdir(), 'timing-record-'));
    new TimingRecordFile(dir).save({ longestRefusalWindowMs: 900, longestLeaseWindowMs: 800 });
    const written = JSON.parse(readFileSync(join(dir, TIMING_RECORD_FILE_NAME), 'utf8')) as Record<string, unknown>;
    // The previous build's parseTimingRecord: format, version === 1, a safe non-negative integer R; other fields ignored.
    expect(written.format).toBe('raft-elector-timing');
    expect(written.version).toBe(1);
    expect(Number.isSafeInteger(written.longestRefusalWindowMs) && (written.longestRefusalWindowMs as number) >= 0).toBe(true);
  });

  it('reads a version 2 record (written by an unreleased build)', () => {
    dir = mkdtempSync(join(tmpdir(), 'timing-record-'));
    writeFileSync(join(dir, TIMING_RECORD_FILE_NAME), `${JSON.stringify({ format: 'raft-elector-timing', version: 2, longestRefusalWindowMs: 900, longestLeaseWindowMs: 800 })}\n`);
    expect(new TimingRecordFile(dir).load()).toEqual({ longestRefusalWindowMs: 900, longestLeaseWindowMs: 800 });
  });

  it('reads a version 1 record (no drift kept): its refusal window stands in for the lease window, whole', () => {
    dir = mkdtempSync(join(tmpdir(), 'timing-record-'));
    writeFileSync(join(dir, TIMING_RECORD_FILE_NAME), `${JSON.stringify({ format: 'raft-elector-timing', version: 1, longestRefusalWindowMs: 900 })}\n`);
    expect(new TimingRecordFile(dir).load()).toEqual({ longestRefusalWindowMs: 900, longestLeaseWindowMs: 900 });
    // Saving keeps version 1 and adds the lease window beside it.
    new TimingRecordFile(dir).save({ longestRefusalWindowMs: 900, longestLeaseWindowMs: 900 });
    expect(JSON.parse(readFileSync(join(dir, TIMING_RECORD_FILE_NAME), 'utf8'))).toMatchObject({ version: 1, longestLeaseWindowMs: 900 });
  });

  it.each([
    ['not JSON', '{'],
    ['another format', JSON.stringify({ format: 'x', version: 1, longestRefusalWindowMs: 1 })],
    ['a negative window', JSON.stringify({ format: 'raft-elector-timing', version: 1, longestRefusalWindowMs: -1 })],
    ['an unknown version', JSON.stringify({ format: 'raft-elector-timing', version: 3, longestRefusalWindowMs: 900, longestLeaseWindowMs: 800 })],
    ['version 2 without a lease window', JSON.stringify({ format: 'raft-elector-timing', version: 2, longestRefusalWindowMs: 900 })],
    ['a fractional lease window beside version 1', JSON.stringify({ format: 'raft-elector-timing', version: 1, longestRefusalWindowMs: 900, longestLeaseWindowMs: 0.5 })],
    ['a fractional lease window', JSON.stringify({ format: 'raft-elector-timing', version: 2, longestRefusalWindowMs: 900, longestLeaseWindowMs: 0.5 })],
    ['a lease window longer than the refusal window', JSON.stringify({ format: 'raft-elector-timing', version: 2, longestRefusalWindowMs: 900, longestLeaseWindowMs: 901 })],
  ])('a damaged file (%s) is refused with an error naming it and how to recover', (_, text) => {
    dir = mkdtempSync(join(tmpdir(), 'timing-record-'));
    writeFileSync(join(dir, TIMING_RECORD_FILE_NAME), text);
    let err: unknown;
    try {
      new TimingRecordFile(dir).load();
    } catch (e) {
      err = e;
    }
    expect(isClusterError(err, 'TIMING_RECORD_CORRUPT')).toBe(true);
    expect((err as Error).message).toContain(join(dir, TIMING_RECORD_FILE_NAME));
    expect((err as Error).message).toMatch(/delete the file/);
  });
});
