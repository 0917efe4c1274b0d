/**
 * The pure half of the injector: given a pod from an AdmissionReview and the sidecar
 * template, the JSONPatch that adds the sidecar, or why nothing is added. No I/O, so
 * every rule here is unit-tested without a server.
 *
 * Merge rules: only additions. The user's pod-level securityContext, volumes, env and
 * containers are never replaced; a template volume whose name the pod already has is
 * left out (the user's own, e.g. a PVC for the data dir, wins).
 */
export const Annotations = {
  inject: 'raft-elector.io/inject',
  group: 'raft-elector.io/group',
  service: 'raft-elector.io/service',
  maxVoters: 'raft-elector.io/max-voters',
  secret: 'raft-elector.io/secret',
  /** The fixed voter count of old manifests: ignored (the voters follow the pods), with a warning. */
  replicas: 'raft-elector.io/replicas',
  /** Written by the injector: the template's hash, so `kubectl get pod -o yaml` shows which spec it got. */
  injected: 'raft-elector.io/injected-template',
} as const;
/** The label the injector puts on the pod; --pod-selector selects the group by it. */
export const GroupLabel = 'raft-elector.io/group';

export interface Container {
  name: string;
  args?: string[];
  restartPolicy?: string;
  volumeMounts?: { name: string }[];
  [k: string]: unknown;
}
export interface Volume {
  name: string;
  secret?: { secretName?: string; [k: string]: unknown };
  [k: string]: unknown;
}
export interface PodLike {
  metadata?: {
    name?: string;
    generateName?: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: { kind?: string; name?: string; controller?: boolean }[];
  };
  spec?: { containers?: Container[]; initContainers?: Container[]; volumes?: Volume[]; subdomain?: string; serviceAccountName?: string };
}

export interface SidecarTemplate {
  /** The sidecar container, exactly as the chart's raft-elector.sidecar renders it. */
  container: Container;
  /** True: an init container with restartPolicy Always (native sidecar). */
  native: boolean;
  /** The chart's raft-elector.sidecarVolumes. */
  volumes: Volume[];
  /** Name of the data volume; an emptyDir is added when the template has none (persistence.type pvc). */
  dataVolumeName: string;
  /** Name of the volume holding the peer secret, whose secretName an annotation may replace. */
  secretVolumeName: string;
  /**
   * Set when the chart generates the peer Secret (<fullname><suffix>): an injected pod then
   * mounts <group><suffix>, the Secret of the release whose full name is the group, in the
   * pod's own namespace. Absent (secret.existingSecret): the template's Secret name as is.
   */
  groupSecretSuffix?: string;
  /** Short hash of the template, recorded on injected pods. */
  hash: string;
}

export type JsonPatchOp = { op: 'add'; path: string; value: unknown };

export type Decision =
  | { kind: 'skip'; reason: 'not-annotated' | 'already-injected' }
  | { kind: 'deny'; reason: string }
  | { kind: 'inject'; group: string; patch: JsonPatchOp[]; warnings: string[] };

const DnsLabel = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DnsSubdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** Flags the injector sets per group; the template's values for them are dropped. */
const GroupFlags = ['--cluster-name', '--service', '--pod-selector', '--lease-name', '--replicas'] as const;
/** --max-voters accepts an odd count from 1 to 7 (cmd/config.ts). */
const MaxVotersValues = ['1', '3', '5', '7'];

function escapePointer(key: string): string {
  return key.replaceAll('~', '~0').replaceAll('/', '~1');
}

/**
 * The group of a pod: the annotation, else the owning workload (StatefulSet, Job...: its
 * name; ReplicaSet: the Deployment's name, the ReplicaSet's name less the pod-template-hash),
 * else generateName less its trailing dash, else the app.kubernetes.io/name label, else the
 * pod's name.
 */
export function groupOf(pod: PodLike): string | undefined {
  const m = pod.metadata ?? {};
  const annotated = m.annotations?.[Annotations.group];
  if (annotated !== undefined && annotated !== '') return annotated;
  const owner = m.ownerReferences?.find((o) => o.controller) ?? m.ownerReferences?.[0];
  if (owner?.name) {
    const hash = m.labels?.['pod-template-hash'];
    if (owner.kind === 'ReplicaSet' && hash && owner.name.endsWith(`-${hash}`)) return owner.name.slice(0, -hash.length - 1);
    return owner.name;
  }
  if (m.generateName) return m.generateName.replace(/-+$/, '');
  return m.labels?.['app.kubernetes.io/name'] ?? m.name;
}

function hasSidecar(pod: PodLike, name: string): boolean {
  const s = pod.spec ?? {};
  return [...(s.containers ?? []), ...(s.initContainers ?? [])].some((c) => c.name === name);
}

/** What the webhook does with one pod. Never mutates its arguments. */
export function decide(pod: PodLike, template: SidecarTemplate): Decision {
  const ann = pod.metadata?.annotations ?? {};
  if (ann[Annotations.inject] !== 'true') return { kind: 'skip', reason: 'not-annotated' };
  // Reinvocation and re-applied pod specs: a pod with the sidecar already is left as it is.
  if (hasSidecar(pod, template.container.name)) return { kind: 'skip', reason: 'already-injected' };
  const group = groupOf(pod);
  if (!group || group.length > 63 || !DnsLabel.test(group)) {
    return { kind: 'deny', reason: `cannot inject raft-elector: the group name ${JSON.stringify(group ?? '')} is not a DNS label (set the ${Annotations.group} annotation to one, at most 63 characters)` };
  }
  const maxVoters = ann[Annotations.maxVoters];
  if (maxVoters !== undefined && !MaxVotersValues.includes(maxVoters)) {
    return { kind: 'deny', reason: `cannot inject raft-elector: annotation ${Annotations.maxVoters} must be 1, 3, 5 or 7 (an odd number of voters); got ${JSON.stringify(maxVoters)}` };
  }
  const warnings: string[] = [];
  if (ann[Annotations.replicas] !== undefined) {
    warnings.push(`raft-elector: annotation ${Annotations.replicas} is ignored (the voters follow the pods); use ${Annotations.maxVoters} to cap them`);
  }
  // The ServiceAccount admission has set it before any webhook runs; the injector never changes it.
  if ((pod.spec?.serviceAccountName ?? 'default') === 'default') {
    warnings.push(`raft-elector: pod runs as ServiceAccount "default"; unless the group's Role is bound to it, set serviceAccountName to the chart's (${group} when the group is the release's full name)`);
  }
  const service = ann[Annotations.service] ?? pod.spec?.subdomain ?? group;
  if (!DnsLabel.test(service)) {
    return { kind: 'deny', reason: `cannot inject raft-elector: the headless Service name ${JSON.stringify(service)} is not a DNS label (annotation ${Annotations.service})` };
  }
  const annotatedSecret = ann[Annotations.secret];
  if (annotatedSecret !== undefined && (annotatedSecret.length > 253 || !DnsSubdomain.test(annotatedSecret))) {
    return { kind: 'deny', reason: `cannot inject raft-elector: annotation ${Annotations.secret} must name a Secret (a DNS subdomain); got ${JSON.stringify(annotatedSecret)}` };
  }
  const templateArgs = template.container.args ?? [];
  const mirrorOff = templateArgs.includes('--no-lease-mirror');
  const dropped = maxVoters === undefined ? GroupFlags : [...GroupFlags, '--max-voters'];
  // --replicas is never passed: the voters follow the pods of --pod-selector (docs/membership.md).
  const kept = templateArgs.filter((a) => !dropped.some((f) => a === f || a.startsWith(`${f}=`)));
  const groupArgs = [...(maxVoters === undefined ? [] : [`--max-voters=${maxVoters}`]), `--service=${service}`, `--pod-selector=${GroupLabel}=${group}`, `--cluster-name=${group}`];
  if (!mirrorOff) groupArgs.push(`--lease-name=${group}`);
  const container: Container = structuredClone(template.container);
  container.args = ['--kubernetes', ...groupArgs, ...kept.filter((a) => a !== '--kubernetes')];
  const secretName = annotatedSecret ?? (template.groupSecretSuffix === undefined ? undefined : `${group}${template.groupSecretSuffix}`);

  const existing = new Set((pod.spec?.volumes ?? []).map((v) => v.name));
  const volumes: Volume[] = [];
  for (const v of template.volumes) {
    if (existing.has(v.name)) continue;
    const copy = structuredClone(v);
    if (copy.name === template.secretVolumeName && secretName && copy.secret) copy.secret.secretName = secretName;
    volumes.push(copy);
  }
  if (!existing.has(template.dataVolumeName) && !template.volumes.some((v) => v.name === template.dataVolumeName)) {
    // emptyDir: a member is one pod incarnation (name + uid), so an empty disk never votes twice.
    volumes.push({ name: template.dataVolumeName, emptyDir: { sizeLimit: '16Mi' } });
  }

  const patch: JsonPatchOp[] = [];
  const m = pod.metadata ?? {};
  if (!m.labels) patch.push({ op: 'add', path: '/metadata/labels', value: { [GroupLabel]: group } });
  else patch.push({ op: 'add', path: `/metadata/labels/${escapePointer(GroupLabel)}`, value: group });
  if (!m.annotations) patch.push({ op: 'add', path: '/metadata/annotations', value: { [Annotations.injected]: template.hash } });
  else patch.push({ op: 'add', path: `/metadata/annotations/${escapePointer(Annotations.injected)}`, value: template.hash });

  const spec = pod.spec ?? {};
  if (template.native) {
    container.restartPolicy = 'Always';
    // First: started (and its startupProbe passed) before the user's init containers and the app.
    if (spec.initContainers === undefined) patch.push({ op: 'add', path: '/spec/initContainers', value: [container] });
    else patch.push({ op: 'add', path: '/spec/initContainers/0', value: container });
  } else {
    delete container.restartPolicy;
    if (spec.containers === undefined) patch.push({ op: 'add', path: '/spec/containers', value: [container] });
    else patch.push({ op: 'add', path: '/spec/containers/-', value: container });
  }
  if (volumes.length > 0) {
    if (spec.volumes === undefined) patch.push({ op: 'add', path: '/spec/volumes', value: volumes });
    else for (const v of volumes) patch.push({ op: 'add', path: '/spec/volumes/-', value: v });
  }
  return { kind: 'inject', group, patch, warnings };
}
