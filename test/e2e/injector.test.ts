/**
 * The sidecar injector on the real kube-apiserver: the chart's MutatingWebhookConfiguration
 * (with injector.url pointing at a local `raft-elector inject` process, since no kubelet
 * runs pods here), the injector's own ServiceAccount token and RBAC, the real
 * Deployment/ReplicaSet controllers creating the pods, and the real Pod Security
 * "restricted" admission in the namespaces the pods land in.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { only, parseManifests, repoRoot, type Helm, type K8sObject, type StatefulSet } from '../chart/helm.js';
import { freePort, waitFor, type LeaderAnswer } from '../integration/harness.js';
import { ControlPlane } from './control-plane.js';
import { Group, portFreeOnAllPods } from './group.js';
import { registerNode } from './kubelet.js';
import { LeaderSampler } from './leader-sampler.js';
import { GroupProcess } from './processes.js';
import type { Pod } from './rest.js';

const helm = Group.helm();
const skipReason = inject('e2eSkipReason') || (typeof helm === 'string' ? helm : '');
if (skipReason) console.log(`[e2e injector skipped] ${skipReason}`);

const ElectorBin = join(repoRoot, 'dist/cmd/raft-elector.js');
const System = 'raft-system';
const Apps = 'shop';
const Release = 'demo';
const Webhook = 'demo-raft-elector-injector';
const CertSecret = 'demo-raft-elector-injector-tls';
const CertValiditySeconds = 24;

interface FullPod {
  metadata: Pod['metadata'];
  spec: {
    initContainers?: { name: string; restartPolicy?: string; args?: string[]; startupProbe?: unknown; env?: { name: string }[]; securityContext?: unknown }[];
    containers: { name: string }[];
    volumes?: { name: string; emptyDir?: unknown; secret?: { secretName: string } }[];
    securityContext?: Record<string, unknown>;
  };
}

/** A container the restricted profile admits, as a user's app would be. */
const appContainer = {
  name: 'app',
  image: 'busybox:1.37.0',
  command: ['sleep', '3600'],
  securityContext: { runAsNonRoot: true, runAsUser: 1000, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } },
};

function restrictedNamespace(name: string): K8sObject {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/enforce-version': 'latest' } } } as K8sObject;
}

function deployment(name: string, annotations: Record<string, string>): object {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: Apps },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name }, annotations },
        // The user's pod-level settings: the injector must keep them as they are.
        spec: { securityContext: { runAsGroup: 3000 }, containers: [appContainer], volumes: [{ name: 'cache', emptyDir: {} }] },
      },
    },
  };
}

const OrdersNs = 'prod';

/** A user's own Deployment: nothing of the chart in it but two annotations and the release's ServiceAccount. */
function ordersDeployment(): object {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'orders', namespace: OrdersNs },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: 'orders' } },
      template: {
        metadata: { labels: { app: 'orders' }, annotations: { 'raft-elector.io/inject': 'true', 'raft-elector.io/group': 'orders-raft-elector' } },
        spec: { serviceAccountName: 'orders-raft-elector', securityContext: { runAsGroup: 3000 }, containers: [appContainer] },
      },
    },
  };
}

function pod(name: string, annotations: Record<string, string>): object {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: Apps, annotations }, spec: { containers: [appContainer] } };
}

function servedCertificate(port: number): Promise<{ serial: string; validTo: string }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const c = socket.getPeerCertificate();
      socket.end();
      resolve({ serial: c.serialNumber, validTo: c.valid_to });
    });
    socket.once('error', reject);
  });
}

describe.skipIf(skipReason !== '')('the sidecar injector on a real control plane', () => {
  let cp: ControlPlane;
  let dir: string;
  let objects: K8sObject[];
  let injector: GroupProcess | undefined;
  let port: number;
  let startInjector: () => Promise<void>;
  let group: Group | undefined;
  let orders: Group | undefined;
  let sampler: LeaderSampler | undefined;
  let sidecarPorts: { http: number; raft: number };

  beforeAll(async () => {
    cp = await ControlPlane.start(join(inject('e2eRunDir'), 'injector'));
    dir = join(cp.dir, 'injector');
    mkdirSync(dir, { recursive: true });
    port = await freePort();
    // The group's sidecars bind these on every pod address; the injected template must name them.
    const http = await portFreeOnAllPods([]);
    sidecarPorts = { http, raft: await portFreeOnAllPods([http]) };
    const rendered = (helm as Exclude<typeof helm, string>).run(['template', Release, join(repoRoot, 'charts/raft-elector'), '--namespace', System, '--skip-tests',
      '--set', `secret.value=${randomBytes(24).toString('base64url')}`, '--set', 'injector.enabled=true', '--set', `injector.url=https://127.0.0.1:${port}/mutate`,
      '--set', `sidecar.httpPort=${sidecarPorts.http}`, '--set', `sidecar.raftPort=${sidecarPorts.raft}`]);
    if (rendered.status !== 0) throw new Error(`helm template failed: ${rendered.stderr}`);
    objects = parseManifests(rendered.stdout);
    // The injector runs as a local process below; its Deployment would have no kubelet to run it.
    const applied = objects.filter((o) => !(o.kind === 'Deployment' && o.metadata.name === Webhook));
    const manifest = join(dir, 'chart.yaml');
    writeFileSync(manifest, [restrictedNamespace(System), restrictedNamespace(Apps), ...applied].map((o) => stringify(o)).join('---\n'));
    await cp.kubectl(['apply', '-f', manifest]);
    // No service-account controller runs here: the pods' default ServiceAccount is made by hand.
    await cp.admin.json('POST', `/api/v1/namespaces/${Apps}/serviceaccounts`, { metadata: { name: 'default' } });
    const template = only(objects, 'ConfigMap') as K8sObject & { data: Record<string, string> };
    const templateFile = join(dir, 'sidecar.json');
    writeFileSync(templateFile, template.data['sidecar.json']!);
    const token = await cp.kubectl(['create', 'token', Webhook, '--namespace', System, '--duration=1h']);
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, token.trim());
    const metricsPort = await freePort();
    startInjector = async () => {
      injector = GroupProcess.start('injector', process.execPath, [ElectorBin, 'inject', `--listen=127.0.0.1:${port}`, `--metrics=127.0.0.1:${metricsPort}`,
        `--template-file=${templateFile}`, `--cert-secret=${CertSecret}`, `--webhook-config=${Webhook}`, '--cert-ip=127.0.0.1', `--namespace=${System}`,
        `--cert-validity-seconds=${CertValiditySeconds}`, '--cert-check-ms=1000', `--kube-token-file=${tokenFile}`, `--kube-ca-file=${cp.caFile}`], {
        env: { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(cp.apiPort), PATH: process.env.PATH ?? '' },
        logFile: join(dir, 'injector.log'),
      });
      await waitFor('the injector to serve and its caBundle to be in the webhook configuration', 60_000, async () => {
        if (!injector!.running) throw new Error(`the injector exited\n${injector!.tail()}`);
        const cfg = await cp.admin.json<{ webhooks: { clientConfig: { caBundle?: string } }[] }>('GET', `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${Webhook}`);
        const res = await fetch(`http://127.0.0.1:${metricsPort}/readyz`).catch(() => undefined);
        return res?.ok && cfg.webhooks[0]?.clientConfig.caBundle ? true : undefined;
      }, 200);
    };
    await startInjector();
    await registerNode(cp.admin);
  });

  afterAll(async () => {
    await sampler?.stop();
    await orders?.stop();
    await group?.stop();
    await injector?.stop();
    await cp?.stop();
  });

  async function step<T>(body: () => Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${injector?.tail(30) ?? ''}\n${group?.logs() ?? ''}\n${orders?.logs() ?? ''}\n${orders?.kubeletReport() ?? ''}\n${cp?.logs() ?? ''}`, { cause: error });
    }
  }

  /** The pod's volumes less the token volume the ServiceAccount admission adds to every pod. */
  function volumeNames(p: FullPod): string[] | undefined {
    return p.spec.volumes?.map((v) => v.name).filter((n) => !n.startsWith('kube-api-access-'));
  }

  async function podsIn(namespace: string, selector: string, count: number): Promise<FullPod[]> {
    return waitFor(`${count} pods ${selector} in ${namespace}`, 60_000, async () => {
      const list = await cp.admin.json<{ items: FullPod[] }>('GET', `/api/v1/namespaces/${namespace}/pods?labelSelector=${encodeURIComponent(selector)}`);
      const live = list.items.filter((p) => !p.metadata.deletionTimestamp);
      return live.length === count ? live : undefined;
    }, 200);
  }

  /**
   * What the user sees once the group follows the Deployment's pods: exactly one member answers
   * isLeader and every member names it; its configuration is the live pods' incarnations;
   * `kubectl get pods -l raft-role=leader` lists that pod alone; the Lease's holder is it.
   */
  function ordersConverged(pods: number): Promise<{ leader: LeaderAnswer; ids: string[]; voters: number }> {
    const g = orders!;
    return waitFor(`the annotated Deployment's ${pods} pods to elect one leader, labelled and in the Lease`, 120_000, async () => {
      const live = await g.livePods();
      if (live.length !== pods || !live.every((p) => g.incarnations.some((i) => i.uid === p.metadata.uid && i.process.running))) return undefined;
      const answers = await Promise.all(live.map((p) => g.ask(p.metadata.name).catch(() => undefined)));
      const leaders = answers.filter((a) => a?.isLeader);
      const leader = leaders[0];
      if (leaders.length !== 1 || !leader || !answers.every((a) => a?.leaderId === leader.selfId)) return undefined;
      const ids = live.map((p) => `${p.metadata.name}@${p.metadata.uid}`).sort();
      const members = leader.members.filter((m) => m.membership === 'voter' || m.membership === 'learner').map((m) => m.id).sort();
      const voters = leader.members.filter((m) => m.membership === 'voter').length;
      if (JSON.stringify(members) !== JSON.stringify(ids) || voters !== (pods % 2 === 0 ? pods - 1 : pods)) return undefined;
      const labelled = (await cp.kubectl(['get', 'pods', '-l', 'raft-role=leader', '--namespace', OrdersNs, '-o', 'name'])).trim();
      if (labelled !== `pod/${leader.self}`) return undefined;
      const lease = await cp.admin.raw('GET', `/apis/coordination.k8s.io/v1/namespaces/${OrdersNs}/leases/orders-raft-elector`);
      const holder = lease.status === 200 ? (JSON.parse(lease.body) as { spec: { holderIdentity?: string } }).spec.holderIdentity : undefined;
      return holder === leader.self ? { leader, ids, voters } : undefined;
    }, 250);
  }

  async function podsOf(app: string): Promise<FullPod[]> {
    const list = await cp.admin.json<{ items: FullPod[] }>('GET', `/api/v1/namespaces/${Apps}/pods?labelSelector=app%3D${app}`);
    return list.items;
  }

  it('an annotated Deployment\'s pods are stored with the native sidecar, its volumes and env, merged into the user\'s pod', () => step(async () => {
    await cp.admin.json('POST', `/apis/apps/v1/namespaces/${Apps}/deployments`, deployment('web', { 'raft-elector.io/inject': 'true', 'raft-elector.io/secret': 'web-peer-secret' }));
    const pods = await waitFor('the ReplicaSet to create both pods', 60_000, async () => {
      const items = await podsOf('web');
      return items.length === 2 ? items : undefined;
    }, 200);
    for (const p of pods) {
      const side = p.spec.initContainers?.[0];
      expect(side?.name).toBe('raft-elector');
      expect(side?.restartPolicy).toBe('Always');
      expect(side?.startupProbe).toBeDefined();
      expect(side?.args).toEqual(expect.arrayContaining(['--kubernetes', '--cluster-name=web', '--lease-name=web', '--service=web', '--pod-selector=raft-elector.io/group=web']));
      expect(side?.env?.map((e) => e.name)).toEqual(expect.arrayContaining(['POD_NAME', 'POD_NAMESPACE', 'POD_UID']));
      expect(p.spec.containers.map((c) => c.name)).toEqual(['app']);
      expect(p.spec.securityContext).toEqual({ runAsGroup: 3000 });
      expect(volumeNames(p)).toEqual(['cache', 'raft-elector-secret', 'raft-elector-data']);
      expect(p.spec.volumes?.find((v) => v.name === 'raft-elector-secret')?.secret?.secretName).toBe('web-peer-secret');
      expect(p.spec.volumes?.find((v) => v.name === 'raft-elector-data')?.emptyDir).toBeDefined();
      expect(p.metadata.labels?.['raft-elector.io/group']).toBe('web');
      expect(p.metadata.annotations?.['raft-elector.io/injected-template']).toMatch(/^[0-9a-f]{12}$/);
      // Membership mode, as the chart's own Deployment example: the voters follow the pods.
      expect(side?.args?.some((a) => a.startsWith('--replicas'))).toBe(false);
      expect(side?.args).toContain('--max-voters=5');
    }
  }));

  it('a user\'s own Deployment, annotated, beside a "group resources only" release: one leader, its pod labelled, the Lease naming it; scaled 2→3 the membership follows', () => step(async () => {
    // The documented second-namespace path: `helm install orders … --set selector.app=orders`
    // (injector off, no example), then the user's Deployment with two annotations and the
    // release's ServiceAccount. Nothing of the chart's example is in this Deployment.
    orders = await Group.install(cp, helm as Helm, {
      namespace: OrdersNs, release: 'orders', workload: 'Deployment', ports: sidecarPorts, helmArgs: ['--set', 'selector.app=orders'],
      ownWorkload: ordersDeployment() as unknown as StatefulSet,
    });
    expect(orders.objects.filter((o) => o.metadata.name.includes('injector'))).toEqual([]);
    for (const p of await podsIn(OrdersNs, 'app=orders', 2)) {
      const side = p.spec.initContainers?.[0];
      expect(side?.name).toBe('raft-elector');
      expect(side?.args).toEqual(expect.arrayContaining(['--cluster-name=orders-raft-elector', '--lease-name=orders-raft-elector', '--service=orders-raft-elector', '--pod-selector=raft-elector.io/group=orders-raft-elector', '--max-voters=5']));
      expect(side?.args?.some((a) => a.startsWith('--replicas'))).toBe(false);
      // The group's own Secret (<group>-peer), which that release made: no secret annotation needed.
      expect(p.spec.volumes?.find((v) => v.name === 'raft-elector-secret')?.secret?.secretName).toBe('orders-raft-elector-peer');
      expect(p.spec.securityContext).toEqual({ runAsGroup: 3000 });
    }
    // isLeader on every running member every few ms, from the first start to the end.
    const g = orders;
    sampler = new LeaderSampler(() => g.incarnations.filter((m) => m.process.running).map((m) => ({ key: `${m.name}@${m.uid}`, url: `http://${m.ip}:${g.httpPort}/leader` })), 20);
    sampler.start();
    const two = await ordersConverged(2);
    expect(two.voters).toBe(1);
    await cp.kubectl(['scale', 'deployment', 'orders', '--replicas=3', '--namespace', OrdersNs]);
    const three = await ordersConverged(3);
    expect(three.voters).toBe(3);
    await sampler.stop();
    console.log(`e2e injector: the annotated Deployment elected ${two.leader.self}; after scale 2→3 the leader is ${three.leader.self} (${three.ids.length} members, ${three.voters} voters); ${sampler.samples.length} isLeader samples, ${sampler.overlaps().length} overlapping`);
    expect(sampler.overlaps()).toEqual([]);
  }), 300_000);

  it('pods without the annotation are stored exactly as sent', () => step(async () => {
    await cp.admin.json('POST', `/apis/apps/v1/namespaces/${Apps}/deployments`, deployment('plain', {}));
    const pods = await waitFor('the plain pods', 60_000, async () => {
      const items = await podsOf('plain');
      return items.length === 2 ? items : undefined;
    }, 200);
    for (const p of pods) {
      expect(p.spec.initContainers).toBeUndefined();
      expect(volumeNames(p)).toEqual(['cache']);
      expect(p.metadata.labels?.['raft-elector.io/group']).toBeUndefined();
    }
  }));

  it('runs the chart\'s rendered pods, paste path and injected, through the real restricted Pod Security admission', () => step(async () => {
    // The ServiceAccount does not matter to Pod Security; the chart's is not installed in this namespace.
    const asDefault = (spec: object) => ({ ...spec, serviceAccountName: 'default' });
    const candidates: [string, object][] = [];
    for (const [label, extra] of [['native sidecar', []], ['plain container', ['--set', 'sidecar.native=false']], ['emptyDir', ['--set', 'persistence.type=emptyDir']]] as const) {
      const paste = (helm as Exclude<typeof helm, string>).run(['template', Release, join(repoRoot, 'charts/raft-elector'), '--namespace', Apps,
        '--set', `secret.value=${randomBytes(24).toString('base64url')}`, '--set', 'example.enabled=true', ...extra]);
      if (paste.status !== 0) throw new Error(paste.stderr);
      const rendered = parseManifests(paste.stdout);
      const sts = only<StatefulSet>(rendered, 'StatefulSet');
      // As the StatefulSet controller makes it: the claim template becomes a volume of the pod.
      const claims = (sts.spec as { volumeClaimTemplates?: { metadata: { name: string } }[] }).volumeClaimTemplates ?? [];
      const stsPod = { ...sts.spec.template.spec, volumes: [...(sts.spec.template.spec.volumes ?? []), ...claims.map((c) => ({ name: c.metadata.name, persistentVolumeClaim: { claimName: `${c.metadata.name}-paste-${candidates.length}` } }))] };
      candidates.push([`the paste path's StatefulSet pod (${label})`, { apiVersion: 'v1', kind: 'Pod', metadata: { name: `paste-${candidates.length}`, namespace: Apps }, spec: asDefault(stsPod) }]);
      if (candidates.length === 1) {
        const testPod = rendered.find((o) => o.kind === 'Pod') as K8sObject & { spec: object };
        candidates.push(['the helm test pod', { ...testPod, metadata: { name: 'helm-test', namespace: Apps }, spec: asDefault(testPod.spec) }]);
      }
    }
    const injectorDeployment = objects.find((o) => o.kind === 'Deployment') as K8sObject & { spec: { template: { spec: object } } };
    candidates.push(['the injector pod', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'injector', namespace: Apps }, spec: asDefault(injectorDeployment.spec.template.spec) }]);
    candidates.push(['an injected pod', pod('injected-dry', { 'raft-elector.io/inject': 'true' })]);
    for (const [what, body] of candidates) {
      const res = await cp.admin.raw('POST', `/api/v1/namespaces/${Apps}/pods?dryRun=All`, body);
      expect(res.status, `${what}: ${res.body}`).toBe(201);
    }
    // The namespace really enforces: a pod that breaks the profile is refused.
    const bad = await cp.admin.raw('POST', `/api/v1/namespaces/${Apps}/pods?dryRun=All`, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'bad' }, spec: { containers: [{ name: 'x', image: 'busybox:1.37.0' }] } });
    expect(bad.status, bad.body).toBe(403);
    expect(bad.body).toMatch(/violates PodSecurity .*restricted:latest/);
  }));

  it('a StatefulSet whose pods get the sidecar only from the injector elects a leader, labels it and mirrors it in the Lease', () => step(async () => {
    // The chart's example StatefulSet less its sidecar; the group name the chart's Role and Lease are made for.
    group = await Group.install(cp, helm as Helm, { namespace: 'ledger', release: Release, ports: sidecarPorts, injectAnnotations: { 'raft-elector.io/inject': 'true', 'raft-elector.io/group': 'demo-raft-elector' } });
    expect(group.sts.spec.template.spec.initContainers ?? []).toEqual([]);
    const leader = await group.agreedLeader(group.podNames, 120_000);
    await group.labelsConverge(leader.self, 30_000);
    for (const p of await group.pods()) {
      expect(p.spec.initContainers?.map((c) => c.name)).toEqual(['raft-elector']);
      expect(p.metadata.labels?.['raft-elector.io/group']).toBe('demo-raft-elector');
    }
    const holder = await waitFor('the Lease to name the leader', 30_000, async () => {
      const lease = await cp.admin.raw('GET', '/apis/coordination.k8s.io/v1/namespaces/ledger/leases/demo-raft-elector');
      const h = lease.status === 200 ? (JSON.parse(lease.body) as { spec: { holderIdentity?: string } }).spec.holderIdentity : undefined;
      return h === leader.self ? h : undefined;
    }, 200);
    expect(holder).toBe(leader.self);
  }));

  it('rotates its certificate: a new one is served, the caBundle matches the Secret, and pods are still admitted', () => step(async () => {
    const before = await servedCertificate(port);
    const after = await waitFor('a new serving certificate', CertValiditySeconds * 3_000, async () => {
      const now = await servedCertificate(port);
      return now.serial !== before.serial ? now : undefined;
    }, 500);
    expect(new Date(after.validTo).getTime()).toBeGreaterThan(new Date(before.validTo).getTime());
    const secret = await cp.admin.json<{ data: Record<string, string> }>('GET', `/api/v1/namespaces/${System}/secrets/${CertSecret}`);
    const cfg = await cp.admin.json<{ webhooks: { clientConfig: { caBundle?: string } }[] }>('GET', `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${Webhook}`);
    expect(cfg.webhooks[0]?.clientConfig.caBundle).toBe(secret.data['ca-bundle.crt']);
    const created = await cp.admin.json<FullPod>('POST', `/api/v1/namespaces/${Apps}/pods`, pod('after-rotation', { 'raft-elector.io/inject': 'true' }));
    expect(created.spec.initContainers?.[0]?.name).toBe('raft-elector');
  }));

  it('with the injector down, unrelated pods are admitted; annotated pods are refused (failurePolicy Fail) until it is back', () => step(async () => {
    await injector!.stop();
    const plain = await cp.admin.raw('POST', `/api/v1/namespaces/${Apps}/pods`, pod('while-down-plain', {}));
    expect(plain.status, plain.body).toBe(201);
    const annotated = await cp.admin.raw('POST', `/api/v1/namespaces/${Apps}/pods`, pod('while-down-annotated', { 'raft-elector.io/inject': 'true' }));
    expect(annotated.status).toBe(500);
    expect(annotated.body).toContain('inject.raft-elector.io');
    await startInjector();
    const again = await cp.admin.json<FullPod>('POST', `/api/v1/namespaces/${Apps}/pods`, pod('while-down-annotated', { 'raft-elector.io/inject': 'true' }));
    expect(again.spec.initContainers?.[0]?.name).toBe('raft-elector');
  }));
});
