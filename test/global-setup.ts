import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';

/** Integration tests run the built command; build once before any test file runs. */
export default function setup(): void {
  const root = resolve(import.meta.dirname, '..');
  execFileSync(process.execPath, [resolve(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
    cwd: root,
    stdio: 'inherit',
  });
}
