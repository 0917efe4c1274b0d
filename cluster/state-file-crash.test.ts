/**
 * Crash points of the version-3 state file: a process killed before any one of a save's
 * syscalls, and a power loss that keeps any mix of a slot's old and new sectors, both leave
 * a file that loads as the old state or the new one, never a mix and never an error.
 */
import * as fs from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DurableState } from '../raft/index.js';
import { ClusterError } from './errors.js';
import { STATE_FILE_NAME, StateFile, parseStateBytes, serializeState, type StateIdentity } from './state-file.js';

const me: StateIdentity = { memberId: 'member-a', group: 'shop' };
const silent = pino({ level: 'silent' });

/** term/vote/commit changes as a member sees them; `sync: false` only where the commit alone moved. */
function states(): Array<{ state: DurableState; sync: boolean }> {
  const at = (term: number, vote: string, commit: number, last: number, big = false): DurableState => ({
    hardState: { term, vote, commit },
    snapshot: { index: 0, term: 0 },
    entries: Array.from({ length: big ? 300 : last }, (_, i) => ({ index: i + 1, term: Math.min(term, i + 1) })),
  });
  return [
    { state: at(2, 'member-b', 0, 2), sync: true },
    { state: at(3, 'member-c', 0, 2), sync: true },
    { state: at(3, 'member-c', 0, 3), sync: true },
    { state: at(3, 'member-c', 2, 3), sync: false },
    { state: at(3, 'member-c', 3, 3), sync: false },
    { state: at(4, 'member-a', 3, 3), sync: true },
    // Outgrows its 4 KiB slot: written through a new, bigger file.
    { state: at(5, 'member-b', 3, 300, true), sync: true },
    { state: at(6, 'member-c', 3, 300, true), sync: true },
  ];
}
/** The file the member upgrades from: version 2, one JSON document. */
const initial: DurableState = { hardState: { term: 1, vote: 'member-a', commit: 0 }, snapshot: { index: 0, term: 0 }, entries: [{ index: 1, term: 1 }] };

let dir: string;
let dataDir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'state-file-crash-'));
  dataDir = path.join(dir, 'data');
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function freshFromV2(): StateFile {
  fs.rmSync(dataDir, { recursive: true, force: true });
  fs.mkdirSync(dataDir, { recursive: true });
  fs.writeFileSync(path.join(dataDir, STATE_FILE_NAME), serializeState(initial, me));
  const s = new StateFile(dataDir, silent, me);
  expect(s.load()).toEqual(initial);
  return s;
}

class Crash extends Error {}
const cjsFs = createRequire(import.meta.url)('node:fs') as Record<string, unknown>;
const Syscalls = ['openSync', 'writeSync', 'fsyncSync', 'fdatasyncSync', 'renameSync', 'closeSync', 'unlinkSync'] as const;

/** Runs `fn` with the process "killed" just before its syscall number `k` (every later one fails too). */
function crashBefore(k: number, fn: () => void): { crashed: boolean; calls: string[] } {
  const originals = new Map(Syscalls.map((name) => [name, cjsFs[name] as (...args: unknown[]) => unknown]));
  const calls: string[] = [];
  let crashed = false;
  for (const [name, original] of originals) {
    cjsFs[name] = (...args: unknown[]): unknown => {
      if (crashed || calls.length === k) {
        crashed = true;
        throw new Crash(`killed before ${name}`);
      }
      calls.push(name);
      return original(...args);
    };
  }
  syncBuiltinESMExports();
  try {
    fn();
  } catch (err) {
    if (!(err instanceof Crash) && !(err instanceof ClusterError && err.cause instanceof Crash)) throw err;
  } finally {
    for (const [name, original] of originals) cjsFs[name] = original;
    syncBuiltinESMExports();
  }
  return { crashed, calls };
}

describe('state file crash points', () => {
  it('a kill before any syscall of any save leaves the old or the new state', () => {
    const seq = states();
    let checked = 0;
    for (let i = 0; i < seq.length; i++) {
      const before = i === 0 ? initial : seq[i - 1]!.state;
      for (let k = 0; ; k++) {
        const s = freshFromV2();
        for (let j = 0; j < i; j++) s.save(seq[j]!.state, { sync: seq[j]!.sync });
        const run = crashBefore(k, () => s.save(seq[i]!.state, { sync: seq[i]!.sync }));
        const loaded = new StateFile(dataDir, silent, me).load();
        checked++;
        if (!run.crashed) {
          expect(loaded, `save ${i} ran to completion (${run.calls.join(', ')})`).toEqual(seq[i]!.state);
          break;
        }
        expect([before, seq[i]!.state], `save ${i} killed before syscall ${k} (after ${run.calls.join(', ') || 'none'})`).toContainEqual(loaded);
      }
    }
    console.log(`crash points checked: ${checked}`);
    expect(checked).toBeGreaterThan(seq.length * 2);
  });

  it('an in-place save is one write and one fdatasync; a commit-only save is one write', () => {
    const s = freshFromV2();
    const seq = states();
    s.save(seq[0]!.state);
    const file = path.join(dataDir, STATE_FILE_NAME);
    const inode = fs.statSync(file).ino;
    const synced = crashBefore(1_000, () => s.save(seq[1]!.state, { sync: true }));
    expect(synced.calls).toEqual(['writeSync', 'fdatasyncSync']);
    const unsynced = crashBefore(1_000, () => s.save(seq[3]!.state, { sync: false }));
    expect(unsynced.calls).toEqual(['writeSync']);
    expect(fs.statSync(file).ino).toBe(inode);
    expect(new StateFile(dataDir, silent, me).load()).toEqual(seq[3]!.state);
  });

  it('a power loss keeping any mix of old and new sectors loads a state written since the last sync', () => {
    // Finer than a disk sector (512 B): a stricter model of a torn write.
    const Sector = 64;
    const file = path.join(dataDir, STATE_FILE_NAME);
    // The states that fit one 4 KiB slot: a regrown file is renamed into place (the kill test covers it).
    const seq = states().slice(0, 6);
    const s = freshFromV2();
    s.save(seq[0]!.state);
    // What the disk surely holds: the file as of the last save that synced.
    let disk = fs.readFileSync(file);
    let sinceSync: DurableState[] = [seq[0]!.state];
    let images = 0;
    for (let i = 1; i < seq.length; i++) {
      const { state, sync } = seq[i]!;
      s.save(state, { sync });
      const now = fs.readFileSync(file);
      sinceSync.push(state);
      expect(now.length).toBe(disk.length);
      const changed: number[] = [];
      for (let at = 0; at < now.length; at += Sector) {
        if (!now.subarray(at, at + Sector).equals(disk.subarray(at, at + Sector))) changed.push(at);
      }
      // Every changed sector lies in one slot: the durable slot is never written before another is durable.
      const slotBytes = now.length / 2;
      expect(new Set(changed.map((at) => Math.floor(at / slotBytes))).size, `save ${i}`).toBe(1);
      for (let mask = 0; mask < 1 << changed.length; mask++) {
        const image = Buffer.from(disk);
        changed.forEach((at, bit) => {
          if (mask & (1 << bit)) now.copy(image, at, at, at + Sector);
        });
        const loaded = parseStateBytes(image, file).state;
        expect(sinceSync, `save ${i}, sector mask ${mask.toString(2)}`).toContainEqual(loaded);
        images++;
      }
      if (sync) {
        disk = now;
        sinceSync = [state];
      }
    }
    console.log(`torn images checked: ${images}`);
    expect(images).toBeGreaterThan(20);
  });

  it('one damaged slot is reported and the other used; two are STATE_FILE_CORRUPT naming the file', () => {
    const file = path.join(dataDir, STATE_FILE_NAME);
    const seq = states();
    const s = freshFromV2();
    s.save(seq[0]!.state);
    s.save(seq[1]!.state);
    const bytes = fs.readFileSync(file);
    const half = bytes.length / 2;
    // Slot 1 holds the newest state: damage it, and slot 0 (the previous state) is used.
    const oneBad = Buffer.from(bytes);
    oneBad.write('XX', half + 60, 'latin1');
    fs.writeFileSync(file, oneBad);
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => lines.push(l) });
    expect(new StateFile(dataDir, logger, me).load()).toEqual(seq[0]!.state);
    expect(lines.some((l) => l.includes('damaged by an interrupted save') && l.includes('slot 1'))).toBe(true);
    const bothBad = Buffer.from(oneBad);
    bothBad.write('XX', 60, 'latin1');
    fs.writeFileSync(file, bothBad);
    let caught: unknown;
    try {
      new StateFile(dataDir, silent, me).load();
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ClusterError);
    expect((caught as ClusterError).code).toBe('STATE_FILE_CORRUPT');
    expect((caught as ClusterError).message).toContain(file);
    expect((caught as ClusterError).message).toMatch(/both slots are damaged \(slot 0: .*; slot 1: /);
  });

  it('a slot file of a newer version says so and does not advise moving it away', () => {
    const file = path.join(dataDir, STATE_FILE_NAME);
    freshFromV2().save(states()[0]!.state);
    fs.writeFileSync(file, fs.readFileSync(file, 'latin1').replaceAll('"version":3', '"version":4'), 'latin1');
    let caught: unknown;
    try {
      new StateFile(dataDir, silent, me).load();
    } catch (err) {
      caught = err;
    }
    expect((caught as ClusterError).message).toMatch(/format version 4, written by a newer raft-elector/);
    expect((caught as ClusterError).message).not.toMatch(/move it away/);
  });
});
