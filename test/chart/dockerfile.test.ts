/**
 * The image: hadolint and the project's own checks on the Dockerfile, its
 * labels, its license notices, and its build replayed step by step.
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
import { copyContext, DockerIgnore, findHadolint, hadolint, listFiles, nodeMajorOf, parseDockerfile, projectChecks, replayDockerfile, stagesOf, type BuiltStage } from './dockerfile.js';

const repo = resolve(import.meta.dirname, '../..');
const dockerfile = readFileSync(join(repo, 'Dockerfile'), 'utf8');
const ignore = new DockerIgnore(readFileSync(join(repo, '.dockerignore'), 'utf8'));
const packageVersion = (JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string }).version;

const foundHadolint = findHadolint();
if ('missing' in foundHadolint) console.log(`[hadolint test skipped] ${foundHadolint.missing}`);

describe('Dockerfile rules', () => {
  it.skipIf('missing' in foundHadolint)('passes hadolint with no finding at any level', () => {
    const findings = hadolint((foundHadolint as { hadolint: string }).hadolint, dockerfile, repo);
    expect(findings.map((f) => `line ${f.line}: ${f.code} ${f.level}: ${f.message}`)).toEqual([]);
  });

  it.skipIf('missing' in foundHadolint)('hadolint names the generic mistakes (the check can fail)', () => {
    const bad = 'FROM node:latest AS build\nADD main.js /app/main.js\nFROM gcr.io/distroless/nodejs24-debian12\nENTRYPOINT node /app/main.js\n';
    const codes = hadolint((foundHadolint as { hadolint: string }).hadolint, bad, repo).map((f) => f.code);
    for (const code of ['DL3007', 'DL3020', 'DL3006', 'DL3025']) expect(codes, code).toContain(code);
  });

  it('passes the project\'s own checks: bundle not node_modules, EXPOSE 4040 4041, numeric non-root USER, one Node.js major', () => {
    expect(projectChecks(dockerfile)).toEqual([]);
  });

  it('builds on the Node.js major this repository runs (the replay below uses this machine\'s node)', () => {
    const build = stagesOf(parseDockerfile(dockerfile))[0]!;
    expect(nodeMajorOf(build.image)).toBe(process.versions.node.split('.')[0]);
  });

  it('names each broken project check in a bad Dockerfile', () => {
    const bad = [
      'FROM node:22.1.0 AS build',
      'RUN npm ci',
      'FROM gcr.io/distroless/nodejs24-debian12:nonroot',
      'COPY --from=build /src/node_modules ./node_modules',
      'USER nonroot',
      'EXPOSE 4040',
    ].join('\n');
    const problems = projectChecks(bad).join('\n');
    expect(problems).toContain('USER nonroot is not numeric');
    expect(problems).toContain('does not EXPOSE 4041');
    expect(problems).toContain('copies node_modules');
    expect(problems).toContain('no stage bundles (esbuild --bundle, or node build/bundle.ts)');
    expect(problems).toContain('the build stage runs Node.js 22, the runtime 24');
    expect(projectChecks('FROM node:24.1.0 AS b\nRUN esbuild x --bundle\nFROM node:24.1.0\nUSER 0\nEXPOSE 4040 4041').join('\n')).toContain('USER 0 is root');
  });

  it('labels the image with the OCI keys, the license of package.json, and version, revision and created from build args', () => {
    const runtime = stagesOf(parseDockerfile(dockerfile)).at(-1)!;
    const labels = Object.fromEntries(
      runtime.instructions.filter((i) => i.keyword === 'LABEL').flatMap((i) => [...i.args.matchAll(/([\w.-]+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!])),
    );
    const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { license: string };
    expect(labels).toMatchObject({
      'org.opencontainers.image.title': 'raft-elector',
      'org.opencontainers.image.licenses': pkg.license,
      'org.opencontainers.image.version': '${VERSION}',
      'org.opencontainers.image.revision': '${REVISION}',
      'org.opencontainers.image.created': '${CREATED}',
    });
    expect(labels['org.opencontainers.image.source']).toMatch(/^https:\/\//);
    expect(labels['org.opencontainers.image.description']).toBeTruthy();
    const args = runtime.instructions.filter((i) => i.keyword === 'ARG').map((i) => i.args.split('=')[0]);
    expect(args).toEqual(['VERSION', 'REVISION', 'CREATED']);
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

  it('ships the bundle (entry and chunks), the data-dir lock\'s native binding, package.json and THIRD_PARTY_LICENSES, no node_modules', () => {
    const files = listFiles(runtime.root);
    const chunks = files.filter((f) => /^app\/dist\/[\w-]+-[A-Z0-9]{8}\.mjs$/.test(f));
    expect(chunks.length).toBeGreaterThan(0);
    expect(files.filter((f) => !chunks.includes(f))).toEqual(['app/THIRD_PARTY_LICENSES', 'app/dist/fs-native-extensions.node', 'app/dist/raft-elector.mjs', 'app/package.json']);
    expect(runtime.user).toMatch(/^[1-9]\d*:\d+$/);
    expect(runtime.env.NODE_ENV).toBe('production');
  });

  it('ships THIRD_PARTY_LICENSES naming every package the bundle took code from, with its license text', () => {
    const notices = readFileSync(join(runtime.root, 'app/THIRD_PARTY_LICENSES'), 'utf8');
    // The metafile is esbuild's own account of the inputs; read it independently of the generator.
    const meta = JSON.parse(readFileSync(join(stages[0]!.root, 'src/image/meta.json'), 'utf8')) as { inputs: Record<string, unknown> };
    const bundled = new Set<string>();
    for (const input of Object.keys(meta.inputs)) {
      const m = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\/(?!.*node_modules\/)/.exec(input);
      if (m) bundled.add(JSON.parse(readFileSync(join(stages[0]!.root, 'src', input.slice(0, m.index + m[0].length), 'package.json'), 'utf8')).name as string);
    }
    expect(bundled.size).toBeGreaterThan(50);
    for (const name of ['express', 'pino', 'prom-client', 'undici', 'ws']) expect(bundled, name).toContain(name);
    // Types only (k8s/kube-client.ts is the sidecar's own client): none of its run-time code ships.
    expect(bundled).not.toContain('@kubernetes/client-node');
    const listed = new Set([...notices.matchAll(/^-{78}\n(.+)@[^@\n]+\nLicense: /gm)].map((m) => m[1]!));
    expect([...listed].sort()).toEqual([...bundled].sort());
    expect(notices).toContain('Permission is hereby granted, free of charge'); // MIT texts
    expect(notices).toContain('Apache License'); // prom-client
  });

  it('loads the Kubernetes client and the injector only when a mode needs them: no statically imported chunk holds them', () => {
    // esbuild's own account of the outputs: what raft-elector.mjs imports statically is what every member loads.
    const meta = JSON.parse(readFileSync(join(stages[0]!.root, 'src/image/meta.json'), 'utf8')) as {
      outputs: Record<string, { imports: { path: string; kind: string }[]; inputs: Record<string, unknown> }>;
    };
    const entry = Object.keys(meta.outputs).find((o) => o.endsWith('/raft-elector.mjs'))!;
    const loaded = new Set<string>();
    const visit = (output: string): void => {
      if (loaded.has(output) || !meta.outputs[output]) return;
      loaded.add(output);
      for (const i of meta.outputs[output].imports) if (i.kind === 'import-statement') visit(i.path);
    };
    visit(entry);
    const lazy = Object.keys(meta.outputs).filter((o) => o.endsWith('.mjs') && !loaded.has(o));
    expect(lazy.length).toBeGreaterThan(0);
    const eager = [...loaded].flatMap((o) => Object.keys(meta.outputs[o]!.inputs));
    expect(eager.filter((i) => i.includes('node_modules/@kubernetes/client-node/'))).toEqual([]);
    expect(eager.filter((i) => i.includes('k8s/injector/'))).toEqual([]);
    expect(eager.some((i) => i.includes('node_modules/ws/'))).toBe(true);
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

  it('runs in-cluster mode from the bundle: the Kubernetes client works bundled, the pod gets its leader label', async () => {
    const ep = entrypoint();
    const [peerPort, httpPort] = [await freePort(), await freePort()];
    const api = await TestApiServer.start({ tls: true, token: `image-${Date.now()}` });
    const dns = await TestClusterDns.start({ namespace: 'shop', service: 'solo', port: peerPort });
    const lines: string[] = [];
    try {
      const pod = api.createPod({ name: 'solo-0', namespace: 'shop', labels: { app: 'solo' }, containers: ['app', 'raft-elector'], podIP: '127.0.0.1' });
      dns.setPod('solo-0', '127.0.0.1');
      const layout = api.writeInClusterLayout('shop');
      const child = spawn(
        ep.command,
        [
          ...ep.args,
          '--service', 'solo', '--pod-selector', 'app=solo', '--insecure',
          '--listen', `127.0.0.1:${peerPort}`, '--http', `127.0.0.1:${httpPort}`,
          // A fresh data dir: the one above holds the one-member group's vote.
          '--data-dir', mkdtempSync(join(scratch, 'data-')),
          '--dns-server', dns.address, '--kube-token-file', layout.tokenFile, '--kube-ca-file', layout.caFile,
        ],
        { cwd: ep.cwd, env: { ...ep.env, ...layout.env, POD_NAME: 'solo-0', POD_NAMESPACE: 'shop', POD_UID: pod.metadata.uid }, stdio: ['ignore', 'pipe', 'pipe'] },
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
