import { describe, expect, it } from 'vitest';
import { Annotations, decide, groupOf, type JsonPatchOp, type PodLike, type SidecarTemplate } from './mutate.js';

const template: SidecarTemplate = {
  container: {
    name: 'raft-elector',
    restartPolicy: 'Always',
    args: ['--kubernetes', '--max-voters=5', '--service=demo', '--pod-selector=app=demo', '--cluster-name=demo', '--lease-name=demo', '--tick-ms=100'],
    env: [
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'POD_UID', valueFrom: { fieldRef: { fieldPath: 'metadata.uid' } } },
    ],
    volumeMounts: [{ name: 'raft-elector-data' }, { name: 'raft-elector-secret' }],
  },
  native: true,
  volumes: [
    { name: 'raft-elector-secret', secret: { secretName: 'demo-raft-elector', defaultMode: 292 } },
    { name: 'raft-elector-data', emptyDir: { sizeLimit: '16Mi' } },
  ],
  dataVolumeName: 'raft-elector-data',
  secretVolumeName: 'raft-elector-secret',
  groupSecretSuffix: '-peer',
  hash: 'abc123',
};

function injected(pod: PodLike, t: SidecarTemplate = template): { pod: PodLike; warnings: string[] } {
  const d = decide(pod, t);
  if (d.kind !== 'inject') throw new Error(`${d.kind}: ${JSON.stringify(d)}`);
  return { pod: apply(pod, d.patch), warnings: d.warnings };
}

const sidecarOf = (pod: PodLike) => [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find((c) => c.name === 'raft-elector')!;

function annotated(extra: PodLike = {}, ann: Record<string, string> = {}): PodLike {
  return {
    metadata: { generateName: 'web-7d4b9c-', labels: { app: 'web', 'pod-template-hash': '7d4b9c' }, annotations: { [Annotations.inject]: 'true', ...ann }, ownerReferences: [{ kind: 'ReplicaSet', name: 'web-7d4b9c', controller: true }], ...extra.metadata },
    spec: { serviceAccountName: 'web-raft-elector', securityContext: { runAsUser: 1000 }, containers: [{ name: 'app', env: [{ name: 'A', value: '1' }] }], volumes: [{ name: 'cache', emptyDir: {} }], ...extra.spec } as PodLike['spec'],
  };
}

/** Applies the add-only patch the way the API server does, for the ops the injector emits. */
function apply(pod: PodLike, patch: JsonPatchOp[]): PodLike {
  const out = structuredClone(pod) as Record<string, unknown>;
  for (const op of patch) {
    const parts = op.path.split('/').slice(1).map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'));
    let at: Record<string, unknown> | unknown[] = out;
    for (const p of parts.slice(0, -1)) at = (at as Record<string, unknown>)[p] as Record<string, unknown>;
    const last = parts.at(-1)!;
    if (Array.isArray(at)) {
      if (last === '-') at.push(op.value);
      else at.splice(Number(last), 0, op.value);
    } else {
      if (last in at) throw new Error(`add over an existing member ${op.path}`);
      at[last] = op.value;
    }
  }
  return out as PodLike;
}

describe('the injector mutation', () => {
  it('leaves a pod without the annotation alone', () => {
    expect(decide({ metadata: { name: 'x' }, spec: { containers: [{ name: 'a' }] } }, template)).toEqual({ kind: 'skip', reason: 'not-annotated' });
    expect(decide(annotated({}, { [Annotations.inject]: 'false' }), template).kind).toBe('skip');
  });

  it('adds the native sidecar first among init containers, its volumes and the group label, and keeps everything the pod had', () => {
    const pod = annotated();
    const before = structuredClone(pod);
    const d = decide(pod, template);
    expect(pod).toEqual(before);
    if (d.kind !== 'inject') throw new Error(d.kind);
    expect(d.group).toBe('web');
    const out = apply(pod, d.patch);
    const side = out.spec!.initContainers![0]!;
    expect(side.name).toBe('raft-elector');
    expect(side.restartPolicy).toBe('Always');
    // Membership mode, as the chart's sidecar: --max-voters from the template, no --replicas, the pod's uid from the downward API.
    expect(side.args).toEqual(['--kubernetes', '--service=web', '--pod-selector=raft-elector.io/group=web', '--cluster-name=web', '--lease-name=web', '--max-voters=5', '--tick-ms=100']);
    expect(side.env).toContainEqual({ name: 'POD_UID', valueFrom: { fieldRef: { fieldPath: 'metadata.uid' } } });
    expect(d.warnings).toEqual([]);
    expect(out.spec!.volumes!.map((v) => v.name)).toEqual(['cache', 'raft-elector-secret', 'raft-elector-data']);
    expect((out.spec as Record<string, unknown>).securityContext).toEqual({ runAsUser: 1000 });
    expect(out.spec!.containers).toEqual(before.spec!.containers);
    expect(out.metadata!.labels).toEqual({ app: 'web', 'pod-template-hash': '7d4b9c', 'raft-elector.io/group': 'web' });
    expect(out.metadata!.annotations![Annotations.injected]).toBe('abc123');
  });

  it('is idempotent: a pod that already has the sidecar is left as it is', () => {
    const once = decide(annotated(), template);
    if (once.kind !== 'inject') throw new Error(once.kind);
    expect(decide(apply(annotated(), once.patch), template)).toEqual({ kind: 'skip', reason: 'already-injected' });
  });

  it('keeps a volume the user named like a template volume (a PVC for the data dir)', () => {
    const pod = annotated({ spec: { containers: [{ name: 'app' }], volumes: [{ name: 'raft-elector-data', persistentVolumeClaim: { claimName: 'mine' } }] } });
    const d = decide(pod, template);
    if (d.kind !== 'inject') throw new Error(d.kind);
    const vols = apply(pod, d.patch).spec!.volumes!;
    expect(vols.filter((v) => v.name === 'raft-elector-data')).toEqual([{ name: 'raft-elector-data', persistentVolumeClaim: { claimName: 'mine' } }]);
  });

  it('takes group, Service, max-voters and secret from annotations; the StatefulSet subdomain is the default Service', () => {
    const pod = annotated({ metadata: { name: 'db-0', ownerReferences: [{ kind: 'StatefulSet', name: 'db', controller: true }] }, spec: { containers: [{ name: 'app' }], subdomain: 'db-headless' } }, { [Annotations.maxVoters]: '3', [Annotations.secret]: 'db-secret' });
    const out = injected(pod).pod;
    expect(sidecarOf(out).args).toEqual(['--kubernetes', '--max-voters=3', '--service=db-headless', '--pod-selector=raft-elector.io/group=db', '--cluster-name=db', '--lease-name=db', '--tick-ms=100']);
    expect(out.spec!.volumes!.find((v) => v.name === 'raft-elector-secret')!.secret!.secretName).toBe('db-secret');
    expect(template.volumes[0]!.secret!.secretName).toBe('demo-raft-elector');
    const named = decide(annotated({}, { [Annotations.group]: 'orders' }), template);
    expect(named.kind === 'inject' && named.group).toBe('orders');
  });

  it('mounts the peer Secret of the group (<group>-peer, as the chart names it) unless the template names a fixed one', () => {
    const own = injected(annotated({}, { [Annotations.group]: 'orders-raft-elector' })).pod;
    expect(own.spec!.volumes!.find((v) => v.name === 'raft-elector-secret')!.secret).toEqual({ secretName: 'orders-raft-elector-peer', defaultMode: 292 });
    const { groupSecretSuffix: _, ...fixed } = template;
    const external = injected(annotated({}, { [Annotations.group]: 'orders-raft-elector' }), fixed).pod;
    expect(external.spec!.volumes!.find((v) => v.name === 'raft-elector-secret')!.secret!.secretName).toBe('demo-raft-elector');
  });

  it('ignores the old replicas annotation, with a warning that names it, and never passes --replicas', () => {
    const { pod, warnings } = injected(annotated({}, { [Annotations.replicas]: '3' }));
    expect(sidecarOf(pod).args!.some((a) => a.startsWith('--replicas'))).toBe(false);
    expect(warnings).toEqual([expect.stringContaining(Annotations.replicas) as string]);
    expect(warnings[0]).toContain(Annotations.maxVoters);
    const legacy = { ...template, container: { ...template.container, args: ['--kubernetes', '--replicas=3', '--tick-ms=100'] } };
    expect(sidecarOf(injected(annotated(), legacy).pod).args).toEqual(['--kubernetes', '--service=web', '--pod-selector=raft-elector.io/group=web', '--cluster-name=web', '--lease-name=web', '--tick-ms=100']);
  });

  it('warns, and still injects, when the pod runs as the default ServiceAccount (it never changes the pod\'s)', () => {
    for (const spec of [{ serviceAccountName: undefined, containers: [{ name: 'app' }] }, { serviceAccountName: 'default', containers: [{ name: 'app' }] }]) {
      const pod = annotated({ spec }, { [Annotations.group]: 'orders-raft-elector' });
      const d = decide(pod, template);
      if (d.kind !== 'inject') throw new Error(d.kind);
      expect(d.warnings).toEqual([expect.stringMatching(/ServiceAccount "default".*serviceAccountName.*orders-raft-elector/) as string]);
      expect(d.patch.some((op) => op.path.includes('serviceAccount'))).toBe(false);
    }
  });

  it('refuses, with a reason naming the annotation, a pod it cannot give a valid group, voter cap or Secret', () => {
    const d = decide(annotated({}, { [Annotations.group]: 'Not_A_Label' }), template);
    expect(d).toEqual({ kind: 'deny', reason: expect.stringContaining(Annotations.group) as string });
    for (const bad of ['three', '4', '9', '0', ' 3', '']) {
      expect(decide(annotated({}, { [Annotations.maxVoters]: bad }), template), bad).toEqual({ kind: 'deny', reason: expect.stringContaining(Annotations.maxVoters) as string });
    }
    for (const bad of ['Peer_Secret', '', 'a/b', 'x'.repeat(254)]) {
      expect(decide(annotated({}, { [Annotations.secret]: bad }), template), bad).toEqual({ kind: 'deny', reason: expect.stringContaining(Annotations.secret) as string });
    }
    expect(decide(annotated({}, { [Annotations.service]: 'no.dots' }), template)).toEqual({ kind: 'deny', reason: expect.stringContaining(Annotations.service) as string });
  });

  it('derives the group from the owner, generateName, labels or name', () => {
    expect(groupOf({ metadata: { ownerReferences: [{ kind: 'Job', name: 'batch', controller: true }] } })).toBe('batch');
    expect(groupOf({ metadata: { generateName: 'worker-' } })).toBe('worker');
    expect(groupOf({ metadata: { name: 'solo', labels: { 'app.kubernetes.io/name': 'app' } } })).toBe('app');
    expect(groupOf({ metadata: { name: 'solo' } })).toBe('solo');
  });

  it('appends a plain container when the template is not native, and drops --no-lease-mirror groups\' lease flag', () => {
    const plain = { ...template, native: false, container: { ...template.container, args: ['--kubernetes', '--no-lease-mirror'] } };
    const pod: PodLike = { metadata: { name: 'p', annotations: { [Annotations.inject]: 'true' } }, spec: { serviceAccountName: 'p', containers: [{ name: 'app' }] } };
    const d = decide(pod, plain);
    if (d.kind !== 'inject') throw new Error(d.kind);
    const out = apply(pod, d.patch);
    expect(out.spec!.initContainers).toBeUndefined();
    expect(out.spec!.containers!.map((c) => c.name)).toEqual(['app', 'raft-elector']);
    expect(out.spec!.containers![1]!.restartPolicy).toBeUndefined();
    expect(out.spec!.containers![1]!.args).toEqual(['--kubernetes', '--service=p', '--pod-selector=raft-elector.io/group=p', '--cluster-name=p', '--no-lease-mirror']);
  });
});
