import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ElectorBin, waitFor } from './harness.js';

const demoBin = resolve(ElectorBin, '../demo.js');
let cleanup: (() => void) | undefined;
afterEach(() => {
  cleanup?.();
  cleanup = undefined;
});

describe('npm run demo', () => {
  it('shows a leader, and a new one after the leader is killed with the k key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'raft-elector-demo-'));
    const child = spawn(process.execPath, [demoBin], {
      env: { ...process.env, RAFT_ELECTOR_DEMO_DIR: dir },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    cleanup = () => {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    };
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const leaders = (): string[] => [...out.matchAll(/leader is (m\d) \(term (\d+)\)/g)].map((m) => m[1]!);
    const first = await waitFor('the demo to show a leader', 15_000, () => leaders()[0]);
    expect(out).toMatch(/m1 started[\s\S]*m2 started[\s\S]*m3 started/);
    child.stdin.write('k\n');
    await waitFor('the demo to report the kill', 5_000, () => (out.includes(`leader ${first} killed with SIGKILL`) ? true : undefined));
    const second = await waitFor('a new leader', 15_000, () => leaders().find((l) => l !== first));
    expect(second).not.toBe(first);
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.stdin.write('q\n');
    expect(await exited).toBe(0);
  });
});
