/**
 * StateFile.saveInBackground: the slot written now, its fdatasync in the thread pool, `done`
 * once the state is on disk (or with the error), never before the call returns.
 */
import * as fs from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DurableState } from '../raft/index.js';
import { ClusterError } from './errors.js';
import { STATE_FILE_NAME, StateFile } from './state-file.js';

const me = { memberId: 'member-a', group: 'shop' };
const silent = pino({ level: 'silent' });
const cjsFs = createRequire(import.meta.url)('node:fs') as { fdatasync: (fd: number, cb: (err: Error | null) => void) => void };
const at = (term: number, vote: string, entries = 2): DurableState => ({
  hardState: { term, vote, commit: 0 },
  snapshot: { index: 0, term: 0 },
  entries: Array.from({ length: entries }, (_, i) => ({ index: i + 1, term: 1 })),
});

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sf-background-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Starts a background save; resolves with what `done` said, and whether it ran before the call returned. */
function saveInBackground(s: StateFile, state: DurableState): Promise<{ err: Error | undefined; synchronous: boolean }> {
  return new Promise((resolve) => {
    let returned = false;
    s.saveInBackground(state, (err) => resolve({ err, synchronous: !returned }));
    returned = true;
  });
}

const reopened = (): DurableState | undefined => {
  const s = new StateFile(dir, silent, me);
  try {
    return s.load();
  } finally {
    s.close();
  }
};

describe('StateFile.saveInBackground', () => {
  it('is done after it returns, and each state is what a restart reads once done (both slots in turn)', async () => {
    const s = new StateFile(dir, silent, me);
    s.load();
    s.save(at(1, 'member-a'));
    for (let term = 2; term <= 5; term++) {
      const r = await saveInBackground(s, at(term, 'member-b'));
      expect(r).toEqual({ err: undefined, synchronous: false });
      expect(reopened()).toEqual(at(term, 'member-b'));
    }
    s.close();
    expect(fs.readdirSync(dir)).toEqual([STATE_FILE_NAME]);
  });

  it('a first save, or one that outgrows its slot, writes a new file whole; done still comes after the call', async () => {
    const s = new StateFile(dir, silent, me);
    s.load();
    expect(await saveInBackground(s, at(1, 'member-a'))).toEqual({ err: undefined, synchronous: false });
    expect(reopened()).toEqual(at(1, 'member-a'));
    const big = at(2, 'member-c', 400);
    expect(await saveInBackground(s, big)).toEqual({ err: undefined, synchronous: false });
    expect(reopened()).toEqual(big);
    // And the next one goes to a slot of the new file.
    expect(await saveInBackground(s, at(3, 'member-c', 400))).toEqual({ err: undefined, synchronous: false });
    expect(reopened()).toEqual(at(3, 'member-c', 400));
    s.close();
  });

  it('refuses a state load() would reject with STATE_INVALID through done, and the file keeps the old state', async () => {
    const s = new StateFile(dir, silent, me);
    s.load();
    s.save(at(1, 'member-a'));
    const broken: DurableState = { ...at(2, 'member-b'), entries: [{ index: 2, term: 1 }, { index: 1, term: 1 }] };
    const r = await saveInBackground(s, broken);
    expect(r.synchronous).toBe(false);
    expect(r.err).toBeInstanceOf(ClusterError);
    expect((r.err as ClusterError).code).toBe('STATE_INVALID');
    expect(reopened()).toEqual(at(1, 'member-a'));
    s.close();
  });

  it('while it syncs, another save or a load is refused (nothing written), and close() waits for the sync', async () => {
    const s = new StateFile(dir, silent, me);
    s.load();
    s.save(at(1, 'member-a'));
    const pending = saveInBackground(s, at(2, 'member-b'));
    expect(() => s.save(at(3, 'member-c'))).toThrow(/a background save is still syncing/);
    expect(() => s.load()).toThrow(/a background save is still syncing/);
    s.close();
    expect(await pending).toEqual({ err: undefined, synchronous: false });
    expect(reopened()).toEqual(at(2, 'member-b'));
  });

  it('a failed fdatasync is STATE_FILE_WRITE_FAILED naming the file and step; a restart loads what was written', async () => {
    const s = new StateFile(dir, silent, me);
    s.load();
    s.save(at(1, 'member-a'));
    const real = cjsFs.fdatasync;
    cjsFs.fdatasync = (_fd, cb) => setImmediate(() => cb(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' })));
    syncBuiltinESMExports();
    let r: { err: Error | undefined; synchronous: boolean };
    try {
      r = await saveInBackground(s, at(2, 'member-b'));
    } finally {
      cjsFs.fdatasync = real;
      syncBuiltinESMExports();
    }
    expect(r.synchronous).toBe(false);
    expect((r.err as ClusterError).code).toBe('STATE_FILE_WRITE_FAILED');
    expect(r.err!.message).toContain(path.join(dir, STATE_FILE_NAME));
    expect(r.err!.message).toMatch(/fdatasync the state file: EIO/);
    s.close();
    // The slot reached the page cache: the restarted member reads it (and writes it again, synced, before acting on it).
    expect(reopened()!.hardState).toEqual({ term: 2, vote: 'member-b', commit: 0 });
  });
});
