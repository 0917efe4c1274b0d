import type { V1Lease as ModelLease } from '@kubernetes/client-node';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { LeadershipView } from '../cluster/interfaces.js';
import { waitFor } from '../test/integration/harness.js';
import type { Wire } from './kube-client.js';
import { LeaseMirror, LeaseTermAnnotation, microTime, type LeaseApi } from './lease-mirror.js';

/** A Lease as the API server sends it. */
type V1Lease = Wire<ModelLease>;

/** An in-memory Lease store with the API server's optimistic concurrency. */
class FakeLeases implements LeaseApi {
  lease: V1Lease | undefined;
  version = 0;
  failNext: number[] = [];
  writes = 0;

  private maybeFail(): void {
    const code = this.failNext.shift();
    if (code !== undefined) throw Object.assign(new Error(`HTTP ${code}`), { code });
  }

  async readNamespacedLease(): Promise<V1Lease> {
    this.maybeFail();
    if (!this.lease) throw Object.assign(new Error('not found'), { code: 404 });
    return structuredClone(this.lease);
  }

  async replaceNamespacedLease(request: { body: V1Lease }): Promise<V1Lease> {
    this.maybeFail();
    if (request.body.metadata?.resourceVersion !== this.lease?.metadata?.resourceVersion) throw Object.assign(new Error('conflict'), { code: 409 });
    return this.store(request.body);
  }

  /** Another writer (a later leader, or an operator's edit). */
  store(body: V1Lease): V1Lease {
    this.version += 1;
    this.writes += 1;
    this.lease = structuredClone({ ...body, metadata: { ...body.metadata, resourceVersion: String(this.version) } });
    return structuredClone(this.lease);
  }
}

class FakeMember {
  private listeners = new Set<(v: LeadershipView) => void>();
  current: LeadershipView;
  constructor(readonly id: string) {
    this.current = { self: id, leader: null, term: 1, role: 'Follower', isLeader: false, leaseExpiresInMs: null, since: null };
  }
  view(): LeadershipView {
    return this.current;
  }
  onChange(listener: (v: LeadershipView) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  set(change: Partial<LeadershipView>): void {
    this.current = { ...this.current, ...change };
    for (const l of this.listeners) l(this.current);
  }
  lead(term: number): void {
    this.set({ term, leader: this.id, role: 'Leader', isLeader: true, leaseExpiresInMs: 800 });
  }
  follow(leader: string, term: number): void {
    this.set({ term, leader, role: 'Follower', isLeader: false, leaseExpiresInMs: null });
  }
}

const logger = pino({ level: 'silent' });
const mirrors: LeaseMirror[] = [];
function mirror(api: LeaseApi, member: FakeMember): LeaseMirror {
  const m = new LeaseMirror({ api, member, namespace: 'shop', leaseName: 'orders', logger, backoff: { initialMs: 5, maxMs: 20 } });
  mirrors.push(m);
  m.start();
  return m;
}

afterEach(async () => {
  await Promise.all(mirrors.splice(0).map((m) => m.stop()));
});

describe('LeaseMirror', () => {
  it('the leader names itself in the Lease (as the chart created it), with the term that wrote it; a follower writes nothing', async () => {
    const api = new FakeLeases();
    api.store({ metadata: { name: 'orders' }, spec: {} });
    api.writes = 0;
    const a = new FakeMember('orders-a');
    const b = new FakeMember('orders-b');
    mirror(api, a);
    mirror(api, b);
    b.follow('orders-a', 3);
    a.lead(3);
    const lease = await waitFor('the lease', 2_000, () => (api.lease?.spec?.holderIdentity ? api.lease : undefined));
    expect(lease.spec).toMatchObject({ holderIdentity: 'orders-a', leaseTransitions: 0, leaseDurationSeconds: 120 });
    expect(lease.metadata?.annotations?.[LeaseTermAnnotation]).toBe('3');
    // The API server's MicroTime: six fractional digits (a Date would serialize with three and be refused).
    expect(JSON.parse(JSON.stringify(lease.spec)).renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(api.writes).toBe(1);
  });

  it('a new leader takes the Lease over and counts a transition; the old one, a term behind, never takes it back', async () => {
    const api = new FakeLeases();
    api.store({ metadata: { name: 'orders' }, spec: {} });
    const a = new FakeMember('orders-a');
    const b = new FakeMember('orders-b');
    mirror(api, a);
    mirror(api, b);
    a.lead(3);
    await waitFor('a holds the lease', 2_000, () => api.lease?.spec?.holderIdentity === 'orders-a' || undefined);
    a.follow('orders-b', 4);
    b.lead(4);
    await waitFor('b holds the lease', 2_000, () => api.lease?.spec?.holderIdentity === 'orders-b' || undefined);
    expect(api.lease?.spec?.leaseTransitions).toBe(1);
    expect(api.lease?.metadata?.annotations?.[LeaseTermAnnotation]).toBe('4');
    // A deposed leader whose view still says term 3 (it has not heard of term 4 yet).
    const stale = new FakeMember('orders-c');
    const staleMirror = mirror(api, stale);
    stale.lead(3);
    await waitFor('the stale write to be refused', 2_000, () => staleMirror.counts.skippedNewer > 0 || undefined);
    expect(api.lease?.spec?.holderIdentity).toBe('orders-b');
  });

  it('re-reads on a conflict and retries through API-server errors', async () => {
    const api = new FakeLeases();
    api.store({ metadata: { name: 'orders', annotations: { [LeaseTermAnnotation]: '1' } }, spec: { holderIdentity: 'orders-x', leaseTransitions: 2 } });
    api.failNext = [500, 503];
    const a = new FakeMember('orders-a');
    const m = mirror(api, a);
    // An operator edits the Lease between our read and our write: the first replace conflicts.
    const replace = api.replaceNamespacedLease.bind(api);
    let edited = false;
    api.replaceNamespacedLease = async (request) => {
      if (!edited) {
        edited = true;
        api.store({ ...api.lease!, spec: { ...api.lease!.spec, holderIdentity: 'orders-y' } });
      }
      return replace(request);
    };
    a.lead(2);
    await waitFor('a holds the lease', 2_000, () => api.lease?.spec?.holderIdentity === 'orders-a' || undefined);
    expect(m.counts.failures).toBe(2);
    expect(m.counts.conflicts).toBe(1);
    expect(api.lease?.spec?.leaseTransitions).toBe(3);
  });

  it('a missing Lease is reported and retried, never created (the Role may not create Leases)', async () => {
    const api = new FakeLeases();
    const a = new FakeMember('orders-a');
    const m = mirror(api, a);
    a.lead(5);
    await waitFor('a few failed reads', 2_000, () => m.counts.failures >= 2 || undefined);
    expect(api.lease).toBeUndefined();
    api.store({ metadata: { name: 'orders' }, spec: {} });
    await waitFor('a holds the lease', 2_000, () => api.lease?.spec?.holderIdentity === 'orders-a' || undefined);
  });

  it('formats MicroTime with microseconds', () => {
    expect(String(microTime(new Date('2026-12-01T23:20:31.199Z')))).toBe('2026-12-01T23:20:31.199000Z');
  });

  it('refuses a resync period under a second', () => {
    expect(() => new LeaseMirror({ api: new FakeLeases(), member: new FakeMember('a'), namespace: 'n', leaseName: 'l', logger, resyncMs: 10 })).toThrow(/resyncMs must be >= 1000/);
  });
});
