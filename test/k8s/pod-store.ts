/**
 * The pods of the test API server and the change history watches resume from:
 * one global resourceVersion counter (shared with events), a bounded history
 * whose oldest kept version marks what is still resumable, patches of the three
 * content types, and graceful deletion that removes the pod after its grace
 * period. A no-op patch neither bumps the resourceVersion nor records a change.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { HttpStatusError, parseJsonBody, reasonsByCode } from './api-status.js';
import type { CreatePodInput, Pod } from './api-types.js';
import { applyJsonPatch, applyMergePatch, applyStrategicMergePatch, PatchError } from './patch.js';
import { fieldsMatch, labelsMatch, type FieldRequirement, type LabelRequirement } from './selectors.js';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface HistoryEntry {
  resourceVersion: number;
  type: WatchEventType;
  previous: Pod | null;
  object: Pod;
}

export interface DeletePreconditions {
  uid?: string;
  resourceVersion?: string;
}

/** The one resourceVersion counter of the server: every stored change of any kind takes the next one. */
export class ResourceVersionCounter {
  private value = 1;

  get current(): number {
    return this.value;
  }

  next(): string {
    this.value += 1;
    return String(this.value);
  }
}

export interface PodStoreOptions {
  /** Changes retained for resuming watches. */
  historyLimit: number;
  /** Remove gracefully deleted pods by themselves after their grace period. */
  autoFinalize: boolean;
}

export class PodStore {
  private readonly pods = new Map<string, Pod>();
  private readonly history: HistoryEntry[] = [];
  private readonly finalizeTimers = new Map<string, NodeJS.Timeout>();
  /** Watches from a resourceVersion below this get 410: the changes after it are no longer all retained. */
  private oldestResumable = 1;

  constructor(
    private readonly versions: ResourceVersionCounter,
    private readonly options: PodStoreOptions,
    /** Called with each stored change, after the store and its history took it. */
    private readonly onChange: (entry: HistoryEntry) => void,
  ) {}

  get oldestResumableVersion(): number {
    return this.oldestResumable;
  }

  create(input: CreatePodInput): Pod {
    const namespace = input.namespace ?? 'default';
    const key = `${namespace}/${input.name}`;
    if (this.pods.has(key)) throw new Error(`pod ${key} already exists`);
    const now = new Date().toISOString();
    const containers = (input.containers ?? ['app', 'raft-elector']).map((name) => ({ name, image: `example/${name}:test` }));
    const phase = input.phase ?? 'Running';
    const pod: Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: input.name,
        namespace,
        uid: randomUUID(),
        resourceVersion: '',
        creationTimestamp: now,
        ...(input.labels ? { labels: { ...input.labels } } : {}),
        ...(input.annotations ? { annotations: { ...input.annotations } } : {}),
      },
      spec: { containers, terminationGracePeriodSeconds: input.terminationGracePeriodSeconds ?? 30, nodeName: 'node-1' },
      status: {
        phase,
        podIP: input.podIP ?? '10.0.0.1',
        conditions: [{ type: 'Ready', status: phase === 'Running' ? 'True' : 'False' }],
        containerStatuses: containers.map((container, index) => ({
          name: container.name,
          ready: phase === 'Running',
          restartCount: 0,
          started: phase === 'Running',
          image: container.image,
          imageID: '',
          containerID: `containerd://${index}${randomBytes(8).toString('hex')}`,
          state: phase === 'Running' ? { running: { startedAt: now } } : { waiting: { reason: 'ContainerCreating' } },
        })),
      },
    };
    this.store('ADDED', null, pod);
    return structuredClone(pod);
  }

  get(name: string, namespace: string): Pod | undefined {
    const pod = this.pods.get(`${namespace}/${name}`);
    return pod ? structuredClone(pod) : undefined;
  }

  list(namespace: string): Pod[] {
    return [...this.pods.values()].filter((pod) => pod.metadata.namespace === namespace).map((pod) => structuredClone(pod));
  }

  /** The stored pods the selectors match, sorted by namespace/name (not copies: for answering at once). */
  select(labels: LabelRequirement[], fields: FieldRequirement[]): Pod[] {
    return [...this.pods.values()]
      .filter((pod) => labelsMatch(labels, pod.metadata.labels) && fieldsMatch(fields, pod))
      .sort((a, b) => `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`));
  }

  /** Every stored pod sorted by name, as a watch without a resourceVersion first sees them. */
  current(): Pod[] {
    return [...this.pods.values()].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  }

  /** The retained changes after resourceVersion `from`, oldest first. */
  changesAfter(from: number): HistoryEntry[] {
    return this.history.filter((entry) => entry.resourceVersion > from);
  }

  /** Forgets the retained history (as etcd compaction does): every resourceVersion before now is too old to resume from. */
  forgetHistory(): void {
    this.history.length = 0;
    this.oldestResumable = this.versions.current;
  }

  /** Changes a pod as the kubelet or a controller would: MODIFIED with a new resourceVersion. */
  update(name: string, mutate: (pod: Pod) => void, namespace: string): Pod {
    const current = this.pods.get(`${namespace}/${name}`);
    if (!current) throw new Error(`pod ${namespace}/${name} not found`);
    const next = structuredClone(current);
    mutate(next);
    this.store('MODIFIED', current, next);
    return structuredClone(next);
  }

  require(namespace: string | null, name: string | null): Pod {
    const pod = this.pods.get(`${namespace}/${name}`);
    if (!pod || name === null) throw new HttpStatusError(404, 'NotFound', `pods "${name}" not found`, { name, kind: 'pods' });
    return pod;
  }

  /** A PATCH request's effect: `contentType` names the patch format of `body`. */
  patch(namespace: string | null, name: string | null, contentType: string, body: string): Pod {
    const current = this.require(namespace, name);
    const patch = parseJsonBody(body);
    let patched: unknown;
    try {
      switch (contentType) {
        case 'application/merge-patch+json':
          patched = applyMergePatch(current, patch);
          break;
        case 'application/strategic-merge-patch+json':
          patched = applyStrategicMergePatch(current, patch);
          break;
        case 'application/json-patch+json':
          patched = applyJsonPatch(current, patch);
          break;
        default:
          throw new HttpStatusError(
            415,
            'UnsupportedMediaType',
            `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json`,
          );
      }
    } catch (error) {
      if (error instanceof PatchError) throw new HttpStatusError(error.status, reasonsByCode[error.status] ?? 'Invalid', error.message);
      throw error;
    }
    const next = patched as Pod;
    const requestedVersion = next.metadata?.resourceVersion;
    if (requestedVersion !== undefined && requestedVersion !== current.metadata.resourceVersion) {
      throw new HttpStatusError(409, 'Conflict', `Operation cannot be fulfilled on pods "${name}": the object has been modified; please apply your changes to the latest version and try again`, { name, kind: 'pods' });
    }
    if (next.metadata?.name !== current.metadata.name || next.metadata.namespace !== current.metadata.namespace || next.metadata.uid !== current.metadata.uid) {
      throw new HttpStatusError(422, 'Invalid', `Pod "${name}" is invalid: metadata: Invalid value: the name, namespace and uid cannot change`);
    }
    for (const [key, value] of Object.entries(next.metadata.labels ?? {})) {
      if (typeof value !== 'string') throw new HttpStatusError(422, 'Invalid', `Pod "${name}" is invalid: metadata.labels: Invalid value: "${key}": a label value must be a string`);
    }
    next.metadata.resourceVersion = current.metadata.resourceVersion;
    if (JSON.stringify(next) === JSON.stringify(current)) return structuredClone(current);
    this.store('MODIFIED', current, next);
    return structuredClone(next);
  }

  /** A graceful delete (deletionTimestamp, MODIFIED, removal after the grace period); a grace of 0 or less removes at once. */
  delete(namespace: string, name: string, gracePeriodSeconds: number | undefined, preconditions: DeletePreconditions | undefined): Pod {
    const key = `${namespace}/${name}`;
    const pod = this.pods.get(key);
    if (!pod) throw new HttpStatusError(404, 'NotFound', `pods "${name}" not found`, { name, kind: 'pods' });
    if (preconditions?.uid && preconditions.uid !== pod.metadata.uid) {
      throw new HttpStatusError(409, 'Conflict', `Operation cannot be fulfilled on pods "${name}": Precondition failed: UID in precondition: ${preconditions.uid}, UID in object meta: ${pod.metadata.uid}`, { name, kind: 'pods' });
    }
    if (preconditions?.resourceVersion && preconditions.resourceVersion !== pod.metadata.resourceVersion) {
      throw new HttpStatusError(409, 'Conflict', `Operation cannot be fulfilled on pods "${name}": Precondition failed: ResourceVersion in precondition: ${preconditions.resourceVersion}, ResourceVersion in object meta: ${pod.metadata.resourceVersion}`, { name, kind: 'pods' });
    }
    const grace = gracePeriodSeconds ?? pod.metadata.deletionGracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds;
    if (grace <= 0) {
      const final = structuredClone(pod);
      this.remove(key, final);
      return final;
    }
    if (pod.metadata.deletionTimestamp !== undefined && (pod.metadata.deletionGracePeriodSeconds ?? Infinity) <= grace) {
      return pod; // already terminating with a grace period at most this long: unchanged, as the real registry
    }
    const next = structuredClone(pod);
    next.metadata.deletionTimestamp = new Date(Date.now() + grace * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    next.metadata.deletionGracePeriodSeconds = grace;
    this.store('MODIFIED', pod, next);
    if (this.options.autoFinalize) {
      const existing = this.finalizeTimers.get(key);
      if (existing) clearTimeout(existing);
      const timer = setTimeout(() => {
        const current = this.pods.get(key);
        if (current && current.metadata.uid === next.metadata.uid) this.remove(key, current);
      }, grace * 1000);
      timer.unref();
      this.finalizeTimers.set(key, timer);
    }
    return next;
  }

  /** Ends a graceful deletion now (what the kubelet does once the containers stopped): DELETED. */
  finalize(name: string, namespace: string): void {
    const key = `${namespace}/${name}`;
    const pod = this.pods.get(key);
    if (!pod) throw new Error(`pod ${key} not found`);
    this.remove(key, pod);
  }

  close(): void {
    for (const timer of this.finalizeTimers.values()) clearTimeout(timer);
    this.finalizeTimers.clear();
  }

  private store(type: WatchEventType, previous: Pod | null, next: Pod): void {
    const key = `${next.metadata.namespace}/${next.metadata.name}`;
    next.metadata.resourceVersion = this.versions.next();
    if (type === 'DELETED') this.pods.delete(key);
    else this.pods.set(key, next);
    const entry: HistoryEntry = { resourceVersion: this.versions.current, type, previous: previous ? structuredClone(previous) : null, object: structuredClone(next) };
    this.history.push(entry);
    while (this.history.length > this.options.historyLimit) {
      const dropped = this.history.shift();
      if (dropped) this.oldestResumable = dropped.resourceVersion;
    }
    this.onChange(entry);
  }

  private remove(key: string, pod: Pod): void {
    const timer = this.finalizeTimers.get(key);
    if (timer) clearTimeout(timer);
    this.finalizeTimers.delete(key);
    this.store('DELETED', pod, structuredClone(pod));
  }
}
