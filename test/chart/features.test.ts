/**
 * The chart's optional features, rendered by the real helm and read back as
 * parsed YAML: NetworkPolicy, scheduling, startupProbe, the common values, PDB
 * settings, monitoring, peer TLS, and Chart.yaml metadata. The secret policy
 * and the helm test pod have their own files.
 *
 * Skips, printing why, when helm is not installed (CI installs it; see findHelm).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { chartDir, findHelm, Helm, only, repoRoot, sidecarOf, type Container, type K8sObject, type StatefulSet } from './helm.js';

const found = findHelm();
if ('missing' in found) console.log(`[chart feature tests skipped] ${found.missing}`);
const helm = 'helm' in found ? new Helm(found.helm) : undefined;
const example = ['--set', 'example.enabled=true'];

interface PolicyPort {
  port: number;
  endPort?: number;
  protocol: string;
}
interface NetworkPolicy extends K8sObject {
  spec: {
    podSelector: { matchLabels: Record<string, string> };
    policyTypes: string[];
    ingress: { from?: Record<string, unknown>[]; ports: PolicyPort[] }[];
  };
}

/** Which sources may reach TCP `port`: 'anyone', or the list of `from` peers of the rules that allow it. */
function allowedFrom(policy: NetworkPolicy, port: number, protocol = 'TCP'): 'anyone' | Record<string, unknown>[] {
  const from: Record<string, unknown>[] = [];
  for (const rule of policy.spec.ingress) {
    const covers = rule.ports.some((p) => p.protocol === protocol && p.port <= port && port <= (p.endPort ?? p.port));
    if (!covers) continue;
    if (rule.from === undefined) return 'anyone';
    from.push(...rule.from);
  }
  return from;
}

/** The group's NetworkPolicy (the other one is the helm test pod's). */
function groupPolicy(objects: K8sObject[]): NetworkPolicy {
  return only<NetworkPolicy>(objects.filter((o) => !o.metadata.name.endsWith('-test-leader')), 'NetworkPolicy');
}

/** Writes a values file for what --set cannot say (lists of objects, null). */
function valuesFile(values: unknown): { args: string[]; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'raft-elector-values-'));
  const file = join(dir, 'values.json');
  writeFileSync(file, JSON.stringify(values));
  return { args: ['--values', file], cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

function withValues<T>(values: unknown, render: (args: string[]) => T): T {
  const { args, cleanup } = valuesFile(values);
  try {
    return render(args);
  } finally {
    cleanup();
  }
}

type PodSpecExtras = {
  affinity?: { podAntiAffinity?: Record<string, { weight?: number; podAffinityTerm?: unknown; topologyKey?: string; labelSelector?: unknown }[]>; nodeAffinity?: unknown };
  topologySpreadConstraints?: { maxSkew: number; topologyKey: string; whenUnsatisfiable: string; labelSelector: { matchLabels: Record<string, string> } }[];
  nodeSelector?: Record<string, string>;
  tolerations?: Record<string, string>[];
  priorityClassName?: string;
};

function podOf(objects: K8sObject[]): StatefulSet['spec']['template']['spec'] & PodSpecExtras {
  return only<StatefulSet>(objects, 'StatefulSet').spec.template.spec as StatefulSet['spec']['template']['spec'] & PodSpecExtras;
}

describe.skipIf(!helm)('chart features', () => {
  const h = helm!;
  const group = { 'app.kubernetes.io/instance': 'demo', 'app.kubernetes.io/name': 'raft-elector' };

  describe('NetworkPolicy', () => {
    it('opens the peer port only to the group\'s pods and the API port only to the test pod and the sources listed', () => {
      const prometheus = { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } };
      const policy = withValues({ networkPolicy: { apiFrom: [prometheus] } }, (args) => groupPolicy(h.template(args)));
      expect(policy.spec.podSelector.matchLabels).toEqual(group);
      expect(policy.spec.policyTypes).toEqual(['Ingress']);
      expect(allowedFrom(policy, 4041)).toEqual([{ podSelector: { matchLabels: group } }]);
      expect(allowedFrom(policy, 4040)).toEqual([
        { podSelector: { matchLabels: { 'app.kubernetes.io/name': 'raft-elector-test', 'app.kubernetes.io/instance': 'demo', 'app.kubernetes.io/component': 'test' } } },
        prometheus,
      ]);
    });

    it('keeps every other port of the app\'s pods open by default, and only the two ports with allowOtherPorts=false', () => {
      const policy = groupPolicy(h.template(['--set', 'sidecar.httpPort=8080', '--set', 'sidecar.raftPort=7000']));
      for (const port of [1, 80, 6999, 7001, 8079, 8081, 65535]) expect(allowedFrom(policy, port), `TCP ${port}`).toBe('anyone');
      for (const port of [7000, 8080]) expect(allowedFrom(policy, port), `TCP ${port}`).not.toBe('anyone');
      expect(allowedFrom(policy, 53, 'UDP')).toBe('anyone');
      const strict = groupPolicy(h.template(['--set', 'networkPolicy.allowOtherPorts=false']));
      expect(allowedFrom(strict, 8080)).toEqual([]);
      expect(strict.spec.ingress.map((r) => r.ports.map((p) => p.port))).toEqual([[4041], [4040]]);
    });

    it('follows selector, leaves out the test pod when tests are off, and can be turned off', () => {
      const policy = groupPolicy(h.template(['--set', 'selector.app=orders', '--set', 'tests.enabled=false', '--set', 'networkPolicy.allowOtherPorts=false']));
      expect(policy.spec.podSelector.matchLabels).toEqual({ app: 'orders' });
      expect(allowedFrom(policy, 4041)).toEqual([{ podSelector: { matchLabels: { app: 'orders' } } }]);
      expect(allowedFrom(policy, 4040)).toEqual([]);
      expect(h.template(['--set', 'networkPolicy.enabled=false']).some((o) => o.kind === 'NetworkPolicy')).toBe(false);
    });

    it('denies all ingress to the helm test pod, which only asks', () => {
      const policy = only<NetworkPolicy>(h.template().filter((o) => o.metadata.name.endsWith('-test-leader')), 'NetworkPolicy');
      const testPod = only(h.template(), 'Pod');
      for (const [key, value] of Object.entries(policy.spec.podSelector.matchLabels)) expect(testPod.metadata.labels?.[key], key).toBe(value);
      expect(policy.spec).toEqual({ podSelector: policy.spec.podSelector, policyTypes: ['Ingress'] });
    });
  });

  describe('scheduling', () => {
    it('spreads voters by default: soft anti-affinity over nodes and a soft topology spread over zones, for the group\'s pods', () => {
      const pod = podOf(h.template(example));
      expect(pod.affinity).toEqual({
        podAntiAffinity: {
          preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: group } } }],
        },
      });
      expect(pod.topologySpreadConstraints).toEqual([{ maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: group } }]);
    });

    it('makes anti-affinity hard, or none, and lets affinity and topologySpreadConstraints replace the defaults', () => {
      const hard = podOf(h.template([...example, '--set', 'podAntiAffinityPreset=hard', '--set', 'podAntiAffinityTopologyKey=topology.kubernetes.io/zone']));
      expect(hard.affinity?.podAntiAffinity).toEqual({ requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: 'topology.kubernetes.io/zone', labelSelector: { matchLabels: group } }] });
      const none = podOf(h.template([...example, '--set', 'podAntiAffinityPreset=', '--set', 'defaultTopologySpread=false']));
      expect(none.affinity).toBeUndefined();
      expect(none.topologySpreadConstraints).toBeUndefined();
      const nodeAffinity = { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'pool', operator: 'In', values: ['ha'] }] }] } };
      const spread = [{ maxSkew: 2, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'DoNotSchedule', labelSelector: { matchLabels: { app: 'x' } } }];
      const own = withValues({ affinity: { nodeAffinity }, topologySpreadConstraints: spread }, (args) => podOf(h.template([...example, ...args])));
      expect(own.affinity).toEqual({ nodeAffinity });
      expect(own.topologySpreadConstraints).toEqual(spread);
      const bad = h.run(['template', 'demo', chartDir, '--set', 'podAntiAffinityPreset=sometimes']);
      expect(bad.status).not.toBe(0);
      expect(bad.stderr).toContain("at '/podAntiAffinityPreset'");
    });
  });

  describe('startupProbe', () => {
    it('holds the app back until the native sidecar answers /healthz, and can be replaced or removed', () => {
      const { container, native } = sidecarOf(only<StatefulSet>(h.template(example), 'StatefulSet'));
      expect(native).toBe(true);
      expect((container as Container & { startupProbe?: unknown }).startupProbe).toMatchObject({ httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 1 });
      const own = { exec: { command: ['/nodejs/bin/node', '-e', '0'] }, failureThreshold: 5 };
      const replaced = withValues({ sidecar: { startupProbe: own } }, (args) => sidecarOf(only<StatefulSet>(h.template([...example, ...args]), 'StatefulSet')).container);
      expect((replaced as Container & { startupProbe?: unknown }).startupProbe).toMatchObject(own);
      const removed = withValues({ sidecar: { startupProbe: null } }, (args) => sidecarOf(only<StatefulSet>(h.template([...example, ...args]), 'StatefulSet')).container);
      expect('startupProbe' in removed).toBe(false);
    });
  });

  describe('common values', () => {
    it('puts podLabels, nodeSelector, tolerations and priorityClassName on the example pods, keeping the group\'s labels', () => {
      const tolerations = [{ key: 'dedicated', operator: 'Equal', value: 'ha', effect: 'NoSchedule' }];
      const objects = withValues(
        { podLabels: { team: 'payments', 'app.kubernetes.io/name': 'ignored-for-the-selector' }, nodeSelector: { 'kubernetes.io/os': 'linux' }, tolerations, priorityClassName: 'ha-critical' },
        (args) => h.template([...example, ...args]),
      );
      const sts = only<StatefulSet>(objects, 'StatefulSet');
      const pod = podOf(objects);
      expect(sts.spec.template.metadata.labels).toMatchObject({ ...group, team: 'payments' });
      expect(pod.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
      expect(pod.tolerations).toEqual(tolerations);
      expect(pod.priorityClassName).toBe('ha-critical');
      const testPod = objects.find((o) => o.kind === 'Pod') as K8sObject & { spec: PodSpecExtras };
      expect(testPod.spec.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
      expect(testPod.spec.tolerations).toEqual(tolerations);
    });

    it('moves every image to global.imageRegistry, replacing a registry host or prefixing a bare name', () => {
      const images = (args: string[]): string[] =>
        h
          .template([...example, ...args])
          .flatMap((o) => {
            const spec = (o.kind === 'StatefulSet' ? (o as StatefulSet).spec.template.spec : o.kind === 'Pod' ? (o as unknown as { spec: StatefulSet['spec']['template']['spec'] }).spec : undefined);
            return spec ? [...(spec.initContainers ?? []), ...spec.containers].map((c) => c.image) : [];
          })
          .sort();
      expect(images([])).toEqual(['busybox:1.37.0', 'ghcr.io/raft-elector/raft-elector:0.1.0', 'ghcr.io/raft-elector/raft-elector:0.1.0']);
      expect(images(['--set', 'global.imageRegistry=mirror.corp:5000/'])).toEqual([
        'mirror.corp:5000/busybox:1.37.0',
        'mirror.corp:5000/raft-elector/raft-elector:0.1.0',
        'mirror.corp:5000/raft-elector/raft-elector:0.1.0',
      ]);
      const digest = `sha256:${'a'.repeat(64)}`;
      expect(images(['--set', 'global.imageRegistry=mirror.corp', '--set', 'image.repository=localhost/raft-elector', '--set', `image.digest=${digest}`])).toContain(`mirror.corp/raft-elector@${digest}`);
    });
  });

  describe('PodDisruptionBudget', () => {
    type Pdb = K8sObject & { spec: { maxUnavailable?: number | string; minAvailable?: number | string; unhealthyPodEvictionPolicy?: string } };
    const pdb = (args: string[]): Pdb['spec'] => only<Pdb>(h.template(args), 'PodDisruptionBudget').spec;

    it('takes maxUnavailable or minAvailable and unhealthyPodEvictionPolicy from values', () => {
      expect(pdb([])).toMatchObject({ maxUnavailable: 1, unhealthyPodEvictionPolicy: 'AlwaysAllow' });
      expect(pdb(['--set', 'podDisruptionBudget.maxUnavailable=2'])).toMatchObject({ maxUnavailable: 2 });
      expect(pdb(['--set-string', 'podDisruptionBudget.maxUnavailable=40%'])).toMatchObject({ maxUnavailable: '40%' });
      const min = pdb(['--set', 'podDisruptionBudget.minAvailable=2']);
      expect(min.minAvailable).toBe(2);
      expect('maxUnavailable' in min).toBe(false);
      expect(pdb(['--set', 'podDisruptionBudget.unhealthyPodEvictionPolicy=IfHealthyBudget']).unhealthyPodEvictionPolicy).toBe('IfHealthyBudget');
      expect('unhealthyPodEvictionPolicy' in pdb(['--set', 'podDisruptionBudget.unhealthyPodEvictionPolicy='])).toBe(false);
      const bad = h.run(['template', 'demo', chartDir, '--set', 'podDisruptionBudget.unhealthyPodEvictionPolicy=Never']);
      expect(bad.status).not.toBe(0);
      expect(bad.stderr).toContain("at '/podDisruptionBudget/unhealthyPodEvictionPolicy'");
    });
  });

  describe('monitoring', () => {
    const metricsSource = readFileSync(join(repoRoot, 'api/metrics.ts'), 'utf8');
    type Monitor = K8sObject & { spec: { selector: { matchLabels: Record<string, string> }; namespaceSelector: { matchNames: string[] }; endpoints: { port: string; path: string; interval: string }[] } };
    type Rule = K8sObject & { spec: { groups: { rules: { alert: string; expr: string; for: string; labels: Record<string, string> }[] }[] } };

    it('renders neither a ServiceMonitor nor a PrometheusRule by default', () => {
      expect(h.template().filter((o) => o.kind === 'ServiceMonitor' || o.kind === 'PrometheusRule')).toEqual([]);
    });

    it('scrapes /metrics on the headless Service\'s http port', () => {
      const objects = h.template(['--set', 'metrics.serviceMonitor.enabled=true', '--set', 'metrics.serviceMonitor.labels.release=kube-prometheus']);
      const monitor = only<Monitor>(objects, 'ServiceMonitor');
      const service = only(objects, 'Service') as K8sObject & { spec: { ports: { name: string }[] } };
      for (const [key, value] of Object.entries(monitor.spec.selector.matchLabels)) expect(service.metadata.labels?.[key], key).toBe(value);
      expect(service.spec.ports.map((p) => p.name)).toContain(monitor.spec.endpoints[0]!.port);
      expect(monitor.spec.endpoints).toEqual([{ port: 'http', path: '/metrics', interval: '30s', scrapeTimeout: '10s' }]);
      expect(monitor.spec.namespaceSelector.matchNames).toEqual(['shop']);
      expect(monitor.metadata.labels?.release).toBe('kube-prometheus');
    });

    it('alerts when the group has no leader and when it has more than one, on a metric the sidecar exports', () => {
      const rule = only<Rule>(h.template(['--set', 'metrics.prometheusRule.enabled=true', '--set', 'metrics.prometheusRule.for=5m']), 'PrometheusRule');
      const rules = rule.spec.groups.flatMap((g) => g.rules);
      expect(rules.map((r) => r.alert)).toEqual(['RaftElectorNoLeader', 'RaftElectorManyLeaders']);
      for (const r of rules) {
        expect(r.for).toBe('5m');
        expect(r.labels.severity).toBe('critical');
        for (const metric of r.expr.match(/raft_elector_\w+/g) ?? []) expect(metricsSource, metric).toContain(`name: '${metric}'`);
        expect(r.expr).toContain('raft_elector_is_leader{namespace="shop", service="demo-raft-elector"}');
      }
      expect(rules[0]!.expr).toMatch(/< 1$/);
      expect(rules[1]!.expr).toMatch(/> 1$/);
    });
  });

  describe('tls', () => {
    it('mounts an existing Secret read-only and passes --tls-cert, --tls-key and --tls-ca', () => {
      const sts = only<StatefulSet>(h.template([...example, '--set', 'tls.enabled=true', '--set', 'tls.existingSecret=orders-peer-tls']), 'StatefulSet');
      const { container } = sidecarOf(sts);
      const mount = container.volumeMounts!.find((m) => m.name === 'raft-elector-tls')!;
      expect(mount).toEqual({ name: 'raft-elector-tls', mountPath: '/etc/raft-elector/tls', readOnly: true });
      const volume = sts.spec.template.spec.volumes!.find((v) => v.name === 'raft-elector-tls') as unknown as { secret: { secretName: string; items: { key: string; path: string }[] } };
      expect(volume.secret.secretName).toBe('orders-peer-tls');
      expect(volume.secret.items.map((i) => i.key)).toEqual(['tls.crt', 'tls.key', 'ca.crt']);
      expect(container.args!.filter((a) => a.startsWith('--tls-'))).toEqual(['--tls-cert=/etc/raft-elector/tls/tls.crt', '--tls-key=/etc/raft-elector/tls/tls.key', '--tls-ca=/etc/raft-elector/tls/ca.crt']);
      const plain = sidecarOf(only<StatefulSet>(h.template(example), 'StatefulSet')).container;
      expect(plain.args!.some((a) => a.startsWith('--tls-'))).toBe(false);
    });

    it('refuses tls.enabled without a Secret, in one line naming the value', () => {
      const result = h.run(['template', 'demo', chartDir, '--set', 'secret.generateWithoutLookup=true', '--set', 'example.enabled=true', '--set', 'tls.enabled=true']);
      expect(result.status).not.toBe(0);
      expect(result.stderr.split('\n')[0]).toContain('tls.enabled=true needs tls.existingSecret');
    });
  });

  describe('Chart.yaml', () => {
    const chart = parse(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as Record<string, unknown>;

    it('has the metadata a chart index shows: kubeVersion, icon, home, sources, maintainers, annotations', () => {
      expect(chart.kubeVersion).toMatch(/>=1\.25\.0-0/);
      expect(chart.icon).toMatch(/^https:\/\/.+\.svg$/);
      expect(chart.home).toMatch(/^https:\/\//);
      expect((chart.sources as string[]).length).toBeGreaterThan(0);
      expect((chart.maintainers as { name: string }[])[0]!.name).toBeTruthy();
      expect((chart.annotations as Record<string, string>)['artifacthub.io/license']).toBe('Apache-2.0');
    });

    it('refuses clusters older than kubeVersion, and still renders with helm template\'s placeholder version', () => {
      const old = h.run(['template', 'demo', chartDir, '--kube-version', '1.24.9', '--set', 'secret.generateWithoutLookup=true']);
      expect(old.status).not.toBe(0);
      expect(old.stderr).toContain('chart requires kubeVersion');
      expect(h.run(['template', 'demo', chartDir, '--set', 'secret.generateWithoutLookup=true']).status).toBe(0);
      expect(h.run(['template', 'demo', chartDir, '--kube-version', '1.31.2', '--set', 'secret.generateWithoutLookup=true']).status).toBe(0);
    });
  });
});
