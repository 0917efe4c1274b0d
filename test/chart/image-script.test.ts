/**
 * `npm run image` (build/image.ts): with no container engine it fails in one
 * line saying so; with one it runs that engine's build with the OCI label
 * values. Fake engines (shell scripts on PATH) record what they are asked.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from './helm.js';

const script = join(repoRoot, 'build/image.ts');
const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
const dirs: string[] = [];

/** A PATH with this machine's node, git and sh, plus the fake engines given (name → shell body). */
function fakePath(engines: Record<string, string>): { path: string; log: string } {
  const dir = mkdtempSync(join(tmpdir(), 'raft-elector-engines-'));
  dirs.push(dir);
  const log = join(dir, 'calls.log');
  for (const [name, body] of Object.entries(engines)) {
    writeFileSync(join(dir, name), `#!/bin/sh\necho "${name} $*" >> '${log}'\n${body}\n`);
    chmodSync(join(dir, name), 0o755);
  }
  const git = spawnSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).stdout.trim();
  // The fakes come first, so a real engine elsewhere on PATH is never reached.
  const extra = [dirname(process.execPath), git ? dirname(git) : '', '/bin'].filter((d) => d !== '');
  return { path: [dir, ...extra].join(':'), log };
}

function runImage(path: string, env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [script], { cwd: repoRoot, env: { PATH: path, HOME: tmpdir(), ...env }, encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('npm run image', () => {
  it('fails in one line naming what is missing when no engine works (docker without a daemon counts as none)', () => {
    // podman and buildah answer as a missing command does, whatever the machine has in /usr/bin.
    const { path } = fakePath({ docker: 'case "$1" in --version) echo "Docker version 28";; *) echo "Cannot connect to the Docker daemon" >&2; exit 1;; esac', podman: 'exit 127', buildah: 'exit 127' });
    const result = runImage(path);
    expect(result.status).toBe(1);
    expect(result.stderr.trim().split('\n')).toEqual(['npm run image: no container engine to build with (docker has no reachable daemon; podman not found; buildah not found); install docker, podman or buildah']);
  });

  it('builds with podman when docker is missing, tagging the package version and passing version, revision and created', () => {
    const { path, log } = fakePath({ docker: 'exit 127', podman: 'exit 0' });
    const result = runImage(path, { SOURCE_DATE_EPOCH: '1700000000' });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const build = readFileSync(log, 'utf8').split('\n').find((l) => l.startsWith('podman build'))!;
    expect(build).toContain(`--build-arg VERSION=${version}`);
    expect(build).toMatch(/--build-arg REVISION=([0-9a-f]{40}|unknown) /);
    expect(build).toContain('--build-arg CREATED=2023-11-14T22:13:20Z');
    expect(build).toContain(`--tag ghcr.io/raft-elector/raft-elector:${version} --file Dockerfile .`);
  });

  it('uses buildah bud, the IMAGE tag and CONTAINER_ENGINE when told, and reports a failed build', () => {
    const { path, log } = fakePath({ docker: 'exit 0', buildah: 'case "$1" in --version) exit 0;; *) exit 3;; esac' });
    const result = runImage(path, { CONTAINER_ENGINE: 'buildah', IMAGE: 'registry.corp/raft-elector:dev' });
    expect(readFileSync(log, 'utf8')).not.toContain('docker');
    expect(readFileSync(log, 'utf8')).toContain('buildah bud --build-arg');
    expect(readFileSync(log, 'utf8')).toContain('--tag registry.corp/raft-elector:dev');
    expect(result.status).toBe(1);
    expect(result.stderr.trim()).toBe('npm run image: buildah build failed (exit 3)');
    const unknown = runImage(path, { CONTAINER_ENGINE: 'kaniko' });
    expect(unknown.status).toBe(2);
    expect(unknown.stderr.trim()).toBe('npm run image: CONTAINER_ENGINE=kaniko is not one of docker, podman, buildah');
  });
});
