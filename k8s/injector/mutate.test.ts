import { describe, expect, it } from 'vitest';
import { Annotations, decide, groupOf, type JsonPatchOp, type PodLike, type SidecarTemplate } from './mutate.js';

const template: SidecarTemplate = {
  container: {
    name: 'raft-elector',
    restartPolicy: 'Always',
    args: ['--kubernetes', '--replicas=3', '--service=demo', '--pod-selector=app=demo', '--cluster-name=demo', '--lease-name=demo', '--tick-ms=100'],
    env: [{ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
    volumeMounts: [{ name: 'raft-elector-data' }, { name: 'raft-elector-secret' }],
  },
  native: true,
  volumes: [
    { name: 'raft-elector-secret', secret: { secretName: 'demo-raft-elector', defaultMode: 292 } },
    { name: 'raft-elector-data', emptyDir: { sizeLimit: '16Mi' } },
  ],
  dataVolumeName: 'raft-elector-data',
  secretVolumeName: 'raft-elector-secret',
  hash: 'abc123',
};

function annotated(extra: PodLike = {}, ann: Record<string, string> = {}): PodLike {
  return {
    metadata: { generateName: 'web-7d4b9c-', labels: { app: 'web', 'pod-template-hash': '7d4b9c' }, annotations: { [Annotations.inject]: 'true', ...ann }, ownerReferences: [{ kind: 'ReplicaSet', name: 'web-7d4b9c', controller: true }], ...extra.metadata },
    spec: { securityContext: { runAsUser: 1000 }, containers: [{ name: 'app', env: [{ name: 'A', value: '1' }] }], volumes: [{ name: 'cache', emptyDir: {} }], ...extra.spec } as PodLike['spec'],
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
    expect(side.args).toEqual(['--kubernetes', '--replicas=3', '--service=web', '--pod-selector=raft-elector.io/group=web', '--cluster-name=web', '--lease-name=web', '--tick-ms=100']);
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

  it('takes group, Service, replicas and secret from annotations; the StatefulSet subdomain is the default Service', () => {
    const pod = annotated({ metadata: { name: 'db-0', ownerReferences: [{ kind: 'StatefulSet', name: 'db', controller: true }] }, spec: { containers: [{ name: 'app' }], subdomain: 'db-headless' } }, { [Annotations.replicas]: '5', [Annotations.secret]: 'db-secret' });
    const d = decide(pod, template);
    if (d.kind !== 'inject') throw new Error(d.kind);
    const out = apply(pod, d.patch);
    expect(out.spec!.initContainers![0]!.args!.slice(0, 5)).toEqual(['--kubernetes', '--replicas=5', '--service=db-headless', '--pod-selector=raft-elector.io/group=db', '--cluster-name=db']);
    expect(out.spec!.volumes!.find((v) => v.name === 'raft-elector-secret')!.secret!.secretName).toBe('db-secret');
    expect(template.volumes[0]!.secret!.secretName).toBe('demo-raft-elector');
    const named = decide(annotated({}, { [Annotations.group]: 'orders' }), template);
    expect(named.kind === 'inject' && named.group).toBe('orders');
  });

  it('refuses, with a reason naming the annotation, a pod it cannot give a valid group', () => {
    const d = decide(annotated({}, { [Annotations.group]: 'Not_A_Label' }), template);
    expect(d).toEqual({ kind: 'deny', reason: expect.stringContaining(Annotations.group) as string });
    expect(decide(annotated({}, { [Annotations.replicas]: 'three' }), template)).toEqual({ kind: 'deny', reason: expect.stringContaining(Annotations.replicas) as string });
  });

  it('derives the group from the owner, generateName, labels or name', () => {
    expect(groupOf({ metadata: { ownerReferences: [{ kind: 'Job', name: 'batch', controller: true }] } })).toBe('batch');
    expect(groupOf({ metadata: { generateName: 'worker-' } })).toBe('worker');
    expect(groupOf({ metadata: { name: 'solo', labels: { 'app.kubernetes.io/name': 'app' } } })).toBe('app');
    expect(groupOf({ metadata: { name: 'solo' } })).toBe('solo');
  });

  it('appends a plain container when the template is not native, and drops --no-lease-mirror groups\' lease flag', () => {
    const plain = { ...template, native: false, container: { ...template.container, args: ['--kubernetes', '--no-lease-mirror'] } };
    const pod: PodLike = { metadata: { name: 'p', annotations: { [Annotations.inject]: 'true' } }, spec: { containers: [{ name: 'app' }] } };
    const d = decide(pod, plain);
    if (d.kind !== 'inject') throw new Error(d.kind);
    const out = apply(pod, d.patch);
    expect(out.spec!.initContainers).toBeUndefined();
    expect(out.spec!.containers!.map((c) => c.name)).toEqual(['app', 'raft-elector']);
    expect(out.spec!.containers![1]!.restartPolicy).toBeUndefined();
    // No --replicas in the template or annotations: none is added (the voters follow the pods).
    expect(out.spec!.containers![1]!.args).toEqual(['--kubernetes', '--service=p', '--pod-selector=raft-elector.io/group=p', '--cluster-name=p', '--no-lease-mirror']);
  });
});
