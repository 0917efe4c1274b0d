/**
 * A `coordination.k8s.io/v1` Lease that mirrors the raft leader, so tools that only read
 * Leases (`kubectl get lease`, client-go's OnNewLeader watchers) see who leads.
 *
 * It is a mirror, never an input: the election does not read it and never waits for it.
 * The leader writes it when it starts holding its lease in a new term, and refreshes
 * `renewTime` every `resyncMs` while it leads (also repairing a hand edit). A write never
 * goes backwards: the Lease records the term that wrote it (annotation
 * `raft-elector.io/term`), and a member whose term is lower than the recorded one leaves
 * it alone, so a deposed leader that reaches the API server late cannot name itself again.
 * Updates carry the resourceVersion they read (optimistic concurrency; a 409 re-reads).
 *
 * The chart creates the Lease, and the Role grants `get` and `update` on that one name
 * only (RBAC cannot confine `create` to a name, and a group that may create Leases could
 * take over another app's client-go election in the namespace). A missing Lease is
 * therefore reported (once, through the failure reporter) and retried, never created.
 */
import type { V1Lease } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { LeadershipView, Member } from '../cluster/interfaces.js';
import { podNameOf } from '../cluster/member-id.js';
import type { CoordinationApi, Wire } from './kube-client.js';
import { ApiFailureReporter, Backoff, isKubeApiError, type ApiOperation, type BackoffOptions } from './api-errors.js';
import { InterruptibleSleep } from './sleeper.js';

export const LeaseTermAnnotation = 'raft-elector.io/term';

/**
 * A MicroTime as the API server parses it: RFC 3339 with exactly six fractional digits
 * (a Date's JSON has three, which the API server refuses: 400, "cannot parse .199Z as .000000").
 */
export function microTime(at: Date): string {
  return at.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** The two calls the mirror makes (the client's coordination API), so tests can hand in a fake. */
export type LeaseApi = CoordinationApi;

export interface LeaseMirrorOptions {
  api: LeaseApi;
  member: Pick<Member, 'id' | 'view' | 'onChange'>;
  namespace: string;
  /** The Lease's name: the group's name. */
  leaseName: string;
  /** While leading, renewTime is refreshed this often. Default 60 000. */
  resyncMs?: number;
  backoff?: BackoffOptions;
  logger: Logger;
  /** Injected wall clock (tests). */
  now?: () => Date;
}

export class LeaseMirror {
  private readonly resyncMs: number;
  private readonly backoff: Backoff;
  private readonly reporter: ApiFailureReporter;
  private readonly log: Logger;
  private readonly now: () => Date;
  private readonly sleeper = new InterruptibleSleep();
  private unsubscribe: (() => void) | null = null;
  private worker: Promise<void> | null = null;
  private stopped = false;
  /** The term this member last wrote the Lease in, as leader. */
  private writtenTerm = 0;
  private wantWrite = false;

  readonly counts = { writes: 0, skippedNewer: 0, conflicts: 0, failures: 0 };

  constructor(private readonly options: LeaseMirrorOptions) {
    this.resyncMs = options.resyncMs ?? 60_000;
    if (!(this.resyncMs >= 1_000)) throw new Error(`lease mirror resyncMs must be >= 1000, got ${this.resyncMs}`);
    this.backoff = new Backoff(options.backoff ?? { initialMs: 500, maxMs: 30_000 });
    this.log = options.logger.child({ component: 'lease-mirror', lease: options.leaseName });
    this.reporter = new ApiFailureReporter(this.log);
    this.now = options.now ?? (() => new Date());
  }

  /** leaseDurationSeconds as written: two resync periods, so a reader sees it expire only when renewals stop. */
  get leaseDurationSeconds(): number {
    return Math.ceil((2 * this.resyncMs) / 1000);
  }

  start(): void {
    if (this.unsubscribe || this.stopped) return;
    this.unsubscribe = this.options.member.onChange((view) => this.observe(view));
    this.observe(this.options.member.view());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.sleeper.wake();
    await this.worker;
  }

  /** Resolves once no write is pending (tests). */
  async settled(): Promise<void> {
    while (this.worker && this.wantWrite) await new Promise((r) => setTimeout(r, 5));
  }

  /** From the raft loop's view listener: no I/O here. */
  private observe(view: LeadershipView): void {
    if (!view.isLeader || view.term <= this.writtenTerm) return;
    this.wantWrite = true;
    this.sleeper.wake();
    this.worker ??= this.run();
  }

  private async run(): Promise<void> {
    await Promise.resolve(); // off the raft loop's stack
    while (!this.stopped) {
      const view = this.options.member.view();
      if (!view.isLeader) {
        // Not leading: nothing to write until observe() sees a new term.
        this.wantWrite = false;
        this.worker = null;
        return;
      }
      const operation: ApiOperation = { verb: 'update', resource: 'leases', group: 'coordination.k8s.io', namespace: this.options.namespace, name: this.options.leaseName };
      try {
        await this.write(view.term);
        this.reporter.succeeded(operation);
        this.backoff.reset();
        this.writtenTerm = Math.max(this.writtenTerm, view.term);
        this.wantWrite = false;
        await this.sleeper.sleep(this.resyncMs);
      } catch (err) {
        if (isKubeApiError(err, 'KUBE_CONFLICT') || (err as { code?: unknown }).code === 409) {
          this.counts.conflicts += 1;
          continue; // someone wrote in between: read again
        }
        this.counts.failures += 1;
        const delay = this.backoff.nextDelayMs();
        this.reporter.failed(err, operation, delay);
        await this.sleeper.sleep(delay);
      }
    }
    this.worker = null;
  }

  private async write(term: number): Promise<void> {
    const { api: leases, namespace, leaseName } = this.options;
    const holder = podNameOf(this.options.member.id); // what Lease readers compare with POD_NAME, as /leader does
    const now = this.now();
    const existing = await leases.readNamespacedLease({ name: leaseName, namespace });
    const recordedTerm = Number(existing.metadata?.annotations?.[LeaseTermAnnotation] ?? 0);
    if (Number.isFinite(recordedTerm) && recordedTerm > term) {
      // A later leader already wrote it: we are stale, whatever our view says.
      this.counts.skippedNewer += 1;
      this.log.info({ holder: existing.spec?.holderIdentity ?? null, recordedTerm, term }, 'lease left alone: a later term wrote it');
      return;
    }
    await leases.replaceNamespacedLease({ name: leaseName, namespace, body: this.lease(existing, term, now) });
    this.counts.writes += 1;
    if (existing.spec?.holderIdentity !== holder) this.log.info({ holder, previous: existing.spec?.holderIdentity ?? null, term }, 'lease holder changed');
  }

  private lease(existing: Wire<V1Lease>, term: number, now: Date): Wire<V1Lease> {
    const holder = podNameOf(this.options.member.id); // what Lease readers compare with POD_NAME, as /leader does
    const sameHolder = existing.spec?.holderIdentity === holder;
    const firstHolder = existing.spec?.holderIdentity === undefined || existing.spec.holderIdentity === '';
    const transitions = existing.spec?.leaseTransitions ?? 0;
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {
        ...(existing.metadata ?? {}),
        name: this.options.leaseName,
        namespace: this.options.namespace,
        annotations: { ...(existing.metadata?.annotations ?? {}), [LeaseTermAnnotation]: String(term) },
      },
      spec: {
        holderIdentity: holder,
        leaseDurationSeconds: this.leaseDurationSeconds,
        acquireTime: sameHolder && existing.spec?.acquireTime ? existing.spec.acquireTime : microTime(now),
        renewTime: microTime(now),
        // client-go counts a change of holder as a transition; the first holder is not one.
        leaseTransitions: firstHolder || sameHolder ? transitions : transitions + 1,
      },
    };
  }
}
