/**
 * The Helm chart, rendered by the real helm: lint, the invariants a user relies
 * on (least-privilege RBAC, a headless Service that lists unready pods, read-only
 * root filesystems, probes, labels), the values schema, and the
 * sidecar's rendered args and env run through the real command.
 *
 * Skips, printing why, when helm is not installed (CI installs it; see findHelm).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chartDir, findHelm, Helm, only, renderNotes, repoRoot, resolveEnv, run, sidecarOf, type Container, type K8sObject, type PodSpec, type StatefulSet } from './helm.js';

const found = findHelm();
if ('missing' in found) console.log(`[chart tests skipped] ${found.missing}`);
const helm = 'helm' in found ? new Helm(found.helm) : undefined;
const electorBin = join(repoRoot, 'dist/cmd/raft-elector.js');

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

/** One permission per line, sorted: `"" pods list`. */
function permissions(rules: Rule[]): string[] {
  const out = new Set<string>();
  for (const rule of rules) for (const group of rule.apiGroups) for (const resource of rule.resources) for (const verb of rule.verbs) out.add(`"${group}" ${resource} ${verb}`);
  return [...out].sort();
}

/**
 * The API calls the sidecar's code makes, read from k8s/*.ts: client-node's
 * generated methods (`core.listNamespacedPod` = list pods in the core group)
 * and Watch paths (`/api/v1/namespaces/${ns}/pods` = watch pods). A generated
 * method this reader does not know fails the test, so a new call cannot slip by.
 */
function permissionsUsedByCode(): string[] {
  const used = new Set<string>();
  const verbs: Record<string, string> = { read: 'get', list: 'list', patch: 'patch', create: 'create', delete: 'delete', replace: 'update' };
  const resources: Record<string, string> = { Pod: 'pods', Event: 'events', PodStatus: 'pods/status', Lease: 'leases' };
  const groups: Record<string, string> = { core: '', events: 'events.k8s.io', leases: 'coordination.k8s.io' };
  const dir = join(repoRoot, 'k8s');
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))) {
    const code = readFileSync(join(dir, file), 'utf8').replace(/^\s*(\/\/|\*).*$/gm, '');
    for (const m of code.matchAll(/\b(\w+)\.(\w+?)Namespaced(\w+)\(/g)) {
      const [, receiver, action, kind] = m as unknown as [string, string, string, string];
      const verb = verbs[action];
      const resource = resources[kind];
      const group = groups[receiver];
      if (verb === undefined || resource === undefined || group === undefined) {
        throw new Error(`k8s/${file}: ${m[0]} is an API call this test cannot map to an RBAC permission; extend permissionsUsedByCode`);
      }
      used.add(`"${group}" ${resource} ${verb}`);
    }
    if (/\.watch\(/.test(code)) {
      for (const m of code.matchAll(/\/api\/v1\/namespaces\/\$\{[^}]+\}\/(\w+)/g)) used.add(`"" ${m[1]} watch`);
      for (const m of code.matchAll(/\/apis\/([\w.]+)\/\w+\/namespaces\/\$\{[^}]+\}\/(\w+)/g)) used.add(`"${m[1]}" ${m[2]} watch`);
    }
  }
  return [...used].sort();
}

function allContainers(pod: PodSpec): Container[] {
  return [...(pod.initContainers ?? []), ...pod.containers];
}

/** This chart's promise beyond the restricted profile (which test/e2e/injector.test.ts checks on the real API server). */
function writableRootFilesystems(pod: PodSpec): string[] {
  return allContainers(pod).filter((c) => c.securityContext?.readOnlyRootFilesystem !== true).map((c) => c.name);
}

function secretVolume(sts: StatefulSet): { secret: { secretName: string; items: { key: string; path: string }[] } } {
  const volume = sts.spec.template.spec.volumes?.find((v) => v.name === 'raft-elector-secret');
  if (!volume) throw new Error('no raft-elector-secret volume');
  return volume as unknown as { secret: { secretName: string; items: { key: string; path: string }[] } };
}

function flagValue(args: string[] | undefined, flag: string): string | undefined {
  const arg = (args ?? []).find((a) => a.startsWith(`--${flag}=`));
  return arg?.slice(flag.length + 3);
}

describe.skipIf(!helm)('the Helm chart', () => {
  const h = helm!;
  const example = ['--set', 'example.enabled=true'];

  it('passes helm lint --strict', () => {
    const result = h.run(['lint', '--strict', chartDir, '--set', 'secret.generateWithoutLookup=true']);
    expect(result.stderr + result.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(result.status).toBe(0);
  });

  it('renders, by default, the pieces a group needs and no workload', () => {
    const kinds = h.template().map((o) => `${o.kind}/${o.metadata.name}`).sort();
    expect(kinds).toEqual([
      'Lease/demo-raft-elector',
      'NetworkPolicy/demo-raft-elector',
      'NetworkPolicy/demo-raft-elector-test-leader',
      'Pod/demo-raft-elector-test-leader',
      'PodDisruptionBudget/demo-raft-elector',
      'Role/demo-raft-elector',
      'RoleBinding/demo-raft-elector',
      'Secret/demo-raft-elector-peer',
      'Service/demo-raft-elector',
      'ServiceAccount/demo-raft-elector',
      'ValidatingAdmissionPolicy/demo-raft-elector.shop.raft-elector.io',
      'ValidatingAdmissionPolicyBinding/demo-raft-elector.shop.raft-elector.io',
    ]);
  });

  it('confines the ServiceAccount\'s pod patches with a ValidatingAdmissionPolicy (1.30+), bound to the release namespace; off on request', () => {
    type Policy = K8sObject & { spec: { matchConditions: { expression: string }[]; validations: { expression: string; reason: string }[] } };
    const objects = h.template(example);
    const policy = only<Policy>(objects, 'ValidatingAdmissionPolicy');
    const sts = only<StatefulSet>(objects, 'StatefulSet');
    expect(policy.spec.matchConditions.map((c) => c.expression)).toEqual([`request.userInfo.username == "system:serviceaccount:shop:${sts.spec.template.spec.serviceAccountName}"`]);
    // Every label of the group selector is checked on the patched pod.
    const group = policy.spec.validations.find((v) => v.expression.includes('oldLabels[\'app.kubernetes.io/instance\']'))!;
    for (const [key, value] of Object.entries(sts.spec.selector.matchLabels)) expect(group.expression).toContain(`variables.oldLabels['${key}'] == '${value}'`);
    expect(policy.spec.validations.every((v) => v.reason === 'Forbidden')).toBe(true);
    const binding = only<K8sObject & { spec: { policyName: string; validationActions: string[]; matchResources: { namespaceSelector: { matchLabels: Record<string, string> } } } }>(objects, 'ValidatingAdmissionPolicyBinding');
    expect(binding.spec).toMatchObject({ policyName: policy.metadata.name, validationActions: ['Deny'], matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'shop' } } } });
    expect(h.template(['--set', 'admissionPolicy.enabled=false']).filter((o) => o.kind.startsWith('ValidatingAdmissionPolicy'))).toEqual([]);
    const old = h.run(['template', 'demo', chartDir, '--namespace', 'shop', '--kube-version', '1.29.0', '--set', 'secret.generateWithoutLookup=true']);
    expect(old.status).not.toBe(0);
    expect(old.stderr).toContain('admissionPolicy.enabled=true needs Kubernetes 1.30 or later');
  });

  it('grants exactly the API calls the sidecar makes, in its own namespace only', () => {
    const objects = h.template(example);
    expect(objects.filter((o) => /^Cluster/.test(o.kind))).toEqual([]);
    const role = only<K8sObject & { rules: Rule[] }>(objects, 'Role');
    expect(role.metadata.namespace ?? 'shop').toBe('shop');
    expect(permissions(role.rules)).toEqual([
      '"" events create',
      '"" pods list',
      '"" pods patch',
      '"" pods watch',
      '"coordination.k8s.io" leases get',
      '"coordination.k8s.io" leases update',
    ]);
    expect(permissions(role.rules)).toEqual(permissionsUsedByCode());
    // The Lease rule names the one Lease the chart creates; nothing may create Leases.
    const leaseRule = role.rules.find((r) => r.resources.includes('leases')) as Rule & { resourceNames?: string[] };
    expect(leaseRule.resourceNames).toEqual(['demo-raft-elector']);
    expect(only<K8sObject>(objects, 'Lease').metadata.name).toBe('demo-raft-elector');
    const binding = only<K8sObject & { roleRef: { kind: string; name: string }; subjects: { kind: string; name: string; namespace: string }[] }>(objects, 'RoleBinding');
    expect(binding.roleRef).toMatchObject({ kind: 'Role', name: role.metadata.name });
    const sts = only<StatefulSet>(objects, 'StatefulSet');
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: sts.spec.template.spec.serviceAccountName, namespace: 'shop' }]);
  });

  it('binds an existing ServiceAccount and renders no RBAC when told so', () => {
    const objects = h.template(['--set', 'serviceAccount.create=false', '--set', 'serviceAccount.name=my-app', ...example]);
    expect(objects.some((o) => o.kind === 'ServiceAccount')).toBe(false);
    expect(only<K8sObject & { subjects: { name: string }[] }>(objects, 'RoleBinding').subjects[0]!.name).toBe('my-app');
    expect(only<StatefulSet>(objects, 'StatefulSet').spec.template.spec.serviceAccountName).toBe('my-app');
    const noRbac = h.template(['--set', 'rbac.create=false']);
    expect(noRbac.filter((o) => o.kind === 'Role' || o.kind === 'RoleBinding')).toEqual([]);
  });

  it('makes the Service headless, listing unready pods, with the port named raft, over the group\'s pods', () => {
    const objects = h.template(example);
    const service = only<K8sObject & { spec: { clusterIP: string; publishNotReadyAddresses: boolean; selector: Record<string, string>; ports: { name: string; port: number; targetPort: string }[] } }>(objects, 'Service');
    expect(service.spec.clusterIP).toBe('None');
    expect(service.spec.publishNotReadyAddresses).toBe(true);
    expect(service.spec.ports).toContainEqual(expect.objectContaining({ name: 'raft', port: 4041, targetPort: 'raft' }));
    expect(service.spec.ports).toContainEqual(expect.objectContaining({ name: 'http', port: 4040, targetPort: 'http' }));
    const sts = only<StatefulSet>(objects, 'StatefulSet');
    expect(sts.spec.serviceName).toBe(service.metadata.name);
    expect(sts.spec.podManagementPolicy).toBe('Parallel');
    const podLabels = sts.spec.template.metadata.labels;
    for (const [key, value] of Object.entries(service.spec.selector)) expect(podLabels[key], key).toBe(value);
    expect(sts.spec.selector.matchLabels).toEqual(service.spec.selector);
    const pdb = only<K8sObject & { spec: { maxUnavailable: number; selector: { matchLabels: Record<string, string> } } }>(objects, 'PodDisruptionBudget');
    expect(pdb.spec).toEqual({ maxUnavailable: 1, unhealthyPodEvictionPolicy: 'AlwaysAllow', selector: { matchLabels: service.spec.selector } });
    const { container } = sidecarOf(sts);
    expect(flagValue(container.args, 'pod-selector')).toBe('app.kubernetes.io/instance=demo,app.kubernetes.io/name=raft-elector');
    expect(flagValue(container.args, 'service')).toBe(service.metadata.name);
  });

  it('uses an existing headless Service by name when service.create=false', () => {
    const objects = h.template(['--set', 'service.create=false', '--set', 'service.name=orders', ...example]);
    expect(objects.some((o) => o.kind === 'Service')).toBe(false);
    const sts = only<StatefulSet>(objects, 'StatefulSet');
    expect(sts.spec.serviceName).toBe('orders');
    expect(flagValue(sidecarOf(sts).container.args, 'service')).toBe('orders');
  });

  it('selects your app\'s pods when selector is set', () => {
    const objects = h.template(['--set', 'selector.app=orders', '--set', 'selector.tier=backend', ...example]);
    const service = only<K8sObject & { spec: { selector: Record<string, string> } }>(objects, 'Service');
    expect(service.spec.selector).toEqual({ app: 'orders', tier: 'backend' });
    const sts = only<StatefulSet>(objects, 'StatefulSet');
    expect(sts.spec.template.metadata.labels).toMatchObject({ app: 'orders', tier: 'backend' });
    expect(flagValue(sidecarOf(sts).container.args, 'pod-selector')).toBe('app=orders,tier=backend');
  });

  for (const [label, args] of [
    ['native sidecar (default)', example],
    ['plain container', [...example, '--set', 'sidecar.native=false']],
    ['emptyDir', [...example, '--set', 'persistence.type=emptyDir']],
  ] as const) {
    it(`gives every container a read-only root filesystem: ${label}`, () => {
      const pod = only<StatefulSet>(h.template([...args]), 'StatefulSet').spec.template.spec;
      expect(allContainers(pod).map((c) => c.name).sort()).toEqual(['app', 'raft-elector']);
      expect(writableRootFilesystems(pod)).toEqual([]);
    });
  }

  it('gives the helm test pod and the injector a read-only root filesystem', () => {
    const pod = (only(h.template(), 'Pod') as K8sObject & { spec: PodSpec }).spec;
    expect(allContainers(pod).map((c) => c.name)).toEqual(['check-leader']);
    expect(writableRootFilesystems(pod)).toEqual([]);
    const injector = (h.template(['--set', 'injector.enabled=true']).find((o) => o.kind === 'Deployment') as K8sObject & { spec: { template: { spec: PodSpec } } }).spec.template.spec;
    expect(writableRootFilesystems(injector)).toEqual([]);
  });

  it('renders a native sidecar by default and a plain container on request', () => {
    const native = only<StatefulSet>(h.template(example), 'StatefulSet');
    expect(native.spec.template.spec.initContainers!.map((c) => [c.name, c.restartPolicy])).toEqual([['raft-elector', 'Always']]);
    expect(native.spec.template.spec.containers.map((c) => c.name)).toEqual(['app']);
    const plain = only<StatefulSet>(h.template([...example, '--set', 'sidecar.native=false']), 'StatefulSet');
    expect(plain.spec.template.spec.initContainers).toBeUndefined();
    expect(plain.spec.template.spec.containers.map((c) => [c.name, c.restartPolicy])).toEqual([['app', undefined], ['raft-elector', undefined]]);
  });

  it('refuses a native sidecar on a cluster older than 1.29 and renders a plain one there', () => {
    const example = ['--set', 'example.enabled=true', '--set', 'secret.generateWithoutLookup=true'];
    const old = h.run(['template', 'demo', chartDir, '--kube-version', '1.28.3', ...example]);
    expect(old.status).not.toBe(0);
    expect(old.stderr).toContain('sidecar.native=true needs Kubernetes 1.29 or later');
    // Before 1.30 the admission policy must be turned off too (it says so itself).
    const plain = h.run(['template', 'demo', chartDir, '--kube-version', '1.28.3', ...example, '--set', 'sidecar.native=false', '--set', 'admissionPolicy.enabled=false']);
    expect(plain.stderr).toBe('');
    expect(plain.status).toBe(0);
    expect(h.run(['template', 'demo', chartDir, '--kube-version', '1.29.0', ...example, '--set', 'admissionPolicy.enabled=false']).status).toBe(0);
  });

  it('probes /healthz for liveness and /readyz for readiness on the http port, and exposes both ports', () => {
    const { container } = sidecarOf(only<StatefulSet>(h.template(example), 'StatefulSet'));
    expect(container.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(container.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(container.ports).toEqual([
      { name: 'http', containerPort: 4040, protocol: 'TCP' },
      { name: 'raft', containerPort: 4041, protocol: 'TCP' },
    ]);
    expect(container.env?.map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath])).toEqual([
      ['POD_NAME', 'metadata.name'],
      ['POD_NAMESPACE', 'metadata.namespace'],
      ['POD_UID', 'metadata.uid'],
    ]);
    expect(container.resources).toMatchObject({ requests: { memory: '96Mi' }, limits: { memory: '192Mi' } });
  });

  it('puts the standard labels on every object', () => {
    for (const object of h.template(example)) {
      // The helm test pod is named apart, so the group's selector never matches it.
      const isTestPod = object.metadata.annotations?.['helm.sh/hook'] === 'test';
      expect(object.metadata.labels, `${object.kind}/${object.metadata.name}`).toMatchObject({
        'helm.sh/chart': 'raft-elector-0.1.0',
        'app.kubernetes.io/name': isTestPod ? 'raft-elector-test' : 'raft-elector',
        'app.kubernetes.io/instance': 'demo',
        'app.kubernetes.io/version': '0.1.0',
        'app.kubernetes.io/managed-by': 'Helm',
      });
    }
  });

  it('keeps each member\'s data on a small claim with persistence.type=pvc, with the storage class configurable', () => {
    const pvc = [...example, '--set', 'persistence.type=pvc'];
    const sts = only<StatefulSet>(h.template([...pvc, '--set', 'persistence.storageClass=fast-ssd']), 'StatefulSet');
    const { container } = sidecarOf(sts);
    const dataMount = container.volumeMounts!.find((m) => m.mountPath === '/var/lib/raft-elector')!;
    expect(flagValue(container.args, 'data-dir')).toBe('/var/lib/raft-elector');
    expect(sts.spec.volumeClaimTemplates).toHaveLength(1);
    const claim = sts.spec.volumeClaimTemplates![0]!;
    expect(claim.metadata.name).toBe(dataMount.name);
    expect(claim.spec).toMatchObject({ storageClassName: 'fast-ssd', accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '16Mi' } } });
    expect(sts.spec.template.spec.volumes!.some((v) => v.name === dataMount.name)).toBe(false);
    expect(sts.spec.template.spec.securityContext?.fsGroup).toBe(65532);
    const noClass = only<StatefulSet>(h.template([...pvc, '--set', 'persistence.storageClass=-']), 'StatefulSet');
    expect(noClass.spec.volumeClaimTemplates![0]!.spec.storageClassName).toBe('');
    expect(only<StatefulSet>(h.template(pvc), 'StatefulSet').spec.volumeClaimTemplates![0]!.spec).not.toHaveProperty('storageClassName');
  });

  it('uses an emptyDir and no claim by default, with no warning: a recreated pod is a new member', () => {
    const sts = only<StatefulSet>(h.template(example), 'StatefulSet');
    expect(sts.spec.volumeClaimTemplates).toBeUndefined();
    expect(sts.spec.template.spec.volumes).toContainEqual({ name: 'raft-elector-data', emptyDir: { sizeLimit: '16Mi' } });
    expect(renderNotes(h, example)).not.toContain('WARNING');
  });

  it('renders the example as a Deployment with example.kind=Deployment: same pod, no --replicas, one new pod at a time', () => {
    const objects = h.template([...example, '--set', 'example.kind=Deployment']);
    expect(objects.filter((o) => o.kind === 'StatefulSet')).toEqual([]);
    const deployment = only<StatefulSet & { spec: { strategy: unknown } }>(objects, 'Deployment');
    const sts = only<StatefulSet>(h.template(example), 'StatefulSet');
    expect(deployment.spec.template).toEqual(sts.spec.template);
    expect(deployment.spec.strategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
    expect(sidecarOf(deployment).container.args!.some((a) => a.startsWith('--replicas'))).toBe(false);
  });

  it('tells the user, after install, how to see the leader and how the app asks', () => {
    const notes = renderNotes(h, example);
    expect(notes).toContain('kubectl get pods -n shop -l raft-role=leader');
    expect(notes).toContain('curl -s localhost:4040/leader');
    expect(notes).toContain('kubectl logs -n shop demo-raft-elector-0 -c app -f');
    const own = renderNotes(h, ['--set', 'selector.app=orders']);
    expect(own).toContain('serviceName: demo-raft-elector, replicas: 3');
    expect(own).toContain('for the pods selected by app=orders');
  });

  it('generates a peer secret of at least 16 bytes and mounts it where --secret-file points', () => {
    const objects = h.template(example);
    const secret = only<K8sObject & { data: Record<string, string> }>(objects, 'Secret');
    expect(Buffer.from(secret.data.secret!, 'base64').length).toBeGreaterThanOrEqual(16);
    // Each render without a cluster generates a new one; an install keeps the first (lookup).
    expect(only<K8sObject & { data: Record<string, string> }>(h.template(example), 'Secret').data.secret).not.toBe(secret.data.secret);
    const sts = only<StatefulSet>(objects, 'StatefulSet');
    const { container } = sidecarOf(sts);
    const volume = secretVolume(sts);
    expect(volume.secret.secretName).toBe(secret.metadata.name);
    const mount = container.volumeMounts!.find((m) => m.name === 'raft-elector-secret')!;
    expect(mount.readOnly).toBe(true);
    expect(flagValue(container.args, 'secret-file')).toBe(`${mount.mountPath}/${volume.secret.items[0]!.path}`);
  });

  it('uses an existing Secret and key instead of generating one', () => {
    const objects = h.template([...example, '--set', 'secret.existingSecret=orders-raft', '--set', 'secret.key=peer-secret']);
    expect(objects.some((o) => o.kind === 'Secret')).toBe(false);
    const sts = only<StatefulSet>(objects, 'StatefulSet');
    const volume = secretVolume(sts);
    expect(volume.secret).toMatchObject({ secretName: 'orders-raft', items: [{ key: 'peer-secret', path: 'peer-secret' }] });
    expect(flagValue(sidecarOf(sts).container.args, 'secret-file')).toBe('/etc/raft-elector/secret/peer-secret');
  });

  it('rejects wrong value types and unknown keys through values.schema.json', () => {
    for (const [args, message] of [
      [['--set', 'replicas=three'], "at '/replicas': got string, want integer"],
      [['--set-string', 'sidecar.native=yes'], "at '/sidecar/native': got string, want boolean"],
      [['--set', 'persistence.type=hostPath'], "at '/persistence/type'"],
      [['--set', 'replica=3'], "additional properties 'replica' not allowed"],
      [['--set', 'sidecar.tickMS=50'], "additional properties 'tickMS' not allowed"],
    ] as const) {
      const result = h.run(['template', 'demo', chartDir, ...args]);
      expect(result.status, args.join(' ')).not.toBe(0);
      expect(result.stderr, args.join(' ')).toContain("values don't meet the specifications of the schema");
      expect(result.stderr, args.join(' ')).toContain(message);
    }
  });

  describe('the rendered sidecar is accepted by the real command', () => {
    for (const [label, args, release, namespace] of [
      ['defaults', example, 'demo', 'shop'],
      ['emptyDir, plain container, IPv6 bind, existing secret, custom labels and timing', [
        ...example,
        '--set', 'persistence.type=emptyDir',
        '--set', 'sidecar.native=false',
        '--set', 'sidecar.bindAddress=::',
        '--set', 'secret.existingSecret=orders-raft',
        '--set', 'selector.app=orders',
        '--set', 'sidecar.roleLabel.key=example.com/role',
        '--set', 'sidecar.tickMs=50',
        '--set', 'sidecar.electionTicks=20',
        '--set', 'replicas=5',
        '--set', 'sidecar.extraArgs={--max-frame-bytes=131072}',
      ], 'orders', 'prod'],
    ] as const) {
      it(label, () => {
        const sts = only<StatefulSet>(h.template([...args], release, namespace), 'StatefulSet');
        const { container } = sidecarOf(sts);
        const pod = { name: `${sts.metadata.name}-${sts.spec.replicas - 1}`, namespace };
        const env = { ...resolveEnv(container, pod), PATH: process.env.PATH ?? '' };
        const result = run(process.execPath, [electorBin, ...(container.args ?? []), '--check-config'], env);
        expect(result.stderr).toBe('');
        expect(result.status).toBe(0);
        const { config } = JSON.parse(result.stdout) as { config: Record<string, unknown> & { kubernetes: Record<string, unknown> } };
        const service = only(h.template([...args], release, namespace), 'Service');
        expect(config.id).toBe(`${pod.name}@${(env as Record<string, string>).POD_UID}`);
        expect(config.kubernetes).not.toHaveProperty('replicasIgnored');
        expect(config.kubernetes).toMatchObject({
          podName: pod.name,
          namespace,
          service: service.metadata.name,
          podSelector: Object.entries(sts.spec.selector.matchLabels).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`).join(','),
          containerName: container.name,
        });
        expect(config.dataDir).toBe(container.volumeMounts!.find((m) => m.name === 'raft-elector-data')!.mountPath);
        const httpPort = container.ports!.find((p) => p.name === 'http')!.containerPort;
        const raftPort = container.ports!.find((p) => p.name === 'raft')!.containerPort;
        expect(config.http).toMatchObject({ port: httpPort });
        expect(config.listen).toMatchObject({ port: raftPort });
        expect(config.insecure).toBe(false);
      });
    }

    it('a flag the command does not know fails the same check (the check can fail)', () => {
      const sts = only<StatefulSet>(h.template([...example, '--set', 'sidecar.extraArgs={--tick-millis=50}']), 'StatefulSet');
      const { container } = sidecarOf(sts);
      const env = { ...resolveEnv(container, { name: 'demo-raft-elector-0', namespace: 'shop' }), PATH: process.env.PATH ?? '' };
      const result = run(process.execPath, [electorBin, ...(container.args ?? []), '--check-config'], env);
      expect(result.status).toBe(2);
      expect(result.stderr).toContain('tick-millis');
    });
  });
});
