/**
 * Issue 9, findings 6 and 7, as an operator meets them: the built command, started with one
 * mistake each, prints exactly one line on stderr naming the flag or file and exits 2, before
 * it listens for peers. And the signals that used to end it on the crash path.
 */
import { spawn, type SpawnOptions } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STATE_FILE_NAME, serializeState } from '../../cluster/state-file.js';
import { ElectorBin, freePort, waitFor } from './harness.js';

const tlsDir = resolve(import.meta.dirname, '../fixtures/tls');
const NobodyUid = 65534;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'raft-elector-operator-'));
  // Traversable by the unprivileged user of the read-only-dir cases.
  chmodSync(dir, 0o755);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let dirCount = 0;
function dataDir(): string {
  return join(dir, `data-${++dirCount}`);
}

async function baseArgs(data = dataDir()): Promise<string[]> {
  const peer = await freePort();
  return ['--id', 'a', '--peers', `a=127.0.0.1:${peer}`, '--listen', `127.0.0.1:${peer}`, '--http', `127.0.0.1:${await freePort()}`, '--insecure', '--data-dir', data];
}

/** Runs the built command to its exit (a deadline, not a sleep), with `prefix` as a shell prefix when given. */
function runElector(args: string[], options: { shellPrefix?: string; spawn?: SpawnOptions } = {}): Promise<Run> {
  const child = options.shellPrefix
    ? spawn('sh', ['-c', `${options.shellPrefix} && exec "$0" "$@"`, process.execPath, ElectorBin, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...options.spawn })
    : spawn(process.execPath, [ElectorBin, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...options.spawn });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolveRun, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`raft-elector ${args.join(' ')} did not exit within 20 s\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, 20_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolveRun({ code, stdout, stderr });
    });
  });
}

/** Exit 2, exactly one stderr line matching `line`, and no peer listener or raft ever started. */
function expectConfigError(run: Run, line: string | RegExp): void {
  const context = `\nstdout: ${run.stdout}\nstderr: ${run.stderr}`;
  expect(run.stderr.endsWith('\n') && run.stderr.split('\n').length === 2, `one stderr line${context}`).toBe(true);
  const text = run.stderr.trimEnd();
  if (typeof line === 'string') expect(text).toBe(`raft-elector: ${line}`);
  else expect(text).toMatch(line);
  expect(run.stderr).not.toMatch(/\n\s+at /);
  expect(run.stdout).not.toContain('listening for peers');
  expect(run.code, context).toBe(2);
}

function listenOn(port: number): Promise<Server> {
  const server = createServer();
  return new Promise((r) => server.listen(port, '127.0.0.1', () => r(server)));
}

describe('one clear line and exit 2 for each operator error', () => {
  it('--secret-file /dev/zero: not a regular file (it used to hang)', async () => {
    const args = (await baseArgs()).filter((a) => a !== '--insecure');
    expectConfigError(await runElector([...args, '--secret-file', '/dev/zero']), '--secret-file /dev/zero is not a regular file');
  });

  it('a secret file larger than any secret is refused, naming its size', async () => {
    const big = join(dir, 'big-secret');
    writeFileSync(big, 'x'.repeat(10_000));
    const args = (await baseArgs()).filter((a) => a !== '--insecure');
    expectConfigError(await runElector([...args, '--secret-file', big]), `--secret-file ${big} is 10000 bytes, more than the 4096 it may hold`);
  });

  it('a garbage --tls-ca is refused (it used to be accepted, leaving the member isolated)', async () => {
    const garbage = join(dir, 'garbage-ca.pem');
    writeFileSync(garbage, 'not a certificate\n');
    const tls = ['--tls-cert', join(tlsDir, 'member.pem'), '--tls-key', join(tlsDir, 'member-key.pem'), '--tls-ca', garbage];
    expectConfigError(await runElector([...(await baseArgs()), ...tls]), `--tls-ca ${garbage} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  });

  it('a TLS key that does not match its certificate', async () => {
    const key = join(tlsDir, 'ca-key.pem');
    const cert = join(tlsDir, 'member.pem');
    const tls = ['--tls-cert', cert, '--tls-key', key, '--tls-ca', join(tlsDir, 'ca.pem')];
    expectConfigError(await runElector([...(await baseArgs()), ...tls]), `--tls-key ${key} does not match the certificate in --tls-cert ${cert}`);
  });

  it('--http in use: names the flag and address, and the transport never started', async () => {
    const port = await freePort();
    const server = await listenOn(port);
    try {
      const args = await baseArgs();
      args[args.indexOf('--http') + 1] = `127.0.0.1:${port}`;
      expectConfigError(await runElector(args), `--http 127.0.0.1:${port} is already in use (EADDRINUSE)`);
    } finally {
      server.close();
    }
  });

  it('--listen in use: names the flag and address', async () => {
    const port = await freePort();
    const server = await listenOn(port);
    try {
      const args = await baseArgs();
      args[args.indexOf('--listen') + 1] = `127.0.0.1:${port}`;
      args[args.indexOf('--peers') + 1] = `a=127.0.0.1:${port}`;
      const run = await runElector(args);
      expectConfigError(run, `--listen 127.0.0.1:${port} is already in use (EADDRINUSE)`);
      expect(run.stdout).not.toContain('api listening');
    } finally {
      server.close();
    }
  });

  it('a state file voting for a non-member names the file and the flag', async () => {
    const data = dataDir();
    mkdirSync(data);
    const file = join(data, STATE_FILE_NAME);
    writeFileSync(file, serializeState({ hardState: { term: 4, vote: 'zed', commit: 0 }, snapshot: { index: 0, term: 0 }, entries: [] }, { memberId: 'a', group: 'raft-elector' }));
    expectConfigError(
      await runElector(await baseArgs(data)),
      `state file ${file} records a vote for "zed" in term 4, who is not a voter (--peers: a); restore the voter, or move the file away if this member's votes may be forgotten safely`,
    );
  });

  it("b's state file does not load as a's: names the file and both identities", async () => {
    const data = dataDir();
    mkdirSync(data);
    const file = join(data, STATE_FILE_NAME);
    writeFileSync(file, serializeState({ hardState: { term: 3, vote: 'b', commit: 0 }, snapshot: { index: 0, term: 0 }, entries: [] }, { memberId: 'b', group: 'raft-elector' }));
    expectConfigError(
      await runElector(await baseArgs(data)),
      `state file ${file} belongs to member "b" of group "raft-elector", but this process is member "a" of group "raft-elector" (the member id differs: --id, or POD_NAME in-cluster); give each member its own --data-dir`,
    );
  });

  it('an open-file limit below the minimum is refused, naming the limit', async () => {
    expectConfigError(
      await runElector(await baseArgs(), { shellPrefix: 'ulimit -n 128' }),
      /^raft-elector: the open-file limit \(RLIMIT_NOFILE, ulimit -n\) is 128 with \d+ in use; raft-elector needs at least 256: raise it$/,
    );
  });

  it('a low open-file limit starts, with a warning naming the limit', async () => {
    const args = await baseArgs();
    const http = args[args.indexOf('--http') + 1]!;
    const child = spawn('sh', ['-c', 'ulimit -n 1024 && exec "$0" "$@"', process.execPath, ElectorBin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await waitFor('the member to lead', 15_000, async () => ((await (await fetch(`http://${http}/leader`)).json()) as { isLeader: boolean }).isLeader || undefined, 50);
      const warning = out.split('\n').find((l) => l.includes('open-file limit'));
      expect(JSON.parse(warning ?? '{}')).toMatchObject({ level: 40, fdLimit: 1024, msg: expect.stringContaining('is low: 1024') });
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('a data dir it cannot write (finding 6)', () => {
  // As root every mode bit is ignored: run the member as an unprivileged user instead.
  const asUser: SpawnOptions = process.getuid?.() === 0 ? { uid: NobodyUid, gid: NobodyUid } : {};

  it('mode 555: refused before the member joins, naming the dir', async () => {
    const data = dataDir();
    mkdirSync(data, { mode: 0o555 });
    chmodSync(data, 0o555);
    expectConfigError(
      await runElector(await baseArgs(data), { spawn: asUser }),
      `data dir ${data} is not writable: cannot open ${join(data, 'raft-elector.lock')}: EACCES: permission denied, open '${join(data, 'raft-elector.lock')}'`,
    );
  });

  it('a writable lock file in a read-only dir: the probe file write fails, naming --data-dir', async () => {
    const data = dataDir();
    mkdirSync(data);
    writeFileSync(join(data, 'raft-elector.lock'), '');
    if (asUser.uid !== undefined) chownSync(join(data, 'raft-elector.lock'), NobodyUid, NobodyUid);
    chmodSync(data, 0o555);
    const probe = join(data, '.raft-elector-probe-');
    expectConfigError(
      await runElector(await baseArgs(data), { spawn: asUser }),
      new RegExp(`^raft-elector: --data-dir ${data} is not writable: cannot write a probe file in it: EACCES: permission denied, open '${probe}\\d+'$`),
    );
  });
});

describe('signals', () => {
  async function startSolo(): Promise<{ child: ReturnType<typeof spawn>; out: () => string; http: string }> {
    const args = await baseArgs();
    const http = args[args.indexOf('--http') + 1]!;
    const child = spawn(process.execPath, [ElectorBin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor('the member to lead', 15_000, async () => ((await (await fetch(`http://${http}/leader`)).json()) as { isLeader: boolean }).isLeader || undefined, 50);
    return { child, out: () => out, http };
  }

  it('SIGHUP takes the graceful path (exit 0) with a line saying there is no reload', async () => {
    const { child, out } = await startSolo();
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGHUP');
    expect(await exited).toBe(0);
    expect(out()).toContain('"msg":"SIGHUP: raft-elector has no configuration reload; stopping gracefully (restart it to apply a change)"');
    expect(out()).toContain('"msg":"stopped"');
  });

  it('SIGUSR2 is logged and ignored: the member keeps leading', async () => {
    const { child, out, http } = await startSolo();
    try {
      child.kill('SIGUSR2');
      await waitFor('the SIGUSR2 log line', 10_000, () => (out().includes('"msg":"SIGUSR2 ignored: raft-elector defines no action for it"') ? true : undefined));
      expect(child.exitCode).toBe(null);
      expect(((await (await fetch(`http://${http}/leader`)).json()) as { isLeader: boolean }).isLeader).toBe(true);
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
