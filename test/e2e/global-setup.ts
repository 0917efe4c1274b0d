import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import buildDist from '../global-setup.js';
import { binDir, missingControlPlane } from './control-plane.js';
import { killRecordedGroups, PgidDirEnv } from './processes.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Why the e2e suite skips, or '' when the control plane binaries are there. */
    e2eSkipReason: string;
    /** Scratch directory of this run (control planes, members, logs). */
    e2eRunDir: string;
  }
}

/** Builds dist/, checks the control plane binaries, and kills whatever a test file left running. */
export default function setup(project: TestProject): () => void {
  const reason = missingControlPlane() ?? '';
  if (reason) console.log(`[e2e skipped] ${reason}`);
  else {
    buildDist();
    console.log(`[e2e] control plane binaries in ${binDir()}`);
  }
  const runDir = mkdtempSync(join(process.env.RAFT_ELECTOR_E2E_WORKDIR ?? tmpdir(), 'raft-elector-e2e-'));
  // Inherited by the test workers, which record every process group they start.
  process.env[PgidDirEnv] = join(runDir, 'pgids');
  project.provide('e2eSkipReason', reason);
  project.provide('e2eRunDir', runDir);
  return () => {
    const killed = killRecordedGroups(join(runDir, 'pgids'));
    if (killed > 0) console.log(`[e2e] teardown killed ${killed} process group(s) a test left running`);
    if (process.env.E2E_KEEP !== '1') rmSync(runDir, { recursive: true, force: true });
    else console.log(`[e2e] kept ${runDir} (E2E_KEEP=1)`);
  };
}
