import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createServer } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DurableState } from '../raft/index.js';
import { ConfigError } from './config.js';
import { LOW_FD_LIMIT, MIN_FD_LIMIT, checkFdHeadroom, probeListen, readFdUsage, readFlagFile, voteMustBeMember } from './startup.js';

function capture(): { logger: pino.Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines: () => chunks.join('').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>) };
}

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'startup-test-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('open-file headroom', () => {
  it('reads the soft limit and the open count from /proc-style files', () => {
    fs.writeFileSync(
      path.join(dir, 'limits'),
      'Limit                     Soft Limit           Hard Limit           Units\nMax processes             63703                63703                processes\nMax open files            1024                 524288               files\n',
    );
    fs.mkdirSync(path.join(dir, 'fd'));
    for (const n of ['0', '1', '2']) fs.writeFileSync(path.join(dir, 'fd', n), '');
    expect(readFdUsage(dir)).toEqual({ softLimit: 1024, open: 3 });
    expect(readFdUsage(path.join(dir, 'missing'))).toBeUndefined();
  });

  it(`refuses a limit below ${MIN_FD_LIMIT} (or too little headroom), warns below ${LOW_FD_LIMIT}, names the limit`, () => {
    const { logger, lines } = capture();
    expect(() => checkFdHeadroom({ softLimit: 200, open: 10 }, logger)).toThrow(
      new ConfigError(`the open-file limit (RLIMIT_NOFILE, ulimit -n) is 200 with 10 in use; raft-elector needs at least ${MIN_FD_LIMIT}: raise it`),
    );
    expect(() => checkFdHeadroom({ softLimit: 300, open: 250 }, logger)).toThrow(ConfigError);
    checkFdHeadroom({ softLimit: 1024, open: 20 }, logger);
    expect(lines()).toEqual([expect.objectContaining({ level: 40, fdLimit: 1024, fdOpen: 20 })]);
    checkFdHeadroom({ softLimit: 65536, open: 20 }, logger);
    checkFdHeadroom(undefined, logger);
    expect(lines().filter((l) => l.level === 40)).toHaveLength(1);
  });

  it('the real /proc/self is read on Linux', () => {
    if (process.platform !== 'linux') {
      console.log('skipped: /proc/self/limits is Linux only');
      return;
    }
    const usage = readFdUsage();
    expect(usage?.softLimit).toBeGreaterThan(0);
    expect(usage?.open).toBeGreaterThan(2);
  });
});

describe('files a flag names', () => {
  it('a FIFO is refused at once, not read forever', () => {
    const fifo = path.join(dir, 'fifo');
    try {
      execFileSync('mkfifo', [fifo]);
    } catch {
      console.log('skipped: no mkfifo');
      return;
    }
    expect(() => readFlagFile(fifo, '--secret-file', 4096)).toThrow(new ConfigError(`--secret-file ${fifo} is not a regular file`));
  });

  it('a missing file names the flag', () => {
    const missing = path.join(dir, 'missing');
    expect(() => readFlagFile(missing, '--tls-ca', 4096)).toThrow(`--tls-ca ${missing} cannot be read: ENOENT`);
  });

  it('reads a regular file up to the bound', () => {
    fs.writeFileSync(path.join(dir, 'ok'), 'x'.repeat(4096));
    expect(readFlagFile(path.join(dir, 'ok'), '--secret-file', 4096).length).toBe(4096);
  });
});

describe('probeListen', () => {
  it('names the flag and address of a port in use, and frees a port it could bind', async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    try {
      await expect(probeListen('--listen', { host: '127.0.0.1', port })).rejects.toThrow(
        new ConfigError(`--listen 127.0.0.1:${port} is already in use (EADDRINUSE)`),
      );
    } finally {
      await new Promise((r) => server.close(r));
    }
    await probeListen('--listen', { host: '127.0.0.1', port });
    await probeListen('--listen', { host: '127.0.0.1', port });
  });
});

describe('voteMustBeMember', () => {
  const state = (vote: string): DurableState => ({ hardState: { term: 2, vote, commit: 0 }, snapshot: { index: 0, term: 0 }, entries: [] });
  const store = (s: DurableState | undefined) => ({ filePath: '/data/raft-state.json', load: () => s, save: () => {} });

  it('passes a vote for a voter, no vote and no file; refuses a vote for a non-voter naming file and flag', () => {
    expect(voteMustBeMember(store(state('b')), ['a', 'b'], '--peers').load()).toEqual(state('b'));
    expect(voteMustBeMember(store(state('')), ['a', 'b'], '--peers').load()).toEqual(state(''));
    expect(voteMustBeMember(store(undefined), ['a', 'b'], '--peers').load()).toBeUndefined();
    expect(() => voteMustBeMember(store(state('z')), ['b', 'a'], '--peers').load()).toThrow(
      'state file /data/raft-state.json records a vote for "z" in term 2, who is not a voter (--peers: a, b)',
    );
  });

  it("passes a vote for a member of the file's own configuration", () => {
    const withConf: DurableState = { ...state('c'), confState: { voters: ['a', 'c'], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } };
    expect(voteMustBeMember(store(withConf), ['a', 'b'], '--peers').load()).toEqual(withConf);
  });
});
