/**
 * A save whose fdatasync fails (EIO) leaves its slot valid in the page cache only. Linux reports a
 * writeback error once; the lost pages may then be dropped unwritten while later syncs "succeed"
 * (fsyncgate). A restarted member must not act on such a slot: load() writes the state it read
 * again, into the other slot, and syncs it, so what it acts on is on disk.
 * Disk model: the file as of the last successful sync, except the range whose sync failed, which
 * keeps its old bytes until it is written again.
 */
import * as fs from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { pino } from 'pino';
import { expect, it } from 'vitest';
import { STATE_FILE_NAME, StateFile, parseStateBytes } from './state-file.js';

const me = { memberId: 'member-a', group: 'shop' };
const silent = pino({ level: 'silent' });
const cjsFs = createRequire(import.meta.url)('node:fs') as { fdatasyncSync: (fd: number) => void };
const at = (term: number, vote: string, commit: number) => ({
  hardState: { term, vote, commit },
  snapshot: { index: 0, term: 0 },
  entries: [{ index: 1, term: 1 }, { index: 2, term: 1 }],
});

it('after a failed fdatasync, a restarted member re-persists what it loaded before acting on it', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sf-gate-'));
  const file = path.join(dir, STATE_FILE_NAME);
  const s1 = new StateFile(dir, silent, me);
  s1.load();
  s1.save(at(1, 'member-a', 0)); // create: both slots seq 1
  s1.save(at(2, 'member-b', 0)); // slot 1, seq 2, synced
  let disk = fs.readFileSync(file);
  let lost: { from: number; to: number; bytes: Buffer } | undefined;
  const realSync = cjsFs.fdatasyncSync;
  let failNext = true;
  cjsFs.fdatasyncSync = (fd: number) => {
    const now = fs.readFileSync(file);
    if (failNext) {
      failNext = false;
      // The pages that differ from the disk are the failed write's; they are dropped unwritten.
      let from = 0;
      while (from < now.length && now[from] === disk[from]) from++;
      let to = now.length;
      while (to > from && now[to - 1] === disk[to - 1]) to--;
      lost = { from, to, bytes: Buffer.from(now.subarray(from, to)) };
      throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    }
    realSync(fd);
    const next = Buffer.from(now);
    // A range not written again since the failure stays as the disk had it.
    if (lost && now.subarray(lost.from, lost.to).equals(lost.bytes)) disk.copy(next, lost.from, lost.from, lost.to);
    else lost = undefined;
    disk = next;
  };
  syncBuiltinESMExports();
  try {
    expect(() => s1.save(at(3, 'member-c', 0))).toThrow(/fdatasync/); // seq 3 in the page cache only; the member stops
    s1.close();
    const s2 = new StateFile(dir, silent, me); // the process restarts
    expect(s2.load()!.hardState).toEqual({ term: 3, vote: 'member-c', commit: 0 });
    // It may now re-grant member-c in term 3 without a save (no hard-state change), then a commit-only Ready:
    s2.save(at(3, 'member-c', 1), { sync: false });
    s2.close();
  } finally {
    cjsFs.fdatasyncSync = realSync;
    syncBuiltinESMExports();
  }
  // Power loss before writeback: the disk must still hold the term and vote the member acted on.
  expect(parseStateBytes(disk, file).state.hardState).toMatchObject({ term: 3, vote: 'member-c' });
  fs.rmSync(dir, { recursive: true, force: true });
});
