/**
 * A loopback member must not load Node's bundled undici (about 13 MB of RSS): an ESM import
 * of node:http does, through the facade that reads its lazy WebSocket getters, so value
 * imports of node:http/node:https go through cluster/node-http.ts.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ElectorBin, freePort } from './harness.js';

const dir = mkdtempSync(join(tmpdir(), 'raft-elector-floor-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('memory floor', () => {
  it('a running member has not loaded undici', { timeout: 30_000 }, async () => {
    const [peer, other, httpPort] = [await freePort(), await freePort(), await freePort()];
    writeFileSync(join(dir, 'secret'), 'ab'.repeat(32), { mode: 0o600 });
    const child = spawn(
      process.execPath,
      [
        '--require', resolve(import.meta.dirname, '../fixtures/report-builtins.cjs'),
        ElectorBin,
        '--id', 'm1',
        '--peers', `m1=127.0.0.1:${peer},m2=127.0.0.1:${other}`,
        '--listen', `127.0.0.1:${peer}`,
        '--http', `127.0.0.1:${httpPort}`,
        '--data-dir', join(dir, 'data'),
        '--secret-file', join(dir, 'secret'),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, REPORT_BUILTINS_URL: `http://127.0.0.1:${httpPort}/leader` } },
    );
    let stderr = '';
    const line = await new Promise<string>((resolveLine, reject) => {
      const timer = setTimeout(() => reject(new Error(`no report within 25 s; stderr: ${stderr}`)), 25_000);
      child.stderr!.on('data', (chunk: Buffer) => {
        stderr += chunk.toString('utf8');
        const m = /^BUILTINS (.*)$/m.exec(stderr);
        if (m) {
          clearTimeout(timer);
          resolveLine(m[1]!);
        }
      });
    });
    child.kill('SIGKILL');
    const loaded = JSON.parse(line) as string[];
    expect(loaded).toContain('NativeModule http');
    expect(loaded.filter((m) => m.includes('undici'))).toEqual([]);
  });
});
