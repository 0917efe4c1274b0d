/**
 * The chart's injector (injector.enabled): off by default; the webhook only ever sees
 * annotated pods; least-privilege RBAC; the sidecar template is the paste path's own
 * sidecar, and the real injector turns it into the same container for a group.
 */
import { describe, expect, it } from 'vitest';
import { decide, type Container as InjectedContainer, type JsonPatchOp, type Volume } from '../../k8s/injector/mutate.js';
import { parseTemplate } from '../../k8s/injector/template.js';
import { chartDir, findHelm, Helm, only, renderNotes, sidecarOf, type K8sObject, type StatefulSet } from './helm.js';

const found = findHelm();
if ('missing' in found) console.log(`[chart injector tests skipped] ${found.missing}`);
const helm = 'helm' in found ? new Helm(found.helm) : undefined;
const on = ['--set', 'injector.enabled=true'];

interface Webhook {
  name: string;
  failurePolicy: string;
  reinvocationPolicy: string;
  sideEffects: string;
  timeoutSeconds: number;
  clientConfig: { service?: { name: string; namespace: string; path: string }; url?: string; caBundle?: string };
  rules: { operations: string[]; resources: string[] }[];
  namespaceSelector: { matchExpressions: { key: string; operator: string; values: string[] }[] };
  matchConditions: { name: string; expression: string }[];
}
type Rule = { apiGroups: string[]; resources: string[]; resourceNames?: string[]; verbs: string[] };

function byKind(objects: K8sObject[], kind: string): K8sObject[] {
  return objects.filter((o) => o.kind === kind);
}

describe.skipIf(!helm)('the chart\'s sidecar injector', () => {
  const h = helm!;

  it('is off by default: no webhook, no cluster-scoped objects', () => {
    const objects = h.template();
    expect(objects.filter((o) => o.metadata.name.includes('injector'))).toEqual([]);
    expect(byKind(objects, 'ClusterRole')).toEqual([]);
  });

  it('sends only pods annotated raft-elector.io/inject: "true" to the webhook, never kube-system, and fails closed for those only', () => {
    const objects = h.template(on);
    const cfg = only(objects, 'MutatingWebhookConfiguration') as K8sObject & { webhooks: Webhook[] };
    const w = cfg.webhooks[0]!;
    expect(w.matchConditions).toEqual([{ name: 'annotated', expression: expect.stringContaining("object.metadata.annotations['raft-elector.io/inject'] == 'true'") as string }]);
    expect(w.failurePolicy).toBe('Fail');
    expect(w.reinvocationPolicy).toBe('IfNeeded');
    expect(w.sideEffects).toBe('None');
    expect(w.timeoutSeconds).toBe(5);
    expect(w.rules).toEqual([expect.objectContaining({ operations: ['CREATE'], resources: ['pods'] })]);
    expect(w.namespaceSelector.matchExpressions[0]).toEqual({ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'kube-node-lease'] });
    expect(w.clientConfig).toEqual({ service: { name: 'demo-raft-elector-injector', namespace: 'shop', path: '/mutate', port: 443 } });
    const ignore = only(h.template([...on, '--set', 'injector.failurePolicy=Ignore']), 'MutatingWebhookConfiguration') as K8sObject & { webhooks: Webhook[] };
    expect(ignore.webhooks[0]!.failurePolicy).toBe('Ignore');
    const refused = h.run(['template', 'demo', chartDir, '--set', 'secret.generateWithoutLookup=true', ...on, '--set', 'injector.failurePolicy=Sometimes']);
    expect(refused.stderr).toContain('failurePolicy');
  });

  it('grants the injector its own Secret and its own webhook configuration only', () => {
    const objects = h.template(on);
    const role = byKind(objects, 'Role').find((r) => r.metadata.name === 'demo-raft-elector-injector') as K8sObject & { rules: Rule[] };
    expect(role.rules).toEqual([
      { apiGroups: [''], resources: ['secrets'], resourceNames: ['demo-raft-elector-injector-tls'], verbs: ['get', 'update'] },
      { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
    ]);
    const cluster = only(objects, 'ClusterRole') as K8sObject & { rules: Rule[] };
    expect(cluster.rules).toEqual([{ apiGroups: ['admissionregistration.k8s.io'], resources: ['mutatingwebhookconfigurations'], resourceNames: ['demo-raft-elector-injector'], verbs: ['get', 'patch'] }]);
  });

  it('runs two replicas under a PodDisruptionBudget, with pods the group\'s selectors never match', () => {
    const objects = h.template(on);
    const deployment = only(objects, 'Deployment') as K8sObject & { spec: { replicas: number; template: { metadata: { labels: Record<string, string> } } } };
    expect(deployment.spec.replicas).toBe(2);
    const labels = deployment.spec.template.metadata.labels;
    const pdbs = byKind(objects, 'PodDisruptionBudget') as (K8sObject & { spec: { selector: { matchLabels: Record<string, string> } } })[];
    const matches = (sel: Record<string, string>) => Object.entries(sel).every(([k, v]) => labels[k] === v);
    expect(pdbs.filter((p) => matches(p.spec.selector.matchLabels)).map((p) => p.metadata.name)).toEqual(['demo-raft-elector-injector']);
    const groupService = byKind(objects, 'Service').find((s) => s.metadata.name === 'demo-raft-elector') as K8sObject & { spec: { selector: Record<string, string> } };
    expect(matches(groupService.spec.selector)).toBe(false);
  });

  it('with cert-manager: an Issuer and Certificate, the CA injected by annotation, the certificate mounted, no RBAC for certificates', () => {
    const objects = h.template([...on, '--set', 'injector.certManager.enabled=true']);
    expect(only(objects, 'Certificate').metadata.name).toBe('demo-raft-elector-injector');
    expect(only(objects, 'Issuer').metadata.name).toBe('demo-raft-elector-injector');
    expect(only(objects, 'MutatingWebhookConfiguration').metadata.annotations).toEqual({ 'cert-manager.io/inject-ca-from': 'shop/demo-raft-elector-injector' });
    expect(byKind(objects, 'ClusterRole')).toEqual([]);
    const args = (only(objects, 'Deployment') as K8sObject & { spec: { template: { spec: { containers: { args: string[] }[] } } } }).spec.template.spec.containers[0]!.args;
    expect(args).toContain('--tls-cert-file=/etc/raft-elector-injector/tls/tls.crt');
    expect(args.some((a) => a.startsWith('--cert-secret'))).toBe(false);
  });

  it('injects the paste path\'s own sidecar: the same container, with only the group flags set per pod', () => {
    const values = [...on, '--set', 'example.enabled=true', '--set', 'sidecar.tickMs=50'];
    const objects = h.template(values);
    const configMap = only(objects, 'ConfigMap') as K8sObject & { data: Record<string, string> };
    const template = parseTemplate(configMap.data['sidecar.json']!, 'ConfigMap');
    const pasted = sidecarOf(only<StatefulSet>(objects, 'StatefulSet')).container;
    expect(template.container).toEqual(pasted);
    expect(template.native).toBe(true);
    const decision = decide({ metadata: { name: 'demo-raft-elector-0', annotations: { 'raft-elector.io/inject': 'true', 'raft-elector.io/group': 'demo-raft-elector' } }, spec: { containers: [{ name: 'app' }], subdomain: 'demo-raft-elector' } }, template);
    if (decision.kind !== 'inject') throw new Error(decision.kind);
    const injected = decision.patch.find((op) => op.path === '/spec/initContainers')!.value as { args: string[] }[];
    // The paste path's pod-selector is the release's labels; the injected one is the group label.
    const norm = (args: string[]) => args.filter((a) => !a.startsWith('--pod-selector=')).sort();
    expect(norm(injected[0]!.args)).toEqual(norm(pasted.args!));
    expect(injected[0]!.args).toContain('--tick-ms=50');
  });

  /** The sidecar, volumes and labels an add-only patch gives a pod (the ops decide() emits). */
  function added(patch: JsonPatchOp[]): { container: InjectedContainer; volumes: Volume[]; labels: Record<string, string> } {
    const container = patch.filter((op) => op.path.startsWith('/spec/initContainers') || op.path.startsWith('/spec/containers')).map((op) => (Array.isArray(op.value) ? op.value[0] : op.value) as InjectedContainer)[0]!;
    const volumes = patch.filter((op) => op.path.startsWith('/spec/volumes')).flatMap((op) => (Array.isArray(op.value) ? op.value : [op.value]) as Volume[]);
    const labels = Object.fromEntries(patch.filter((op) => op.path.startsWith('/metadata/labels/')).map((op) => [op.path.slice('/metadata/labels/'.length).replaceAll('~1', '/'), op.value as string]));
    return { container, volumes, labels };
  }

  // The documented path (docs/injector.md): a release whose full name is the group, with selector = the app's pod labels.
  for (const [where, injectorRelease, groupArgs] of [
    ['the injector in another namespace, a "group resources only" release in the app\'s', ['raft-system', on], []],
    ['one release with the injector, in the app\'s namespace', ['prod', on], on],
  ] as const) {
    it(`gives an annotated Deployment pod every object it needs, under the names the sidecar uses: ${where}`, () => {
      const injectorObjects = h.template([...injectorRelease[1]], 'demo', injectorRelease[0]);
      const configMap = injectorObjects.find((o) => o.kind === 'ConfigMap' && o.metadata.name.endsWith('-injector-template')) as K8sObject & { data: Record<string, string> };
      const template = parseTemplate(configMap.data['sidecar.json']!, 'ConfigMap');
      const objects = h.template([...groupArgs, '--set', 'selector.app=orders'], 'orders', 'prod');
      // No workload: the user's own Deployment is the group.
      expect(objects.filter((o) => ['Deployment', 'StatefulSet'].includes(o.kind) && !o.metadata.name.endsWith('-injector'))).toEqual([]);
      const podLabels = { app: 'orders', 'pod-template-hash': '5d9c7' };
      const pod = {
        metadata: { generateName: 'orders-5d9c7-', namespace: 'prod', labels: podLabels, annotations: { 'raft-elector.io/inject': 'true', 'raft-elector.io/group': 'orders-raft-elector' }, ownerReferences: [{ kind: 'ReplicaSet', name: 'orders-5d9c7', controller: true }] },
        spec: { serviceAccountName: 'orders-raft-elector', containers: [{ name: 'app' }] },
      };
      const decision = decide(pod, template);
      if (decision.kind !== 'inject') throw new Error(JSON.stringify(decision));
      const { container, volumes, labels } = added(decision.patch);
      const arg = (flag: string) => container.args!.find((a) => a.startsWith(`--${flag}=`))?.slice(flag.length + 3);
      const named = (kind: string, name: string | undefined) => objects.find((o) => o.kind === kind && o.metadata.name === name);
      const allLabels = { ...podLabels, ...labels };
      const selects = (sel: Record<string, string>) => Object.entries(sel).every(([k, v]) => allLabels[k as keyof typeof allLabels] === v);

      expect(arg('pod-selector')).toBe('raft-elector.io/group=orders-raft-elector');
      expect(labels).toEqual({ 'raft-elector.io/group': 'orders-raft-elector' });
      expect(container.args!.some((a) => a.startsWith('--replicas'))).toBe(false);
      expect(container.env).toContainEqual({ name: 'POD_UID', valueFrom: { fieldRef: { fieldPath: 'metadata.uid' } } });
      // The Lease the leader mirrors itself in, and the Role that lets it (get/update on that name only).
      expect(named('Lease', arg('lease-name'))).toBeDefined();
      const role = named('Role', 'orders-raft-elector') as K8sObject & { rules: { resources: string[]; resourceNames?: string[]; verbs: string[] }[] };
      expect(role.rules).toContainEqual({ apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: [arg('lease-name')], verbs: ['get', 'update'] });
      expect(role.rules.find((r) => r.resources.includes('pods'))!.verbs).toEqual(['list', 'watch', 'patch']);
      expect(role.rules.find((r) => r.resources.includes('events'))!.verbs).toEqual(['create']);
      const binding = named('RoleBinding', 'orders-raft-elector') as K8sObject & { subjects: { name: string }[] };
      expect(binding.subjects.map((x) => x.name)).toEqual([pod.spec.serviceAccountName]);
      expect(named('ServiceAccount', pod.spec.serviceAccountName)).toBeDefined();
      // The peer Secret the pod mounts is the one this release generated, with the key --secret-file reads.
      const secretVolume = volumes.find((v) => v.name === 'raft-elector-secret')!;
      const secret = named('Secret', secretVolume.secret!.secretName) as K8sObject & { data: Record<string, string> };
      expect(Object.keys(secret.data)).toEqual([(secretVolume.secret!.items as { key: string }[])[0]!.key]);
      // Service (helm test, ServiceMonitor), PDB and NetworkPolicy select the pod through selector.app.
      const service = named('Service', arg('service')) as K8sObject & { spec: { selector: Record<string, string> } };
      expect(selects(service.spec.selector)).toBe(true);
      expect(selects((named('PodDisruptionBudget', 'orders-raft-elector') as K8sObject & { spec: { selector: { matchLabels: Record<string, string> } } }).spec.selector.matchLabels)).toBe(true);
      expect(selects((named('NetworkPolicy', 'orders-raft-elector') as K8sObject & { spec: { podSelector: { matchLabels: Record<string, string> } } }).spec.podSelector.matchLabels)).toBe(true);
      // The admission policy lets the sidecar's account patch the role label only on pods with those labels.
      const policy = objects.find((o) => o.kind === 'ValidatingAdmissionPolicy') as K8sObject & { spec: { validations: { expression: string }[] } };
      expect(policy.spec.validations.map((v) => v.expression)).toContainEqual(expect.stringContaining("variables.oldLabels['app'] == 'orders'"));
    });
  }

  it('tells the user of a group-resources-only release what to put in the annotated pod template', () => {
    const notes = renderNotes(h, ['--set', 'selector.app=orders'], 'orders', 'prod');
    expect(notes).toContain('raft-elector.io/inject: "true" and raft-elector.io/group: orders-raft-elector');
    expect(notes).toContain('serviceAccountName: orders-raft-elector yourself');
  });
});
