/**
 * The Kubernetes side of a membership fault run: the test API server of test/k8s (in this
 * process, root namespace), reached by the members over the never-faulted obs bridge through a
 * forwarder in the hub namespace (TCP there, a Unix socket across, TCP to the server here), and
 * the pod objects the harness creates and deletes the way a controller and the kubelet would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { TestApiServer, type InClusterLayout, type Pod } from '../k8s/apiserver.js';
import { ElectorBin } from '../integration/harness.js';
import { ObsHost, type FaultNet } from './netns.js';

export const Namespace = 'faults';
export const Service = 'elector';
export const Selector = `app=${Service}`;
const ForwardPort = 6443;

export class FaultKube {
  private api: TestApiServer | undefined;
  private layout: InClusterLayout | undefined;
  private bridge: Server | undefined;
  private forwarder: ChildProcess | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly dir: string) {}

  get server(): TestApiServer {
    if (!this.api) throw new Error('the test API server is not started');
    return this.api;
  }

  async start(net: FaultNet): Promise<void> {
    // autoFinalize off: a deleted pod goes away when its process has stopped, as the kubelet reports it.
    this.api = await TestApiServer.start({
      tls: true,
      token: `faults-${randomBytes(8).toString('hex')}`,
      serviceAccount: `${Namespace}:${Service}`,
      certificateIps: [ObsHost],
      autoFinalize: false,
    });
    this.layout = this.api.writeInClusterLayout(Namespace);
    const path = join(this.dir, 'api.sock');
    rmSync(path, { force: true });
    const port = this.api.portNumber;
    this.bridge = createServer((client) => {
      const upstream = connect(port, '127.0.0.1');
      this.sockets.add(client).add(upstream);
      client.pipe(upstream).pipe(client);
      const done = (): void => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on('error', done).on('close', done);
      upstream.on('error', done).on('close', done);
    });
    await new Promise<void>((resolve, reject) => this.bridge!.once('error', reject).listen(path, () => resolve()));
    const script = join(dirname(dirname(dirname(ElectorBin))), 'test/faults/forward.ts');
    const child = spawn('ip', ['netns', 'exec', net.hub, process.execPath, script, ObsHost, String(ForwardPort), path], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.forwarder = child;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the API forwarder in the hub namespace did not start within 10 s')), 10_000);
      child.stdout!.once('data', () => {
        clearTimeout(timer);
        resolve();
      });
      child.stderr!.on('data', (c: Buffer) => process.stderr.write(`forward: ${c.toString('utf8')}`));
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`the API forwarder exited with ${code}`));
      });
    });
  }

  /** Flags and environment of an in-cluster member for pod `pod`. */
  memberArgs(pod: { name: string; uid: string }): { args: string[]; env: Record<string, string> } {
    const layout = this.layout!;
    return {
      args: [
        '--service', Service,
        '--pod-selector', Selector,
        '--no-lease-mirror',
        '--kube-token-file', layout.tokenFile,
        '--kube-ca-file', layout.caFile,
      ],
      env: {
        KUBERNETES_SERVICE_HOST: ObsHost,
        KUBERNETES_SERVICE_PORT: String(ForwardPort),
        POD_NAME: pod.name,
        POD_NAMESPACE: Namespace,
        POD_UID: pod.uid,
      },
    };
  }

  createPod(name: string, podIP: string): Pod {
    return this.server.createPod({ name, namespace: Namespace, labels: { app: Service }, phase: 'Running', containers: ['app', 'raft-elector'], podIP });
  }

  /** A graceful delete: deletionTimestamp now (the pod watch sees it leaving), removal on finalize(). */
  beginDelete(name: string): void {
    if (this.server.getPod(name, Namespace)) this.server.deletePod(name, { namespace: Namespace, gracePeriodSeconds: 30 });
  }

  finalize(name: string): void {
    if (this.server.getPod(name, Namespace)) this.server.finalizeDeletion(name, Namespace);
  }

  podNames(): string[] {
    return this.server.listPods(Namespace).map((p) => p.metadata.name).sort();
  }

  /** Synchronous, for the exit hook too. */
  stopNow(): void {
    this.forwarder?.kill('SIGKILL');
    for (const s of this.sockets) s.destroy();
    this.bridge?.close();
  }

  async stop(): Promise<void> {
    this.stopNow();
    await this.api?.close();
  }
}
