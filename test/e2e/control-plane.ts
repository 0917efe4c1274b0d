/**
 * A real Kubernetes control plane on loopback, from the binaries `npm run e2e:prepare`
 * built: etcd, kube-apiserver (Node,RBAC authorization, service-account issuer and keys,
 * an admin client certificate) and kube-controller-manager with only the controllers the
 * suite needs. Ports are random free ones; everything lives in one scratch directory.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, waitFor } from '../integration/harness.js';
import { AuditPolicy } from './audit.js';
import { GroupProcess } from './processes.js';
import { KubeRest } from './rest.js';

const execFileAsync = promisify(execFile);

export const K8sVersion = 'v1.34.4';
export const EtcdVersion = 'v3.6.4';
const Binaries = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kubectl'] as const;

export function binDir(): string {
  return join(process.env.RAFT_ELECTOR_E2E_CACHE ?? join(homedir(), '.cache/raft-elector-e2e'), K8sVersion, 'bin');
}

/** Why the suite cannot run here, or null when every binary is built. */
export function missingControlPlane(): string | null {
  const missing = Binaries.filter((b) => !existsSync(join(binDir(), b)));
  if (missing.length > 0) return `control plane not built (${missing.join(', ')} missing in ${binDir()}): run npm run e2e:prepare`;
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
  } catch {
    return 'openssl is not installed (the e2e makes the cluster certificates with it)';
  }
  return null;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function makeCertificates(dir: string): void {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=raft-elector e2e CA'], dir);
  const sign = (name: string, subject: string, ext: string) => {
    writeFileSync(join(dir, `${name}.ext`), `${ext}\nbasicConstraints=CA:FALSE\n`);
    openssl(['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], dir);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`], dir);
  };
  sign('apiserver', '/CN=kube-apiserver', 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth');
  sign('admin', '/O=system:masters/CN=e2e-admin', 'extendedKeyUsage=clientAuth');
  // The ServiceAccount token signing key pair.
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'sa.key'], dir);
  openssl(['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
}

export class ControlPlane {
  etcd!: GroupProcess;
  apiserver!: GroupProcess;
  controllerManager!: GroupProcess;
  readonly admin: KubeRest;
  readonly kubeconfig: string;
  readonly caFile: string;
  readonly server: string;
  /** Every request at level Metadata (who, verb, resource, User-Agent), across restarts. */
  readonly auditLog: string;
  private apiserverLives = 0;

  private constructor(
    readonly dir: string,
    readonly apiPort: number,
    private readonly etcdPorts: [number, number],
  ) {
    this.server = `https://127.0.0.1:${apiPort}`;
    this.caFile = join(dir, 'ca.crt');
    this.kubeconfig = join(dir, 'admin.kubeconfig');
    this.auditLog = join(dir, 'audit.log');
    writeFileSync(join(dir, 'audit-policy.yaml'), AuditPolicy);
    writeFileSync(
      this.kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters: [{name: e2e, cluster: {server: "' + this.server + '", certificate-authority: "' + this.caFile + '"}}]',
        'users: [{name: admin, user: {client-certificate: "' + join(dir, 'admin.crt') + '", client-key: "' + join(dir, 'admin.key') + '"}}]',
        'contexts: [{name: e2e, context: {cluster: e2e, user: admin}}]',
        'current-context: e2e',
        '',
      ].join('\n'),
    );
    this.admin = new KubeRest({ server: this.server, ca: readFileSync(this.caFile, 'utf8'), cert: readFileSync(join(dir, 'admin.crt'), 'utf8'), key: readFileSync(join(dir, 'admin.key'), 'utf8') });
  }

  static async start(dir: string): Promise<ControlPlane> {
    mkdirSync(dir, { recursive: true });
    makeCertificates(dir);
    const cp = new ControlPlane(dir, await freePort(), [await freePort(), await freePort()]);
    try {
      await cp.startEtcd();
      await cp.startApiServer();
      cp.startControllerManager();
    } catch (error) {
      await cp.stop();
      throw error;
    }
    return cp;
  }

  private bin(name: (typeof Binaries)[number]): string {
    return join(binDir(), name);
  }

  private async startEtcd(): Promise<void> {
    const [client, peer] = this.etcdPorts;
    this.etcd = GroupProcess.start('etcd', this.bin('etcd'), [
      '--name=e2e',
      `--data-dir=${join(this.dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${client}`,
      `--advertise-client-urls=http://127.0.0.1:${client}`,
      `--listen-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-cluster=e2e=http://127.0.0.1:${peer}`,
      '--unsafe-no-fsync', // a throwaway store on a shared disk: durability buys nothing here
      '--log-level=warn',
    ], { logFile: join(this.dir, 'etcd.log') });
    await waitFor('etcd to answer /health', 30_000, async () => {
      if (!this.etcd.running) throw new Error(`etcd exited\n${this.etcd.tail()}`);
      const res = await fetch(`http://127.0.0.1:${client}/health`, { signal: AbortSignal.timeout(1_000) }).catch(() => undefined);
      return res?.ok ? true : undefined;
    }, 100);
  }

  async startApiServer(): Promise<void> {
    const d = (f: string) => join(this.dir, f);
    this.apiserverLives += 1;
    this.apiserver = GroupProcess.start('kube-apiserver', this.bin('kube-apiserver'), [
      `--etcd-servers=http://127.0.0.1:${this.etcdPorts[0]}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${this.apiPort}`,
      `--cert-dir=${d('apiserver-certs')}`,
      `--tls-cert-file=${d('apiserver.crt')}`,
      `--tls-private-key-file=${d('apiserver.key')}`,
      `--client-ca-file=${d('ca.crt')}`,
      '--authorization-mode=Node,RBAC',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${d('sa.pub')}`,
      `--service-account-signing-key-file=${d('sa.key')}`,
      '--service-cluster-ip-range=10.96.0.0/16',
      // No kube-proxy, no Endpoints for the kubernetes Service: the members reach 127.0.0.1 directly.
      '--endpoint-reconciler-type=none',
      `--audit-policy-file=${d('audit-policy.yaml')}`,
      `--audit-log-path=${this.auditLog}`,
      '--audit-log-mode=blocking',
      '--v=1',
    ], { logFile: d(`kube-apiserver.${this.apiserverLives}.log`) });
    await waitFor('kube-apiserver to answer /readyz', 120_000, async () => {
      if (!this.apiserver.running) throw new Error(`kube-apiserver exited\n${this.apiserver.tail()}`);
      const res = await this.admin.raw('GET', '/readyz', undefined, undefined, 2_000).catch(() => undefined);
      return res?.status === 200 ? true : undefined;
    }, 200);
  }

  private startControllerManager(): void {
    // Only these: the EndpointSlice controller rejects loopback pod IPs, and no kubelet
    // runs to need the node or service-account-token controllers.
    this.controllerManager = GroupProcess.start('kube-controller-manager', this.bin('kube-controller-manager'), [
      `--kubeconfig=${this.kubeconfig}`,
      '--controllers=statefulset-controller,deployment-controller,replicaset-controller,garbage-collector-controller,disruption-controller,root-ca-certificate-publisher-controller',
      `--root-ca-file=${join(this.dir, 'ca.crt')}`,
      '--leader-elect=false',
      '--secure-port=0',
      '--v=1',
    ], { logFile: join(this.dir, 'kube-controller-manager.log') });
  }

  /** SIGTERM the API server, wait for its graceful exit, start it again on the same port. */
  async restartApiServer(): Promise<{ downMs: number; exitMs: number }> {
    const started = performance.now();
    this.apiserver.signal('SIGTERM');
    if (!(await this.apiserver.waitExit(90_000))) throw new Error(`kube-apiserver did not exit within 90 s of SIGTERM\n${this.apiserver.tail()}`);
    const exitMs = performance.now() - started;
    await this.startApiServer();
    return { downMs: performance.now() - started, exitMs };
  }

  /** The built kubectl with the admin kubeconfig. */
  async kubectl(args: string[]): Promise<string> {
    try {
      const run = await execFileAsync(this.bin('kubectl'), ['--kubeconfig', this.kubeconfig, '--cache-dir', join(this.dir, 'kubectl-cache'), ...args], {
        encoding: 'utf8',
        timeout: 60_000,
        maxBuffer: 16 * 1024 * 1024,
      });
      return run.stdout;
    } catch (error) {
      const e = error as { stderr?: string; message: string };
      throw new Error(`kubectl ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`, { cause: error });
    }
  }

  logs(): string {
    return [this.etcd, this.apiserver, this.controllerManager].filter(Boolean).map((p) => p.tail(20)).join('\n');
  }

  async stop(): Promise<void> {
    // Controllers first, then the API server, then its store.
    await this.controllerManager?.stop(10_000);
    await this.apiserver?.stop(40_000);
    await this.etcd?.stop(10_000);
    this.admin.close();
  }
}
