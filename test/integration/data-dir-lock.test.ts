/**
 * Issue 9, finding 1, as real processes: two raft-elector processes on one data dir
 * (one member id, other ports). The second refuses with exit 2, naming the dir and the
 * holder; a SIGSTOPped holder still blocks it (it would wake and vote from the same file);
 * a SIGKILLed holder never blocks a restart.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ElectorBin, freePort, waitFor } from './harness.js';

const dir = mkdtempSync(join(tmpdir(), 'raft-elector-lock-it-'));
const dataDir = join(dir, 'data');
const children: ChildProcess[] = [];

afterAll(() => {
  for (const child of children) {
    child.kill('SIGCONT');
    child.kill('SIGKILL');
  }
  rmSync(dir, { recursive: true, force: true });
});

interface Started {
  child: ChildProcess;
  http: string;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

async function start(): Promise<Started> {
  const peer = await freePort();
  const http = `127.0.0.1:${await freePort()}`;
  const child = spawn(
    process.execPath,
    [ElectorBin, '--id', 'solo', '--peers', `solo=127.0.0.1:${peer}`, '--listen', `127.0.0.1:${peer}`, '--http', http, '--insecure', '--data-dir', dataDir],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, http, stdout: () => out, stderr: () => err, exited };
}

async function leads(s: Started, deadlineMs: number): Promise<void> {
  await waitFor(`pid ${s.child.pid} to lead`, deadlineMs, async () => {
    const body = (await (await fetch(`http://${s.http}/leader`, { signal: AbortSignal.timeout(500) })).json()) as { isLeader: boolean };
    return body.isLeader || undefined;
  }, 20);
}

/** The second process's whole output: exit 2 and one line naming the dir and the holder. */
async function expectRefused(holder: Started): Promise<void> {
  const second = await start();
  const code = await Promise.race([second.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 20_000))]);
  expect(code, second.stdout() + second.stderr()).toBe(2);
  expect(second.stderr()).toMatch(
    new RegExp(`^raft-elector: data dir ${dataDir} is in use by another raft-elector process \\(pid ${holder.child.pid}, started \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z, member "solo"\\); one process per data dir\\n$`),
  );
  expect(second.stdout()).not.toContain('listening for peers');
}

describe('one process per data dir', () => {
  it('refuses a second process, also while the holder is SIGSTOPped, and lets a restart take over at once after SIGKILL', async () => {
    const holder = await start();
    await leads(holder, 15_000);
    await expectRefused(holder);

    holder.child.kill('SIGSTOP');
    await expectRefused(holder);
    holder.child.kill('SIGCONT');
    await leads(holder, 5_000);

    holder.child.kill('SIGKILL');
    await holder.exited;
    const startedAt = Date.now();
    const next = await start();
    // At once: no lock expiry to wait for. The deadline only bounds a loaded machine.
    await waitFor('the restarted process to pass start-up', 10_000, () => (next.stdout().includes('"msg":"raft-elector running"') ? true : undefined), 20);
    console.log(`[data-dir-lock] restart after SIGKILL running in ${Date.now() - startedAt} ms`);
    expect(next.stderr()).toBe('');
    await leads(next, 15_000);
    next.child.kill('SIGTERM');
    expect(await next.exited).toBe(0);
  }, 90_000);
});
