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
  it('has no record in a fresh data dir, and keeps what it saved across instances', () => {
    dir = mkdtempSync(join(tmpdir(), 'timing-record-'));
    expect(new TimingRecordFile(dir).load()).toBeUndefined();
    new TimingRecordFile(dir).save(900);
    expect(new TimingRecordFile(dir).load()).toBe(900);
    expect(JSON.parse(readFileSync(join(dir, TIMING_RECORD_FILE_NAME), 'utf8'))).toMatchObject({ longestRefusalWindowMs: 900 });
  });

  it.each([
    ['not JSON', '{'],
    ['another format', JSON.stringify({ format: 'x', version: 1, longestRefusalWindowMs: 1 })],
    ['a negative window', JSON.stringify({ format: 'raft-elector-timing', version: 1, longestRefusalWindowMs: -1 })],
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
