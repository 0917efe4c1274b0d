import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { TestClusterDns } from '../dns/server.js';
import { TestApiServer, type InClusterLayout } from '../k8s/apiserver.js';
import { ElectorBin, freePort, waitFor, type LeaderAnswer } from './harness.js';

/**
 * Three raft-elector processes in in-cluster mode: a test API server (HTTPS, bearer token,
 * in-cluster file layout) and a test cluster DNS serving the headless Service; each pod
 * listens on its own loopback address, as pods have their own IPs.
 */
const execFileAsync = promisify(execFile);
export const Namespace = 'shop';
export const Service = 'elector';
const Replicas = 3;
export const Pods = Array.from({ length: Replicas }, (_, i) => `${Service}-${i}`);
/** Each pod gets its own loopback address, as pods get their own IPs: the same peer port on all. */
const podIp = (i: number) => `127.0.0.${i + 1}`;

export function kubectlAvailable(): boolean {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A port free on every pod address. */
async function freePortOnAll(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await freePort();
    const ok = await Promise.all(
      Pods.map(
        (_, i) =>
          new Promise<boolean>((resolve) => {
            const s = createServer();
            s.once('error', () => resolve(false));
            s.listen(port, podIp(i), () => s.close(() => resolve(true)));
          }),
      ),
    );
    if (ok.every(Boolean)) return port;
  }
  throw new Error('no port free on every pod address');
}

interface PodProcess {
  name: string;
  httpPort: number;
  child: ChildProcess | undefined;
  lines: string[];
}

export class KubeCluster {
  readonly pods: PodProcess[] = [];
  private constructor(
    readonly api: TestApiServer,
    readonly dns: TestClusterDns,
    readonly layout: InClusterLayout,
    readonly kubeconfig: string,
    readonly dir: string,
    readonly peerPort: number,
    /** The command to run: the built dist/ entry, or the image's bundle, after any Node.js flags. */
    readonly command: string[],
  ) {}

  static async start(prepare?: (api: TestApiServer) => void, command: string[] = [ElectorBin]): Promise<KubeCluster> {
    const api = await TestApiServer.start({ tls: true, token: `it-${randomBytes(8).toString('hex')}`, serviceAccount: `${Namespace}:${Service}` });
    const peerPort = await freePortOnAll();
    const dns = await TestClusterDns.start({ namespace: Namespace, service: Service, port: peerPort });
    const dir = mkdtempSync(join(tmpdir(), 'raft-elector-k8s-'));
    writeFileSync(join(dir, 'secret'), randomBytes(32).toString('hex'));
    const c = new KubeCluster(api, dns, api.writeInClusterLayout(Namespace), api.writeKubeconfig(Namespace), dir, peerPort, command);
    Pods.forEach((name, i) => {
      api.createPod({ name, namespace: Namespace, labels: { app: Service }, phase: 'Running', containers: ['app', 'raft-elector'], podIP: podIp(i) });
      dns.setPod(name, podIp(i));
    });
    prepare?.(api);
    for (const name of Pods) c.pods.push({ name, httpPort: await freePort(), child: undefined, lines: [] });
    for (const p of c.pods) c.spawn(p);
    return c;
  }

  spawn(p: PodProcess): void {
    const i = Pods.indexOf(p.name);
    const child = spawn(
      process.execPath,
      [
        ...this.command,
        '--service', Service,
        '--pod-selector', `app=${Service}`,
        '--dns-server', this.dns.address,
        '--listen', `${podIp(i)}:${this.peerPort}`,
        '--http', `127.0.0.1:${p.httpPort}`,
        '--data-dir', join(this.dir, p.name),
        '--secret-file', join(this.dir, 'secret'),
        '--kube-token-file', this.layout.tokenFile,
        '--kube-ca-file', this.layout.caFile,
      ],
      {
        env: { ...process.env, ...this.layout.env, POD_NAME: p.name, POD_NAMESPACE: Namespace, POD_UID: this.api.getPod(p.name, Namespace)!.metadata.uid },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    p.child = child;
    let pending = '';
    const collect = (chunk: Buffer) => {
      const text = pending + chunk.toString('utf8');
      const cut = text.lastIndexOf('\n');
      pending = text.slice(cut + 1);
      for (const line of text.slice(0, cut + 1).split('\n')) if (line.trim()) p.lines.push(line);
    };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    child.on('exit', () => {
      if (p.child === child) p.child = undefined;
    });
  }

  pod(name: string): PodProcess {
    return this.pods.find((p) => p.name === name)!;
  }

  async leader(name: string): Promise<LeaderAnswer> {
    const res = await fetch(`http://127.0.0.1:${this.pod(name).httpPort}/leader`, { signal: AbortSignal.timeout(1_000) });
    return (await res.json()) as LeaderAnswer;
  }

  async agreedLeader(among: string[], deadlineMs = 15_000): Promise<LeaderAnswer> {
    return waitFor(`${among.join(',')} to agree on a leader`, deadlineMs, async () => {
      const answers = await Promise.all(among.map((n) => this.leader(n)));
      const first = answers[0];
      if (!first?.leader || !answers.every((a) => a.leader === first.leader && a.term === first.term)) return undefined;
      return answers.find((a) => a.self === first.leader)?.isLeader ? answers.find((a) => a.self === first.leader) : undefined;
    });
  }

  /** Asynchronous: the test API server runs in this process and must keep answering. */
  async kubectlLeaders(): Promise<string[]> {
    const { stdout } = await execFileAsync(
      'kubectl',
      ['--kubeconfig', this.kubeconfig, '--cache-dir', join(this.dir, 'kubectl-cache'), 'get', 'pods', '-l', 'raft-role=leader', '-o', 'name'],
      { encoding: 'utf8', timeout: 20_000 },
    );
    return stdout.split('\n').filter((l) => l.trim() !== '');
  }

  labelOf(name: string): string | undefined {
    return this.api.getPod(name, Namespace)?.metadata.labels?.['raft-role'];
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.pods.map(async (p) => {
        if (!p.child) return;
        const exited = new Promise((r) => p.child!.once('exit', r));
        p.child.kill('SIGCONT');
        p.child.kill('SIGKILL');
        await exited;
      }),
    );
    await this.dns.close();
    await this.api.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

