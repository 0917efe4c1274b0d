/**
 * The image: the Dockerfile's rules, and its build replayed step by step.
 *
 * No Docker engine runs here, so the COPY/RUN steps of every stage are replayed
 * in a scratch directory built from the repository minus .dockerignore, and the
 * runtime stage's ENTRYPOINT is started from what its COPY steps put there. A
 * broken step (a file the context lacks, a failing build, a bundle that needs
 * node_modules at run time) fails here.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClusterDns } from '../dns/server.js';
import { TestApiServer } from '../k8s/apiserver.js';
import { freePort, waitFor, type LeaderAnswer } from '../integration/harness.js';
import { copyContext, DockerIgnore, lintDockerfile, listFiles, parseDockerfile, replayDockerfile, stagesOf, type BuiltStage } from './dockerfile.js';

const repo = resolve(import.meta.dirname, '../..');
const dockerfile = readFileSync(join(repo, 'Dockerfile'), 'utf8');
const ignore = new DockerIgnore(readFileSync(join(repo, '.dockerignore'), 'utf8'));
const packageVersion = (JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string }).version;

describe('Dockerfile rules', () => {
  it('passes the rules: pinned bases, no latest, bundle or --omit=dev, numeric non-root USER, EXPOSE 4040 4041, exec-form ENTRYPOINT, no ADD', () => {
    expect(lintDockerfile(dockerfile)).toEqual([]);
  });

  it('builds on the Node.js major this repository runs (the replay below uses this machine\'s node)', () => {
    const build = stagesOf(parseDockerfile(dockerfile))[0]!;
    expect(build.image).toMatch(/^node:(\d+)\./);
    expect(/^node:(\d+)\./.exec(build.image)![1]).toBe(process.versions.node.split('.')[0]);
  });

  it('names each broken rule in a bad Dockerfile', () => {
    const bad = [
      'FROM node:latest AS build',
      'RUN npm install',
      'ADD https://example.com/x.tgz /x.tgz',
      'FROM gcr.io/distroless/nodejs20-debian12:nonroot',
      'COPY --from=build /src/node_modules ./node_modules',
      'RUN echo hi',
      'USER nonroot',
      'EXPOSE 4040',
      'ENTRYPOINT node /app/main.js',
    ].join('\n');
    const problems = lintDockerfile(bad).join('\n');
    expect(problems).toContain('uses the "latest" tag');
    expect(problems).toContain('tag "nonroot" of gcr.io/distroless/nodejs20-debian12:nonroot names no version');
    expect(problems).toContain('ADD of a URL');
    expect(problems).toContain('USER nonroot is not numeric');
    expect(problems).toContain('does not EXPOSE 4041');
    expect(problems).toContain('ENTRYPOINT is not in exec form');
    expect(problems).toContain('RUN in the runtime stage');
    expect(problems).toContain('copies node_modules that no `npm ci --omit=dev` produced');
    expect(problems).toContain('no `npm ci`');
    expect(problems).toContain('`npm install` in a RUN step');
    expect(lintDockerfile('FROM node:20.1.0 AS b\nRUN npm ci\nFROM node:20.1.0\nUSER 0\nEXPOSE 4040 4041\nENTRYPOINT ["node"]').join('\n')).toContain('USER 0 is root');
  });

  it('keeps the build context to what the build needs', () => {
    for (const path of ['cmd/raft-elector.ts', 'raft/rawnode.ts', 'package-lock.json', 'tsconfig.build.json']) expect(ignore.excludes(path), path).toBe(false);
    for (const path of ['node_modules/ws/index.js', 'dist/cmd/raft-elector.js', '.git/HEAD', 'test/k8s/apiserver.ts', 'cmd/config.test.ts', 'charts/raft-elector/Chart.yaml', 'README.md']) {
      expect(ignore.excludes(path), path).toBe(true);
    }
  });
});

describe('the image build, replayed', () => {
  let scratch: string;
  let stages: BuiltStage[];
  let runtime: BuiltStage;
  const children: ChildProcess[] = [];

  beforeAll(() => {
    scratch = mkdtempSync(join(tmpdir(), 'raft-elector-image-'));
    const context = join(scratch, 'context');
    const files = copyContext(repo, ignore, context);
    expect(files).toContain('cmd/raft-elector.ts');
    const runEnv: NodeJS.ProcessEnv = {
      PATH: `${dirname(process.execPath)}:/usr/local/bin:/usr/bin:/bin`,
      HOME: process.env.HOME ?? tmpdir(),
      // Everything comes from the npm cache this machine already holds.
      npm_config_prefer_offline: 'true',
      npm_config_update_notifier: 'false',
      npm_config_loglevel: 'error',
      // The machine's registry access (a CA for an intercepting proxy), as a build host has it.
      ...(process.env.NODE_EXTRA_CA_CERTS ? { NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS } : {}),
    };
    const started = Date.now();
    try {
      stages = replayDockerfile(dockerfile, {
        context,
        scratch,
        runEnv,
        runTimeoutMs: 150_000,
        onStep: (stage, i) => console.log(`[image +${Date.now() - started} ms] ${stage}: ${i.keyword} ${i.args.slice(0, 100)}`),
      });
    } catch (error) {
      const e = error as { stderr?: Buffer; stdout?: Buffer; message: string };
      throw new Error(`${e.message}\n${e.stdout?.toString() ?? ''}\n${e.stderr?.toString() ?? ''}`, { cause: error });
    }
    console.log(`[image] replayed in ${Date.now() - started} ms`);
    runtime = stages.at(-1)!;
  }, 200_000);

  afterAll(() => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  /** The ENTRYPOINT with the image's node replaced by this machine's and its paths mapped into the scratch root. */
  function entrypoint(): { command: string; args: string[]; cwd: string; env: NodeJS.ProcessEnv } {
    const [binary, ...rest] = runtime.entrypoint!;
    expect(posix.basename(binary!)).toBe('node');
    return {
      command: process.execPath,
      args: rest.map((a) => (a.startsWith('/') ? join(runtime.root, a) : a)),
      cwd: join(runtime.root, runtime.workdir),
      // Only what the image sets: a bundle that needs NODE_PATH or anything else from here fails.
      env: { ...runtime.env, PATH: '/nonexistent' },
    };
  }

  it('ships one bundled file, the data-dir lock\'s native binding and package.json, no node_modules', () => {
    const files = listFiles(runtime.root);
    expect(files).toEqual(['app/dist/fs-native-extensions.node', 'app/dist/raft-elector.mjs', 'app/package.json']);
    expect(runtime.user).toMatch(/^[1-9]\d*:\d+$/);
    expect(runtime.env.NODE_ENV).toBe('production');
  });

  it('answers --help and --version from the runtime stage alone', () => {
    const ep = entrypoint();
    const help = spawnSync(ep.command, [...ep.args, '--help'], { cwd: ep.cwd, env: ep.env, encoding: 'utf8', timeout: 20_000 });
    expect(help.stderr).toBe('');
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('Usage: raft-elector [options]');
    expect(help.stdout).toContain('--pod-selector');
    const version = spawnSync(ep.command, [...ep.args, '--version'], { cwd: ep.cwd, env: ep.env, encoding: 'utf8', timeout: 20_000 });
    expect(version.status).toBe(0);
    expect(version.stdout.trim()).toBe(`raft-elector ${packageVersion}`);
  });

  it('starts a one-member group that elects itself and stops cleanly on SIGTERM', async () => {
    const ep = entrypoint();
    const [peerPort, httpPort] = [await freePort(), await freePort()];
    const lines: string[] = [];
    const child = spawn(
      ep.command,
      [
        ...ep.args,
        '--id', 'solo',
        '--peers', `solo=127.0.0.1:${peerPort}`,
        '--listen', `127.0.0.1:${peerPort}`,
        '--http', `127.0.0.1:${httpPort}`,
        '--insecure',
        // The image's default data dir, mapped into the scratch root.
        '--data-dir', join(runtime.root, 'var/lib/raft-elector'),
      ],
      { cwd: ep.cwd, env: ep.env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(child);
    child.stdout.on('data', (d: Buffer) => lines.push(d.toString()));
    child.stderr.on('data', (d: Buffer) => lines.push(d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      const answer = await waitFor('the single member to lead', 15_000, async () => {
        const res = await fetch(`http://127.0.0.1:${httpPort}/leader`);
        const body = (await res.json()) as LeaderAnswer;
        return body.isLeader ? body : undefined;
      }, 50);
      expect(answer).toMatchObject({ leader: 'solo', self: 'solo', isLeader: true });
      expect(answer.term).toBeGreaterThanOrEqual(1);
      expect((await fetch(`http://127.0.0.1:${httpPort}/healthz`)).status).toBe(200);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${lines.join('')}`, { cause: error });
    }
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  it('runs in-cluster mode from the bundle: @kubernetes/client-node works bundled, the pod gets its leader label', async () => {
    const ep = entrypoint();
    const [peerPort, httpPort] = [await freePort(), await freePort()];
    const api = await TestApiServer.start({ tls: true, token: `image-${Date.now()}` });
    const dns = await TestClusterDns.start({ namespace: 'shop', service: 'solo', port: peerPort });
    const lines: string[] = [];
    try {
      api.createPod({ name: 'solo-0', namespace: 'shop', labels: { app: 'solo' }, containers: ['app', 'raft-elector'], podIP: '127.0.0.1' });
      dns.setPod('solo-0', '127.0.0.1');
      const layout = api.writeInClusterLayout('shop');
      const child = spawn(
        ep.command,
        [
          ...ep.args,
          '--replicas', '1', '--service', 'solo', '--pod-selector', 'app=solo', '--insecure',
          '--listen', `127.0.0.1:${peerPort}`, '--http', `127.0.0.1:${httpPort}`,
          // A fresh data dir: the one above holds the one-member group's vote.
          '--data-dir', mkdtempSync(join(scratch, 'data-')),
          '--dns-server', dns.address, '--kube-token-file', layout.tokenFile, '--kube-ca-file', layout.caFile,
        ],
        { cwd: ep.cwd, env: { ...ep.env, ...layout.env, POD_NAME: 'solo-0', POD_NAMESPACE: 'shop' }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      children.push(child);
      child.stdout.on('data', (d: Buffer) => lines.push(d.toString()));
      child.stderr.on('data', (d: Buffer) => lines.push(d.toString()));
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      await waitFor('the bundled in-cluster member to label its pod leader', 15_000, () => (api.getPod('solo-0', 'shop')?.metadata.labels?.['raft-role'] === 'leader' ? true : undefined), 50);
      const answer = (await (await fetch(`http://127.0.0.1:${httpPort}/leader`)).json()) as LeaderAnswer;
      expect(answer).toMatchObject({ self: 'solo-0', leader: 'solo-0', isLeader: true });
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${lines.join('')}`, { cause: error });
    } finally {
      await dns.close();
      await api.close();
    }
  });
});
