/**
 * The previous version of raft-elector, the fixed voter set (`<sts>-<ordinal>` ids, `--replicas`),
 * built from git history for the upgrade test: the main line just before membership went live
 * (the first parent of "Merge branch 'k8s11'"). Built once per commit into
 * ~/.cache/raft-elector-e2e/old-build/<commit> (RAFT_ELECTOR_E2E_CACHE moves the cache): `git
 * archive` of the commit, this checkout's node_modules linked in when the lockfile is the same
 * (else `npm ci`), then `tsc -p tsconfig.build.json`. A shallow clone without the commit skips.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../chart/helm.js';

/**
 * `git log --first-parent`: the parent of cfba5d6 (Merge branch 'k8s11'). Later main-line commits
 * up to d540800 (Merge branch 'wire11') ran the reconciler beside the fixed voters, a state no
 * user should run: its leader removed the voters it could not match to a pod incarnation.
 */
export const FixedVoterCommit = '9a7530c5a476a8e58abc9968a36f4e302ff8789d';

export interface OldBuild {
  commit: string;
  dir: string;
  /** dist/cmd/raft-elector.js of the old build. */
  bin: string;
  chartDir: string;
}

function cacheRoot(): string {
  return join(process.env.RAFT_ELECTOR_E2E_CACHE ?? join(homedir(), '.cache/raft-elector-e2e'), 'old-build');
}

function git(args: string[]): { ok: boolean; out: string } {
  const run = spawnSync('git', ['-C', repoRoot, ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return { ok: run.status === 0, out: `${run.stdout}${run.stderr}`.trim() };
}

/** Links this checkout's node_modules into `dir` (lockfile unchanged since `commit`); false when it changed. */
function linkModules(dir: string, commit: string): boolean {
  if (!git(['diff', '--quiet', commit, 'HEAD', '--', 'package-lock.json']).ok) return false;
  const link = join(dir, 'node_modules');
  const temp = `${link}.${process.pid}`;
  rmSync(temp, { force: true });
  symlinkSync(join(repoRoot, 'node_modules'), temp, 'dir');
  // A rename replaces an older link atomically (another checkout may have built the cache).
  renameSync(temp, link);
  return true;
}

/** The old build, built if missing; a string says why it cannot be had here. */
export function oldBuild(commit = FixedVoterCommit): OldBuild | string {
  if (!git(['cat-file', '-e', `${commit}^{commit}`]).ok) return `commit ${commit.slice(0, 12)} (the fixed-voter version) is not in this clone's history (a shallow clone?)`;
  const dir = join(cacheRoot(), commit);
  const result: OldBuild = { commit, dir, bin: join(dir, 'dist/cmd/raft-elector.js'), chartDir: join(dir, 'charts/raft-elector') };
  const done = join(dir, '.complete');
  if (existsSync(done)) {
    if (existsSync(join(dir, 'node_modules.installed'))) return result;
    return linkModules(dir, commit) ? result : `the lockfile changed since ${commit.slice(0, 12)} and ${dir} has no node_modules of its own`;
  }
  const temp = `${dir}.tmp-${process.pid}`;
  rmSync(temp, { recursive: true, force: true });
  mkdirSync(temp, { recursive: true });
  try {
    execFileSync('sh', ['-c', `git -C "$1" archive "$2" | tar -x -C "$3"`, 'sh', repoRoot, commit, temp], { stdio: 'pipe' });
    if (!linkModules(temp, commit)) {
      execFileSync('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: temp, stdio: 'pipe' });
      writeFileSync(join(temp, 'node_modules.installed'), '');
    }
    execFileSync(process.execPath, [join(temp, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: temp, stdio: 'pipe' });
    writeFileSync(join(temp, '.complete'), `${commit}\n`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(temp, dir);
  } catch (err) {
    rmSync(temp, { recursive: true, force: true });
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(`building the fixed-voter version ${commit.slice(0, 12)} failed: ${e.stderr?.toString().slice(-2000) ?? e.message}`, { cause: err });
  }
  // The link made in temp points at this checkout; it moved with the directory.
  return result;
}
