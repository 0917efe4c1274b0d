import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DurableState } from '../raft/index.js';
import { ClusterError } from './errors.js';
import { MAX_SAVE_ATTEMPTS, STATE_FILE_NAME, StateFile, parseStateBytes, serializeState, type StateIdentity } from './state-file.js';

function captureLogger(): { logger: pino.Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  const logger = pino({ level: 'debug' }, stream);
  return {
    logger,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

const sample: DurableState = {
  hardState: { term: 7, vote: 'member-b', commit: 5 },
  snapshot: { index: 3, term: 2 },
  entries: [
    { index: 4, term: 2 },
    { index: 5, term: 6 },
    { index: 6, term: 7 },
  ],
};

let dir: string;
let filePath: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'state-file-test-'));
  filePath = path.join(dir, 'data', STATE_FILE_NAME);
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const me: StateIdentity = { memberId: 'member-a', group: 'shop' };

function store(identity: StateIdentity = me): StateFile {
  return new StateFile(path.join(dir, 'data'), captureLogger().logger, identity);
}

function expectCode(fn: () => unknown, code: string, messagePart: RegExp): ClusterError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ClusterError);
  const err = caught as ClusterError;
  expect(err.code).toBe(code);
  expect(err.message).toContain(filePath);
  expect(err.message).toMatch(messagePart);
  return err;
}

describe('StateFile', () => {
  it('returns undefined for a fresh member and creates the data dir with mode 0700', () => {
    const s = store();
    expect(s.load()).toBeUndefined();
    const mode = fs.statSync(path.join(dir, 'data')).mode & 0o777;
    expect(mode).toBe(0o700);
  });

  it('round-trips a state, and the newest save wins', () => {
    const s = store();
    s.save(sample);
    expect(store().load()).toEqual(sample);
    const next: DurableState = { ...sample, hardState: { term: 8, vote: '', commit: 6 } };
    s.save(next);
    expect(store().load()).toEqual(next);
    expect(fs.readdirSync(path.join(dir, 'data'))).toEqual([STATE_FILE_NAME]);
  });

  it('round-trips an empty log', () => {
    const s = store();
    const empty: DurableState = { hardState: { term: 0, vote: '', commit: 0 }, snapshot: { index: 0, term: 0 }, entries: [] };
    s.save(empty);
    expect(store().load()).toEqual(empty);
  });

  it('ignores and removes a temp file left by a crash before the rename', () => {
    const s = store();
    s.save(sample);
    const other: DurableState = { ...sample, hardState: { term: 9, vote: 'member-c', commit: 5 } };
    // A crash after writing the temp file but before the rename leaves exactly this behind.
    fs.writeFileSync(filePath + '.tmp', serializeState(other));
    const { logger, lines } = captureLogger();
    expect(new StateFile(path.join(dir, 'data'), logger, me).load()).toEqual(sample);
    expect(fs.existsSync(filePath + '.tmp')).toBe(false);
    expect(lines().some((l) => String(l.msg).includes('interrupted save'))).toBe(true);
  });

  it('a torn temp file without a real file still means a fresh member', () => {
    store().load(); // creates the dir
    fs.writeFileSync(filePath + '.tmp', serializeState(sample).slice(0, 20));
    expect(store().load()).toBeUndefined();
  });

  const goodText = (): string => serializeState(sample);
  const corruptions: Array<{ name: string; text: () => string; message: RegExp }> = [
    { name: 'an empty file', text: () => '', message: /not valid JSON/ },
    { name: 'a torn write', text: () => goodText().slice(0, goodText().length - 30), message: /not valid JSON/ },
    { name: 'an edited term', text: () => goodText().replace('"term":7', '"term":8'), message: /checksum mismatch/ },
    { name: 'an edited vote', text: () => goodText().replace('member-b', 'member-c'), message: /checksum mismatch/ },
    { name: 'a JSON array', text: () => '[1,2]', message: /file must be an object/ },
    {
      name: 'an unknown version',
      text: () => goodText().replace('"version":1', '"version":0'),
      message: /version 0 is not supported/,
    },
    { name: 'another format', text: () => goodText().replace('raft-elector-state', 'other'), message: /file\.format/ },
    { name: 'a missing checksum', text: () => goodText().replace(/"sha256":"[0-9a-f]+",/, ''), message: /sha256 is missing/ },
  ];
  for (const c of corruptions) {
    it(`refuses ${c.name} with STATE_FILE_CORRUPT naming the file`, () => {
      store().load();
      fs.writeFileSync(filePath, c.text());
      expectCode(() => store().load(), 'STATE_FILE_CORRUPT', c.message);
    });
  }

  // Shapes that pass the checksum (written with a valid sum) but break the log's invariants.
  const badShapes: Array<{ name: string; state: unknown; message: RegExp }> = [
    { name: 'a negative term', state: { ...sample, hardState: { term: -1, vote: '', commit: 0 } }, message: /hardState\.term must be a non-negative/ },
    { name: 'a fractional commit', state: { ...sample, hardState: { term: 7, vote: '', commit: 4.5 } }, message: /commit must be a non-negative safe integer/ },
    { name: 'a numeric vote', state: { ...sample, hardState: { term: 7, vote: 3, commit: 5 } }, message: /vote must be "" or a member id/ },
    {
      name: 'a gap in the entries',
      state: { ...sample, entries: [{ index: 4, term: 2 }, { index: 6, term: 7 }] },
      message: /entries\[1\]\.index is 6, expected 5/,
    },
    {
      name: 'falling entry terms',
      state: { ...sample, entries: [{ index: 4, term: 3 }, { index: 5, term: 2 }] },
      message: /entries\[1\]\.term 2 is below/,
    },
    { name: 'an entry term above the current term', state: { ...sample, entries: [{ index: 4, term: 8 }] }, message: /above the current term/ },
    { name: 'commit beyond the log', state: { ...sample, hardState: { term: 7, vote: '', commit: 10 } }, message: /commit 10 lies outside the log \[3, 6\]/ },
    { name: 'a missing snapshot', state: { hardState: sample.hardState, entries: [] }, message: /state\.snapshot is missing/ },
  ];
  for (const c of badShapes) {
    it(`refuses ${c.name} with STATE_FILE_CORRUPT naming the field`, () => {
      store().load();
      const stateJson = JSON.stringify(c.state);
      const sum = createHash('sha256').update(stateJson).digest('hex');
      fs.writeFileSync(filePath, `{"format":"raft-elector-state","version":1,"sha256":"${sum}","state":${stateJson}}`);
      expectCode(() => store().load(), 'STATE_FILE_CORRUPT', c.message);
    });
  }

  it('refuses a state file that is a directory with STATE_FILE_UNREADABLE', () => {
    fs.mkdirSync(filePath, { recursive: true });
    expectCode(() => store().load(), 'STATE_FILE_UNREADABLE', /not a regular file/);
  });

  it('refuses to save a state load() would reject, and leaves the old file alone', () => {
    const s = store();
    s.save(sample);
    const bad = { ...sample, hardState: { term: 7, vote: '', commit: 99 } };
    let caught: unknown;
    try {
      s.save(bad);
    } catch (err) {
      caught = err;
    }
    expect((caught as ClusterError).code).toBe('STATE_INVALID');
    expect(store().load()).toEqual(sample);
  });

  it('reports a data dir that cannot be created', () => {
    const blocker = path.join(dir, 'data');
    fs.writeFileSync(blocker, 'a file where the dir should be');
    let caught: unknown;
    try {
      store().load();
    } catch (err) {
      caught = err;
    }
    expect((caught as ClusterError).code).toBe('STATE_FILE_UNREADABLE');
    expect((caught as ClusterError).message).toContain(blocker);
  });

  it('a dangling symlink in place of the state file is unreadable, not a fresh member', () => {
    // Starting fresh here would forget a vote the member gave: the file is missing, not absent.
    store().load();
    fs.symlinkSync(path.join(dir, 'gone', STATE_FILE_NAME), filePath);
    expectCode(() => store().load(), 'STATE_FILE_UNREADABLE', /symlink|link/);
  });

  it('follows a symlink to a good state file', () => {
    const real = path.join(dir, 'elsewhere.json');
    store().load();
    fs.writeFileSync(real, serializeState(sample));
    fs.symlinkSync(real, filePath);
    expect(store().load()).toEqual(sample);
  });

  it('a failed write (ENOSPC) reports the file and step, keeps the old state and leaves no temp file', () => {
    const s = store();
    s.save(sample);
    // The temp file is opened by name: pointing it at /dev/full makes every write fail with ENOSPC.
    if (!fs.existsSync('/dev/full')) {
      console.log('skipped: no /dev/full to simulate ENOSPC');
      return;
    }
    fs.symlinkSync('/dev/full', filePath + '.tmp');
    // A state that outgrows its slot is written through a new, bigger file (the temp file).
    const entries = Array.from({ length: 400 }, (_, i) => ({ index: 4 + i, term: 8 }));
    const next: DurableState = { hardState: { term: 8, vote: 'member-c', commit: 5 }, snapshot: sample.snapshot, entries };
    const err = expectCode(() => s.save(next), 'STATE_FILE_WRITE_FAILED', /write the temp file: .*ENOSPC|no space/i);
    expect(err.message).toMatch(/ENOSPC/);
    expect(fs.existsSync(filePath + '.tmp')).toBe(false);
    expect(fs.lstatSync(path.join(dir, 'data')).isDirectory()).toBe(true);
    expect(store().load()).toEqual(sample);
  });

  it('a file from a newer version says so and does not advise moving it away', () => {
    store().load();
    fs.writeFileSync(filePath, serializeState(sample, me).replace('"version":2', '"version":4'));
    const err = expectCode(() => store().load(), 'STATE_FILE_CORRUPT', /version 4/);
    expect(err.message).toMatch(/newer raft-elector/);
    expect(err.message).not.toMatch(/move it away/);
  });

  it('a state file it may not read is STATE_FILE_UNREADABLE naming the file', () => {
    const s = store();
    s.save(sample);
    fs.chmodSync(filePath, 0o000);
    try {
      if (process.getuid?.() === 0) {
        console.log('skipped: running as root, which reads a mode-000 file anyway');
        return;
      }
      expectCode(() => store().load(), 'STATE_FILE_UNREADABLE', /EACCES|permission denied/i);
    } finally {
      fs.chmodSync(filePath, 0o600);
    }
  });
});


describe('identity', () => {
  it('records the member id and group, and refuses a file of another member or group, naming both', () => {
    store().save(sample);
    expect(parseStateBytes(fs.readFileSync(filePath), filePath)).toMatchObject({ version: 3, identity: { memberId: 'member-a', group: 'shop' } });
    expect(store().load()).toEqual(sample);
    const other = expectCode(() => store({ memberId: 'member-c', group: 'shop' }).load(), 'STATE_FILE_IDENTITY_MISMATCH', /belongs to/);
    expect(other.message).toBe(
      `state file ${filePath} belongs to member "member-a" of group "shop", but this process is member "member-c" of group "shop" (the member id differs: --id, or POD_NAME in-cluster); give each member its own --data-dir`,
    );
    const group = expectCode(() => store({ memberId: 'member-a', group: 'cart' }).load(), 'STATE_FILE_IDENTITY_MISMATCH', /--cluster-name/);
    expect(group.message).toContain('of group "cart"');
  });

  it('a container restart (same pod UID) loads its own file; a plain id ignores the UID', () => {
    const inc = { memberId: 'web-0@uid-1', group: 'shop', podUid: 'uid-1' };
    store(inc).save(sample);
    expect(store(inc).load()).toEqual(sample);
    expect(fs.existsSync(filePath)).toBe(true);
  });

  it('moves a file of another incarnation of the pod aside (*.stale-<uid>) with a warning, and starts fresh', () => {
    store({ memberId: 'web-0@uid-1', group: 'shop', podUid: 'uid-1' }).save(sample);
    const { logger, lines } = captureLogger();
    const fresh = new StateFile(path.join(dir, 'data'), logger, { memberId: 'web-0@uid-2', group: 'shop', podUid: 'uid-2' });
    expect(fresh.load()).toBeUndefined();
    expect(fs.existsSync(filePath)).toBe(false);
    expect(fs.existsSync(`${filePath}.stale-uid-1`)).toBe(true);
    const warn = lines().find((l) => l.level === 40 && String(l.msg).includes('another incarnation'));
    expect(warn).toMatchObject({ movedTo: `${filePath}.stale-uid-1` });
    // Nothing lost: the second move of the same uid keeps the first.
    store({ memberId: 'web-0@uid-1', group: 'shop', podUid: 'uid-1' }).save(sample);
    expect(store({ memberId: 'web-0@uid-3', group: 'shop', podUid: 'uid-3' }).load()).toBeUndefined();
    expect(fs.readdirSync(path.dirname(filePath)).filter((f) => f.startsWith('raft-state.json.stale-uid-1')).length).toBe(2);
  });

  it('moves a fixed-voter era file (plain pod-name id, or version 1) aside as stale-legacy', () => {
    store({ memberId: 'web-0', group: 'shop' }).save(sample);
    expect(store({ memberId: 'web-0@uid-2', group: 'shop', podUid: 'uid-2' }).load()).toBeUndefined();
    expect(fs.existsSync(`${filePath}.stale-legacy`)).toBe(true);
  });

  it('still refuses a file of another pod or group (not moved)', () => {
    store({ memberId: 'web-1@uid-1', group: 'shop', podUid: 'uid-1' }).save(sample);
    expectCode(() => store({ memberId: 'web-0@uid-2', group: 'shop', podUid: 'uid-2' }).load(), 'STATE_FILE_IDENTITY_MISMATCH', /member id differs/);
    expect(fs.existsSync(filePath)).toBe(true);
  });

  it('adopts a version-1 file (no identity) with a warning, and records the identity on the next save', () => {
    fs.mkdirSync(path.dirname(filePath), { recursive: true });
    fs.writeFileSync(filePath, serializeState(sample));
    expect(JSON.parse(fs.readFileSync(filePath, 'utf8'))).toMatchObject({ version: 1 });
    const { logger, lines } = captureLogger();
    const s = new StateFile(path.join(dir, 'data'), logger, me);
    expect(s.load()).toEqual(sample);
    expect(lines().some((l) => l.level === 40 && String(l.msg).includes('records no identity'))).toBe(true);
    s.save(sample);
    expect(parseStateBytes(fs.readFileSync(filePath), filePath)).toMatchObject({ version: 3, identity: me });
    expectCode(() => store({ memberId: 'member-b', group: 'shop' }).load(), 'STATE_FILE_IDENTITY_MISMATCH', /member-a/);
  });

  it('an edited identity fails the checksum', () => {
    store().save(sample);
    fs.writeFileSync(filePath, fs.readFileSync(filePath, 'utf8').replaceAll('"memberId":"member-a"', '"memberId":"member-c"'));
    expectCode(() => store({ memberId: 'member-c', group: 'shop' }).load(), 'STATE_FILE_CORRUPT', /checksum mismatch/);
  });
});

describe('symlinked state file', () => {
  it('stays a symlink across saves: the temp file is written beside the target and renamed over it', () => {
    const realDir = path.join(dir, 'volume');
    fs.mkdirSync(realDir);
    const real = path.join(realDir, 'state.json');
    fs.writeFileSync(real, serializeState(sample, me));
    store().load();
    fs.symlinkSync(real, filePath);
    const next: DurableState = { ...sample, hardState: { term: 8, vote: 'member-c', commit: 5 } };
    const s = store();
    expect(s.load()).toEqual(sample);
    s.save(next);
    expect(fs.lstatSync(filePath).isSymbolicLink()).toBe(true);
    expect(fs.readlinkSync(filePath)).toBe(real);
    expect(store().load()).toEqual(next);
    expect(fs.readdirSync(realDir)).toEqual(['state.json']);
  });
});

describe('out of file descriptors', () => {
  // A real fd table: a child under `ulimit -n`, running the build (test/global-setup.ts compiles dist/).
  it(`retries a save that hits EMFILE (up to ${MAX_SAVE_ATTEMPTS} attempts) with the spare fd it holds`, () => {
    const module = new URL('../dist/cluster/state-file.js', import.meta.url).pathname;
    const script = `
      import * as fs from 'node:fs';
      import { pino } from 'pino';
      const { StateFile } = await import(${JSON.stringify(module)});
      const s = new StateFile(${JSON.stringify(path.join(dir, 'data'))}, pino(pino.destination({ dest: 1, sync: true })), { memberId: 'member-a', group: 'shop' });
      s.load();
      const held = [];
      try { for (;;) held.push(fs.openSync('/dev/null', 'r')); } catch (err) { console.log(JSON.stringify({ full: err.code, held: held.length })); }
      s.save(${JSON.stringify(sample)});
      console.log(JSON.stringify({ saved: true }));
    `;
    const out = execFileSync('sh', ['-c', 'ulimit -n 64 && exec "$0" --input-type=module -e "$1"', process.execPath, script], {
      cwd: path.resolve(import.meta.dirname, '..'),
      encoding: 'utf8',
      timeout: 20_000,
    });
    const lines = out.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.find((l) => 'full' in l)?.full).toBe('EMFILE');
    expect(lines.some((l) => l.msg === 'out of file descriptors while saving state: retrying' && l.freedSpareFd === true)).toBe(true);
    expect(lines.at(-1)).toEqual({ saved: true });
    expect(store().load()).toEqual(sample);
  });
});
