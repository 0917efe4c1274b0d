import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DataDirError, DataDirLock, LOCK_FILE_NAME, readHolder } from './data-dir-lock.js';

const dirs: string[] = [];
const locks: DataDirLock[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'raft-elector-lock-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const l of locks.splice(0)) l.release();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function acquire(dir: string, id: string): DataDirLock {
  const lock = DataDirLock.acquire(dir, id, () => new Date('2026-12-01T12:00:00.000Z'));
  locks.push(lock);
  return lock;
}

describe('DataDirLock', () => {
  it('records the holder and refuses a second holder, naming the dir and the holder', () => {
    const dir = join(tempDir(), 'data');
    acquire(dir, 'a');
    expect(readHolder(join(dir, LOCK_FILE_NAME))).toEqual({ pid: process.pid, startedAt: '2026-12-01T12:00:00.000Z', memberId: 'a' });
    // An OFD lock conflicts between two open file descriptions, even within one process.
    let caught: unknown;
    try {
      acquire(dir, 'a');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(DataDirError);
    expect((caught as DataDirError).code).toBe('DATA_DIR_LOCKED');
    expect((caught as Error).message).toBe(
      `data dir ${dir} is in use by another raft-elector process (pid ${process.pid}, started 2026-12-01T12:00:00.000Z, member "a"); one process per data dir`,
    );
  });

  it('is free again once released, and a stale holder record does not block', () => {
    const dir = tempDir();
    writeFileSync(join(dir, LOCK_FILE_NAME), '{"pid":1,"startedAt":"then","memberId":"old"}\n');
    const first = acquire(dir, 'a');
    first.release();
    acquire(dir, 'b');
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE_NAME), 'utf8'))).toMatchObject({ memberId: 'b' });
  });

  // The child runs the build (test/global-setup.ts compiles dist/ first).
  it('is dropped by the kernel when the holding process is SIGKILLed', async () => {
    const dir = tempDir();
    const script = `import('${new URL('../dist/cluster/data-dir-lock.js', import.meta.url).pathname}').then(({ DataDirLock }) => { DataDirLock.acquire(${JSON.stringify(dir)}, 'child'); console.log('locked'); setInterval(() => {}, 1000); })`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => (d.toString().includes('locked') ? resolve() : undefined));
        child.once('exit', (code) => reject(new Error(`child exited ${code} before locking`)));
      });
      expect(() => acquire(dir, 'a')).toThrow(/in use by another raft-elector process \(pid \d+, started .*, member "child"\)/);
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
      expect(acquire(dir, 'a').lockPath).toBe(join(dir, LOCK_FILE_NAME));
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('names the dir when it cannot be made', () => {
    const file = join(tempDir(), 'file');
    writeFileSync(file, 'x');
    expect(() => acquire(join(file, 'data'), 'a')).toThrow(`data dir ${join(file, 'data')} is not usable: `);
  });
});
