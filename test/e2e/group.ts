/**
 * One raft-elector group on the real control plane, installed the way a user does it:
 * `helm template` the chart (the example StatefulSet), `kubectl apply` it into a namespace
 * that enforces Pod Security "restricted". The StatefulSet controller creates the pods;
 * the fake kubelet runs each pod's sidecar as a local process from the rendered args and
 * env, with a token bound to that pod (TokenRequest) and the cluster CA, exactly what the
 * kubelet would mount. DNS is the test cluster DNS, fed with the real pods' IPs.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { stringify } from 'yaml';
import { TestClusterDns } from '../dns/server.js';
import { findHelm, Helm, only, parseManifests, repoRoot, resolveEnv, sidecarOf, type Container, type K8sObject, type StatefulSet } from '../chart/helm.js';
import { freePort, waitFor, type LeaderAnswer } from '../integration/harness.js';
import type { ControlPlane } from './control-plane.js';
import { FakeKubelet } from './kubelet.js';
import { GroupProcess } from './processes.js';
import { KubeRest, type KubeEvent, type Pod } from './rest.js';

export const ElectorBin = join(repoRoot, 'dist/cmd/raft-elector.js');
const PodIps = ['127.0.0.11', '127.0.0.12', '127.0.0.13'];

export interface Incarnation {
  name: string;
  uid: string;
  ip: string;
  tokenFile: string;
  process: GroupProcess;
  /** Wall clock (ms) when the kubelet asked for this pod's containers, and when the process was spawned. */
  startAskedAtMs: number;
  spawnedAtMs: number;
}

/** A port free on every pod address (each pod binds the same ports on its own address). */
export async function portFreeOnAllPods(taken: number[]): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await freePort();
    if (taken.includes(port)) continue;
    const free = await Promise.all(
      PodIps.map((ip) => new Promise<boolean>((resolve) => {
        const server = createServer();
        server.once('error', () => resolve(false));
        server.listen(port, ip, () => server.close(() => resolve(true)));
      })),
    );
    if (free.every(Boolean)) return port;
  }
  throw new Error('no port free on every pod address');
}

export interface InstallOptions {
  namespace: string;
  release: string;
  /** Change the rendered objects before `kubectl apply` (e.g. a Role without patch). */
  edit?: (objects: K8sObject[]) => void;
  /**
   * Leave the sidecar out of the StatefulSet and put these annotations on its pods, for the
   * injector to add it; each member then runs the sidecar the API server stored in its pod.
   */
  injectAnnotations?: Record<string, string>;
  /** The sidecar's ports (chosen here when absent); an injector's template must use the same. */
  ports?: { http: number; raft: number };
  /**
   * Deployment: the chart's example Deployment (random pod names, emptyDir data, pod IPs from
   * a pool, Ready gated on /readyz); the members follow its pods (issue 11).
   */
  workload?: 'StatefulSet' | 'Deployment';
  /** A StatefulSet's data volume (default pvc); emptyDir starts every incarnation on an empty dir. */
  persistence?: 'pvc' | 'emptyDir';
  /** Gate Ready on the sidecar's /readyz (a Deployment always is). */
  gateReady?: boolean;
  /** Another chart (default this repo's) and the sidecar build its pods run (default dist/). */
  chartDir?: string;
  electorBin?: string;
  /**
   * The user's own workload in place of the chart's example (rendered only for the sidecar's
   * name and flags): its pods get the sidecar from the injector, and each member runs the
   * stored pod's sidecar with the volumes, and the Secret, the stored pod names.
   */
  ownWorkload?: StatefulSet;
  /** Further `helm template` arguments, e.g. `--set selector.app=orders`. */
  helmArgs?: string[];
}

export class Group {
  /** Every incarnation ever started, newest last. */
  readonly incarnations: Incarnation[] = [];
  private kubelet!: FakeKubelet;
  private dns!: TestClusterDns;
  private injected = false;
  private ownWorkload = false;
  private secretData!: Record<string, string>;
  private peerSecret = '';
  private raftPort = 0;
  /** Read each pod's sidecar from the stored pod (its args change with the chart version). */
  private storedSidecar = false;
  /** The build the next started pods run. */
  electorBin = ElectorBin;

  private constructor(
    readonly cp: ControlPlane,
    readonly namespace: string,
    readonly objects: K8sObject[],
    readonly sts: StatefulSet,
    readonly container: Container,
    readonly httpPort: number,
    readonly dir: string,
  ) {}

  static helm(): Helm | string {
    const found = findHelm();
    return 'missing' in found ? found.missing : new Helm(found.helm);
  }

  static async install(cp: ControlPlane, helm: Helm, options: InstallOptions): Promise<Group> {
    const httpPort = options.ports?.http ?? (await portFreeOnAllPods([]));
    const raftPort = options.ports?.raft ?? (await portFreeOnAllPods([httpPort]));
    const peerSecret = randomBytes(24).toString('base64url');
    const objects = Group.render(helm, options, peerSecret, httpPort, raftPort);
    options.edit?.(objects);
    // A Deployment has every field the harness reads of a StatefulSet (template, selector, replicas).
    const example = only<StatefulSet>(objects, options.workload === 'Deployment' ? 'Deployment' : 'StatefulSet');
    const sts = options.ownWorkload ?? example;
    if (options.ownWorkload) objects.splice(objects.indexOf(example), 1, options.ownWorkload);
    const dir = join(cp.dir, 'groups', options.namespace);
    mkdirSync(dir, { recursive: true });
    const group = new Group(cp, options.namespace, objects, sts, sidecarOf(example).container, httpPort, dir);
    group.injected = group.ownWorkload = options.ownWorkload !== undefined;
    group.peerSecret = peerSecret;
    group.raftPort = raftPort;
    if (options.electorBin) group.electorBin = options.electorBin;
    if (options.injectAnnotations) {
      const spec = sts.spec.template.spec;
      spec.initContainers = spec.initContainers?.filter((c) => c.name !== group.container.name);
      spec.containers = spec.containers.filter((c) => c.name !== group.container.name);
      const meta = sts.spec.template.metadata as { annotations?: Record<string, string> };
      meta.annotations = { ...meta.annotations, ...options.injectAnnotations };
      group.injected = true;
    }

    const namespace = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: options.namespace, labels: { 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/enforce-version': 'latest' } } };
    const manifest = join(dir, 'manifest.yaml');
    writeFileSync(manifest, [namespace, ...objects].map((o) => stringify(o)).join('---\n'));
    await cp.kubectl(['apply', '--namespace', options.namespace, '-f', manifest]);

    const service = only<K8sObject & { spec: { ports: { name: string; port: number }[] } }>(objects, 'Service');
    const clusterDomain = group.arg('--cluster-domain') ?? 'cluster.local';
    group.dns = await TestClusterDns.start({ namespace: options.namespace, service: service.metadata.name, clusterDomain, port: raftPort });
    // The peer secret as the API server stores it (the kubelet mounts the stored Secret).
    const secretName = only(objects, 'Secret').metadata.name;
    const stored = await cp.admin.json<{ data: Record<string, string> }>('GET', `/api/v1/namespaces/${options.namespace}/secrets/${secretName}`);
    group.secretData = stored.data;

    const selector = Object.entries(sts.spec.selector.matchLabels).map(([k, v]) => `${k}=${v}`).join(',');
    group.kubelet = new FakeKubelet(cp.admin, options.namespace, selector, {
      start: (pod, ip) => group.startMember(pod, ip),
      stop: (pod, graceMs) => group.stopMember(pod, graceMs),
      ...(options.workload === 'Deployment' || options.gateReady ? { ready: (pod: Pod) => group.probeReady(pod) } : {}),
    }, options.workload === 'Deployment' ? 'pool' : 'ordinal');
    group.kubelet.start();
    return group;
  }

  /** `helm template` of the chart with the harness's values (the same peer secret and ports on every render). */
  private static render(helm: Helm, options: InstallOptions, peerSecret: string, httpPort: number, raftPort: number): K8sObject[] {
    const persistence = options.workload === 'Deployment' ? [] : ['--set', `persistence.type=${options.persistence ?? 'pvc'}`];
    const rendered = helm.run(['template', options.release, options.chartDir ?? join(repoRoot, 'charts/raft-elector'), '--namespace', options.namespace,
      // helm template cannot see the cluster, so the chart refuses to invent a peer secret; hand it one.
      '--skip-tests', '--set', `secret.value=${peerSecret}`,
      '--set', 'example.enabled=true', '--set', `sidecar.httpPort=${httpPort}`, '--set', `sidecar.raftPort=${raftPort}`,
      ...(options.workload === 'Deployment' ? ['--set', 'example.kind=Deployment'] : []), ...persistence, ...(options.helmArgs ?? [])]);
    if (rendered.status !== 0) throw new Error(`helm template failed: ${rendered.stderr}`);
    return parseManifests(rendered.stdout);
  }

  /**
   * `helm upgrade` as `kubectl apply` of another render (another chart, the same secret and
   * ports); pods started from now on run `electorBin` with the sidecar stored in their pod.
   */
  async upgrade(helm: Helm, options: InstallOptions, electorBin: string): Promise<K8sObject[]> {
    const objects = Group.render(helm, options, this.peerSecret, this.httpPort, this.raftPort);
    this.electorBin = electorBin;
    this.storedSidecar = true;
    const manifest = join(this.dir, `manifest-upgrade-${Date.now()}.yaml`);
    writeFileSync(manifest, objects.map((o) => stringify(o)).join('---\n'));
    await this.cp.kubectl(['apply', '--namespace', this.namespace, '-f', manifest]);
    return objects;
  }

  get podNames(): string[] {
    return Array.from({ length: this.sts.spec.replicas }, (_, i) => `${this.sts.metadata.name}-${i}`);
  }

  get serviceAccount(): string {
    return this.sts.spec.template.spec.serviceAccountName ?? 'default';
  }

  get selector(): Record<string, string> {
    return this.sts.spec.selector.matchLabels;
  }

  private arg(flag: string): string | undefined {
    return this.container.args?.find((a) => a.startsWith(`${flag}=`))?.slice(flag.length + 1);
  }

  /** Pods not deleting, by name (a Deployment's names are random). */
  async livePods(): Promise<Pod[]> {
    return (await this.pods()).filter((p) => !p.metadata.deletionTimestamp).sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
  }

  /** The live incarnation of a pod (its newest process, if still running). */
  member(name: string): Incarnation {
    const found = this.incarnations.filter((m) => m.name === name).at(-1);
    if (!found) throw new Error(`no member for pod ${name} was started`);
    return found;
  }

  /** The sidecar this pod runs: the rendered one, or the one the injector put in the stored pod. */
  private sidecarOf(pod: Pod): Container {
    if (!this.injected && !this.storedSidecar) return this.container;
    const stored = [...(pod.spec.initContainers ?? []), ...pod.spec.containers].find((c) => c.name === this.container.name);
    if (!stored) throw new Error(`pod ${pod.metadata.name} was stored without the injected sidecar`);
    return stored as Container;
  }

  private async startMember(pod: Pod, ip: string): Promise<void> {
    const { name, uid } = pod.metadata;
    const startAskedAtMs = Date.now();
    const container = this.sidecarOf(pod);
    const root = join(this.dir, name);
    // A TokenRequest bound to this pod: it stops working when the pod is gone.
    const token = await this.cp.kubectl(['create', 'token', this.serviceAccount, '--namespace', this.namespace, '--duration=1h',
      '--bound-object-kind=Pod', `--bound-object-name=${name}`, `--bound-object-uid=${uid}`]);
    const tokenFile = join(root, `token-${uid}`);
    mkdirSync(root, { recursive: true });
    writeFileSync(tokenFile, token.trim());

    // The pod's volumes: the secret mount gets the stored Secret; an emptyDir is new with each
    // pod incarnation (uid), a claim is kept across incarnations of the same name, as a PVC.
    const mounts = container.volumeMounts ?? [];
    // The user's own workload: the volumes the injector added to the stored pod, as the kubelet mounts them.
    const own = this.ownWorkload;
    const volumes = own ? ((pod.spec as { volumes?: { name: string; secret?: { secretName: string }; emptyDir?: object }[] }).volumes ?? []) : (this.sts.spec.template.spec.volumes ?? []);
    const emptyDirs = new Set(volumes.filter((v) => 'emptyDir' in v).map((v) => v.name));
    const baseOf = (path: string) => {
      const mount = mounts.find((mt) => path === mt.mountPath || path.startsWith(`${mt.mountPath}/`));
      return mount && emptyDirs.has(mount.name) ? join(root, `emptydir-${uid}`) : join(root, 'fs');
    };
    const inPod = (path: string) => join(baseOf(path), path);
    for (const mount of mounts) {
      mkdirSync(inPod(mount.mountPath), { recursive: true });
      const volume = volumes.find((v) => v.name === mount.name);
      if (volume && 'secret' in volume) {
        const data = own ? await this.storedSecret((volume.secret as { secretName: string }).secretName) : this.secretData;
        for (const item of (volume.secret as { items: { key: string; path: string }[] }).items) {
          const file = inPod(join(mount.mountPath, item.path));
          mkdirSync(dirname(file), { recursive: true });
          writeFileSync(file, Buffer.from(data[item.key] ?? '', 'base64'));
        }
      }
    }
    const args = (container.args ?? []).map((arg) => {
      const m = /^(--[\w-]+=)(.*)$/.exec(arg);
      if (!m) return arg;
      const [, flag, value] = m as unknown as [string, string, string];
      if (value.startsWith('0.0.0.0:')) return `${flag}${ip}:${value.slice('0.0.0.0:'.length)}`;
      if (mounts.some((mt) => value === mt.mountPath || value.startsWith(`${mt.mountPath}/`))) return `${flag}${inPod(value)}`;
      return arg;
    });
    const env = {
      ...resolveEnv(container, { name, namespace: this.namespace, uid }),
      KUBERNETES_SERVICE_HOST: '127.0.0.1',
      KUBERNETES_SERVICE_PORT: String(this.cp.apiPort),
      RAFT_ELECTOR_KUBE_TOKEN_FILE: tokenFile,
      RAFT_ELECTOR_KUBE_CA_FILE: this.cp.caFile,
      RAFT_ELECTOR_DNS_SERVER: this.dns.address,
      PATH: process.env.PATH ?? '',
    };
    const spawnedAtMs = Date.now();
    const proc = GroupProcess.start(`${name} (${uid.slice(0, 8)})`, process.execPath, [this.electorBin, ...args], { env, logFile: join(root, `member-${uid}.log`) });
    this.incarnations.push({ name, uid, ip, tokenFile, process: proc, startAskedAtMs, spawnedAtMs });
    this.dns.setPod(name, ip);
  }

  /** A Secret of the namespace as stored; like the kubelet, a pod whose Secret is missing does not start. */
  private async storedSecret(name: string): Promise<Record<string, string>> {
    return (await this.cp.admin.json<{ data: Record<string, string> }>('GET', `/api/v1/namespaces/${this.namespace}/secrets/${name}`)).data;
  }

  private async stopMember(pod: Pod, graceMs: number): Promise<void> {
    const m = this.incarnations.find((i) => i.uid === pod.metadata.uid);
    if (!m) return;
    // As the kubelet: SIGTERM (a paused process gets it only when resumed), SIGKILL at the grace deadline.
    m.process.signal('SIGTERM');
    if (!(await m.process.waitExit(graceMs))) {
      m.process.signal('SIGKILL');
      await m.process.waitExit(5_000);
    }
    if (this.incarnations.filter((i) => i.name === m.name).at(-1) === m) this.dns.removePod(m.name);
  }

  /** The sidecar's readinessProbe (GET /readyz on the http port) for this incarnation. */
  async probeReady(pod: Pod): Promise<boolean> {
    const m = this.incarnations.find((i) => i.uid === pod.metadata.uid);
    if (!m?.process.running) return false;
    const res = await fetch(`http://${m.ip}:${this.httpPort}/readyz`, { signal: AbortSignal.timeout(2_000) });
    return res.status === 200;
  }

  /** The member's token, as the app container in the same pod could read it. */
  token(name: string): string {
    return readFileSync(this.member(name).tokenFile, 'utf8');
  }

  /** A REST client with the member's own ServiceAccount token. */
  restAs(name: string): KubeRest {
    return new KubeRest({ server: this.cp.server, ca: readFileSync(this.cp.caFile, 'utf8'), token: this.token(name) });
  }

  async ask(name: string): Promise<LeaderAnswer> {
    const res = await fetch(`http://${this.member(name).ip}:${this.httpPort}/leader`, { signal: AbortSignal.timeout(1_000) });
    return (await res.json()) as LeaderAnswer;
  }

  /** Waits until `among` name one leader at one term and that leader claims isLeader. */
  agreedLeader(among = this.podNames, deadlineMs = 30_000): Promise<LeaderAnswer> {
    return waitFor(`${among.join(',')} to agree on a leader holding the lease`, deadlineMs, async () => {
      const answers = await Promise.all(among.map((n) => this.ask(n)));
      const first = answers[0];
      if (!first?.leader || !answers.every((a) => a.leader === first.leader && a.term === first.term)) return undefined;
      return answers.find((a) => a.self === first.leader && a.isLeader);
    }, 25);
  }

  async pods(): Promise<Pod[]> {
    const list = await this.cp.admin.json<{ items: Pod[] }>('GET', `/api/v1/namespaces/${this.namespace}/pods`);
    return list.items;
  }

  async pod(name: string): Promise<Pod> {
    return this.cp.admin.json<Pod>('GET', `/api/v1/namespaces/${this.namespace}/pods/${name}`);
  }

  /** pod name → raft-role label, as the API server has it. */
  async labels(): Promise<Record<string, string | undefined>> {
    return Object.fromEntries((await this.pods()).filter((p) => this.podNames.includes(p.metadata.name)).map((p) => [p.metadata.name, p.metadata.labels?.['raft-role']]));
  }

  /** Waits until the leader pod is labelled leader and every other group pod follower. */
  labelsConverge(leader: string, deadlineMs = 20_000): Promise<true> {
    return waitFor(`the raft-role labels to show ${leader} as the one leader`, deadlineMs, async () => {
      const labels = await this.labels();
      return this.podNames.every((p) => labels[p] === (p === leader ? 'leader' : 'follower')) ? true : undefined;
    }, 100);
  }

  async events(): Promise<KubeEvent[]> {
    return (await this.cp.admin.json<{ items: KubeEvent[] }>('GET', `/api/v1/namespaces/${this.namespace}/events`)).items;
  }

  /** Every log line of every incarnation, parsed (non-JSON lines skipped). */
  logLines(name?: string): Record<string, unknown>[] {
    return this.incarnations.filter((m) => name === undefined || m.name === name).flatMap((m) => m.process.lines.flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    }));
  }

  logs(): string {
    return this.incarnations.slice(-6).map((m) => m.process.tail(25)).join('\n');
  }

  /** The fake kubelet's recent actions and errors. */
  kubeletReport(): string {
    return `fake kubelet actions:\n${this.kubelet.actions.slice(-20).join('\n')}\nerrors:\n${this.kubelet.errors.slice(-5).join('\n')}`;
  }

  async stop(): Promise<void> {
    await this.kubelet?.stop();
    await Promise.all(this.incarnations.map((m) => m.process.stop(5_000)));
    await this.dns?.close();
  }
}
