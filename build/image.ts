/**
 * `npm run image`: build the image from the Dockerfile with the first container
 * engine that works here — docker (with a reachable daemon), podman, or
 * buildah — passing the OCI label values (version from package.json, the git
 * commit, the build time). Without one it fails with one line saying so.
 *
 *   npm run image                         # tag ghcr.io/raft-elector/raft-elector:<version>
 *   IMAGE=registry.corp/raft-elector:dev npm run image
 *   CONTAINER_ENGINE=podman npm run image # skip the search
 *
 * Run by Node.js itself (type stripping): node:* imports and erasable TypeScript only.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ENGINES = ['docker', 'podman', 'buildah'] as const;
type Engine = (typeof ENGINES)[number];

const repo = resolve(import.meta.dirname, '..');

/** Whether `engine` is installed and, for docker, its daemon answers; the reason when not. */
function probe(engine: Engine): string | null {
  const version = spawnSync(engine, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  if (version.error || version.status !== 0) return `${engine} not found`;
  if (engine === 'docker') {
    const info = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], { encoding: 'utf8', timeout: 20_000 });
    if (info.status !== 0) return 'docker has no reachable daemon';
  }
  return null;
}

function git(args: string[]): string | undefined {
  const result = spawnSync('git', args, { cwd: repo, encoding: 'utf8', timeout: 10_000 });
  return result.status === 0 ? result.stdout.trim() : undefined;
}

function main(): number {
  const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string };
  const wanted = process.env.CONTAINER_ENGINE;
  if (wanted !== undefined && !(ENGINES as readonly string[]).includes(wanted)) {
    console.error(`npm run image: CONTAINER_ENGINE=${wanted} is not one of ${ENGINES.join(', ')}`);
    return 2;
  }
  const reasons: string[] = [];
  let engine: Engine | undefined;
  for (const candidate of wanted === undefined ? ENGINES : [wanted as Engine]) {
    const reason = probe(candidate);
    if (reason === null) {
      engine = candidate;
      break;
    }
    reasons.push(reason);
  }
  if (engine === undefined) {
    console.error(`npm run image: no container engine to build with (${reasons.join('; ')}); install docker, podman or buildah`);
    return 1;
  }
  const tag = process.env.IMAGE ?? `ghcr.io/raft-elector/raft-elector:${pkg.version}`;
  const revision = git(['rev-parse', 'HEAD']) ?? 'unknown';
  // SOURCE_DATE_EPOCH makes `created` reproducible when the caller sets it.
  const epoch = process.env.SOURCE_DATE_EPOCH;
  const created = (epoch ? new Date(Number(epoch) * 1000) : new Date()).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const buildArgs = [`VERSION=${pkg.version}`, `REVISION=${revision}`, `CREATED=${created}`].flatMap((a) => ['--build-arg', a]);
  const args = engine === 'buildah' ? ['bud', ...buildArgs, '--tag', tag, '--file', 'Dockerfile', '.'] : ['build', ...buildArgs, '--tag', tag, '--file', 'Dockerfile', '.'];
  console.log(`npm run image: ${engine} ${args.join(' ')}`);
  const build = spawnSync(engine, args, { cwd: repo, stdio: 'inherit' });
  if (build.status !== 0) {
    console.error(`npm run image: ${engine} build failed (exit ${build.status ?? build.signal})`);
    return 1;
  }
  console.log(`npm run image: built ${tag} (version ${pkg.version}, revision ${revision})`);
  return 0;
}

process.exitCode = main();
