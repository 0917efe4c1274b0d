/**
 * `npm run soak -- --minutes N [--seed S] [--membership]`: runs test/faults/soak.ts under vitest
 * (`--membership`: in-cluster members, pods added and deleted during the faults). Node strips
 * the types of this file itself, so it imports node:* only.
 */
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';

let values: { minutes?: string; seed?: string; membership?: boolean };
try {
  ({ values } = parseArgs({ options: { minutes: { type: 'string' }, seed: { type: 'string' }, membership: { type: 'boolean' } }, strict: true }));
} catch (err) {
  process.stderr.write(`soak: ${(err as Error).message}; usage: npm run soak -- --minutes N [--seed S] [--membership]\n`);
  process.exit(2);
}
const minutes = values.minutes ?? '10';
if (!/^\d+(\.\d+)?$/.test(minutes) || Number(minutes) <= 0) {
  process.stderr.write(`soak: --minutes must be a positive number, got "${minutes}"\n`);
  process.exit(2);
}
if (values.seed !== undefined && !/^\d+$/.test(values.seed)) {
  process.stderr.write(`soak: --seed must be a whole number, got "${values.seed}"\n`);
  process.exit(2);
}
const env = {
  ...process.env,
  FAULTS_SOAK_MINUTES: minutes,
  ...(values.seed ? { FAULTS_SEEDS: values.seed } : {}),
  ...(values.membership ? { FAULTS_MEMBERSHIP: '1' } : {}),
};
const r = spawnSync(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', '--config', 'test/faults/vitest.soak.config.ts'], { stdio: 'inherit', env });
process.exit(r.status ?? 1);
