/** The Events (core v1 and events.k8s.io/v1) of the test API server: create and list, keyed by group, namespace and name. */
import { randomBytes, randomUUID } from 'node:crypto';
import { HttpStatusError, parseJsonBody } from './api-status.js';
import type { StoredEventObject } from './api-types.js';
import type { ResourceVersionCounter } from './pod-store.js';

export class EventStore {
  private readonly events = new Map<string, StoredEventObject>();

  constructor(private readonly versions: ResourceVersionCounter) {}

  /** Copies of the events of `namespace`, in creation order. */
  list(namespace: string): StoredEventObject[] {
    return [...this.events.values()].filter((event) => event.metadata.namespace === namespace).map((event) => structuredClone(event));
  }

  /** The EventList a list request of `group` gets; a null namespace lists all. */
  listDocument(group: string, namespace: string | null): Record<string, unknown> {
    const items = [...this.events.values()].filter((event) => namespace === null || event.metadata.namespace === namespace);
    const kind = group === '' ? { kind: 'EventList', apiVersion: 'v1' } : { kind: 'EventList', apiVersion: 'events.k8s.io/v1' };
    return { ...kind, metadata: { resourceVersion: String(this.versions.current) }, items };
  }

  /** A create request's effect: the stored event, named from generateName when it has no name. */
  create(group: string, namespace: string, body: string): StoredEventObject {
    const event = parseJsonBody(body) as { metadata?: { name?: string; generateName?: string; namespace?: string } & Record<string, unknown> } & Record<string, unknown>;
    const metadata = event.metadata ?? {};
    if (metadata.namespace !== undefined && metadata.namespace !== namespace) {
      throw new HttpStatusError(400, 'BadRequest', `the namespace of the provided object does not match the namespace sent on the request`);
    }
    const name = metadata.name ?? (metadata.generateName ? `${metadata.generateName}${randomBytes(3).toString('hex').slice(0, 5)}` : undefined);
    if (!name) throw new HttpStatusError(422, 'Invalid', `Event "" is invalid: metadata.name: Required value: name or generateName is required`);
    const reason = event.reason;
    if (typeof reason !== 'string' || reason === '') throw new HttpStatusError(422, 'Invalid', `Event "${name}" is invalid: reason: Required value`);
    const key = `${group}/${namespace}/${name}`;
    if (this.events.has(key)) throw new HttpStatusError(409, 'AlreadyExists', `events "${name}" already exists`, { name, kind: 'events' });
    const stored: StoredEventObject = {
      ...event,
      apiVersion: group === '' ? 'v1' : 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { ...metadata, name, namespace, uid: randomUUID(), resourceVersion: this.versions.next(), creationTimestamp: new Date().toISOString() },
    };
    this.events.set(key, stored);
    return stored;
  }
}
