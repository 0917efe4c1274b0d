/**
 * Kubernetes Events on this member's pod when it becomes leader
 * (`LeaderElected`) and when it stops being leader (`LeadershipLost`), shown by
 * `kubectl describe pod` and `kubectl get events`.
 *
 * Never blocking: the view listener only appends to a bounded queue; a worker
 * sends one event at a time, retrying with capped backoff while the API server
 * is away (logged once), so events catch up when it returns. Rate limited as
 * client-go's event spam filter is: a token bucket per pod, and an event with
 * no token left is dropped (counted, logged at debug), so a flapping leader
 * cannot flood the API server.
 */
import { randomBytes } from 'node:crypto';
import type { CoreV1Event } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { LeadershipView, Member } from '../cluster/interfaces.js';
import { ApiFailureReporter, Backoff, isKubeApiError, type ApiOperation, type BackoffOptions } from './api-errors.js';
import type { KubeClient, Wire } from './kube-client.js';
import { InterruptibleSleep } from './sleeper.js';

export type LeadershipEventReason = 'LeaderElected' | 'LeadershipLost' | MembershipEventReason;
/** On the affected pod, from the leader's reconciler (k8s/reconciler.ts). */
export type MembershipEventReason = 'MemberAdded' | 'MemberRemoved' | 'MemberPromoted';

export interface LeadershipEventsOptions {
  client: KubeClient;
  member: Pick<Member, 'id' | 'view' | 'onChange'>;
  namespace: string;
  /** Defaults to member.id. */
  podName?: string;
  /** The pod's uid (downward API `metadata.uid`), so `kubectl describe pod` lists the events; optional. */
  podUid?: string;
  /** Burst of events allowed at once. Default 5. */
  burst?: number;
  /** One token comes back per this interval. Default 30 000. */
  refillMs?: number;
  /** Events waiting to be sent at most; the oldest is dropped beyond it. Default 10. */
  queueLimit?: number;
  backoff?: BackoffOptions;
  logger: Logger;
  /** Injected clock for the rate limiter (tests). */
  nowMs?: () => number;
}

interface PendingEvent {
  name: string;
  pod: { name: string; uid?: string };
  reason: LeadershipEventReason;
  message: string;
  at: Date;
}

export class LeadershipEvents {
  private readonly podName: string;
  private readonly burst: number;
  private readonly refillMs: number;
  private readonly queueLimit: number;
  private readonly nowMs: () => number;
  private readonly backoff: Backoff;
  private readonly reporter: ApiFailureReporter;
  private readonly log: Logger;
  private readonly queue: PendingEvent[] = [];
  private tokens: number;
  private tokensAtMs: number;
  private wasLeader = false;
  private lastTerm = 0;
  private sequence = 0;
  private running = false;
  private stopped = false;
  private worker: Promise<void> | null = null;
  private readonly sleeper = new InterruptibleSleep();
  private unsubscribe: (() => void) | null = null;

  readonly counts = { sent: 0, rateLimited: 0, queueDropped: 0, failures: 0 };

  constructor(private readonly options: LeadershipEventsOptions) {
    this.podName = options.podName ?? options.member.id;
    this.burst = options.burst ?? 5;
    this.refillMs = options.refillMs ?? 30_000;
    this.queueLimit = options.queueLimit ?? 10;
    if (!(Number.isInteger(this.burst) && this.burst >= 1)) throw new Error(`events burst must be an integer >= 1, got ${this.burst}`);
    if (!(this.refillMs > 0)) throw new Error(`events refillMs must be > 0, got ${this.refillMs}`);
    if (!(Number.isInteger(this.queueLimit) && this.queueLimit >= 1)) throw new Error(`events queueLimit must be an integer >= 1, got ${this.queueLimit}`);
    this.nowMs = options.nowMs ?? Date.now;
    this.tokens = this.burst;
    this.tokensAtMs = this.nowMs();
    this.backoff = new Backoff(options.backoff ?? { initialMs: 500, maxMs: 30_000 });
    this.log = options.logger.child({ component: 'events' });
    this.reporter = new ApiFailureReporter(this.log);
  }

  start(): void {
    if (this.unsubscribe || this.stopped) return;
    const view = this.options.member.view();
    this.wasLeader = view.isLeader;
    this.lastTerm = view.term;
    this.unsubscribe = this.options.member.onChange((next) => this.observe(next));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.sleeper.wake();
    await this.worker;
  }

  pending(): number {
    return this.queue.length;
  }

  /** Resolves when the queue is empty (tests). */
  async drained(): Promise<void> {
    while (this.running || this.queue.length > 0) await (this.worker ?? Promise.resolve());
  }

  /** From the raft loop's view listener: O(1), no I/O. */
  private observe(view: LeadershipView): void {
    if (view.isLeader && !this.wasLeader) {
      this.enqueue('LeaderElected', `${this.podName} became leader at term ${view.term}`);
    } else if (!view.isLeader && this.wasLeader) {
      const successor = view.leader !== null && view.leader !== this.podName ? `; ${view.leader} leads at term ${view.term}` : '';
      this.enqueue('LeadershipLost', `${this.podName} stopped being leader of term ${this.lastTerm}${successor}`);
    }
    this.wasLeader = view.isLeader;
    this.lastTerm = view.term;
  }

  private takeToken(): boolean {
    const now = this.nowMs();
    const refilled = Math.floor((now - this.tokensAtMs) / this.refillMs);
    if (refilled > 0) {
      this.tokens = Math.min(this.burst, this.tokens + refilled);
      this.tokensAtMs = this.tokens === this.burst ? now : this.tokensAtMs + refilled * this.refillMs;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** An event on another pod of the group (the reconciler's membership events); never blocks. */
  emitFor(pod: { name: string; uid?: string }, reason: MembershipEventReason, message: string): void {
    this.enqueue(reason, message, pod);
  }

  private enqueue(reason: LeadershipEventReason, message: string, pod?: { name: string; uid?: string }): void {
    if (this.stopped) return;
    if (!this.takeToken()) {
      this.counts.rateLimited += 1;
      this.log.debug({ reason, message }, 'event dropped by the rate limit');
      return;
    }
    if (this.queue.length >= this.queueLimit) {
      this.queue.shift();
      this.counts.queueDropped += 1;
    }
    // client-go's name shape: <object>.<hex time>; fixed here so a retry after a timeout is idempotent (409 AlreadyExists).
    this.sequence += 1;
    const at = new Date();
    const target = pod ?? { name: this.podName, ...(this.options.podUid ? { uid: this.options.podUid } : {}) };
    const name = `${target.name}.${(at.getTime() * 1000 + this.sequence).toString(16)}${randomBytes(2).toString('hex')}`;
    this.queue.push({ name, pod: target, reason, message, at });
    if (!this.running) {
      this.running = true;
      this.worker = this.run();
    }
  }

  private async run(): Promise<void> {
    await Promise.resolve(); // off the raft loop's stack
    while (!this.stopped) {
      const event = this.queue[0];
      if (!event) break;
      const operation: ApiOperation = { verb: 'create', resource: 'events', group: '', namespace: this.options.namespace, name: event.name };
      try {
        await this.send(event);
        this.reporter.succeeded(operation);
        this.backoff.reset();
        this.counts.sent += 1;
        if (this.queue[0] === event) this.queue.shift();
      } catch (err) {
        if (isKubeApiError(err, 'KUBE_CONFLICT') || (err as { code?: unknown }).code === 409) {
          if (this.queue[0] === event) this.queue.shift(); // an earlier attempt landed
          continue;
        }
        this.counts.failures += 1;
        const delay = this.backoff.nextDelayMs();
        this.reporter.failed(err, operation, delay);
        await this.sleep(delay);
      }
    }
    this.running = false;
  }

  private sleep(ms: number): Promise<void> {
    return this.sleeper.sleep(ms);
  }

  private async send(event: PendingEvent): Promise<void> {
    const body: Wire<CoreV1Event> = {
      metadata: { name: event.name, namespace: this.options.namespace },
      involvedObject: {
        apiVersion: 'v1',
        kind: 'Pod',
        name: event.pod.name,
        namespace: this.options.namespace,
        ...(event.pod.uid ? { uid: event.pod.uid } : {}),
      },
      reason: event.reason,
      message: event.message,
      type: 'Normal',
      source: { component: 'raft-elector' },
      reportingComponent: 'raft-elector',
      reportingInstance: this.podName,
      firstTimestamp: event.at.toISOString(),
      lastTimestamp: event.at.toISOString(),
      count: 1,
    };
    await this.options.client.core.createNamespacedEvent({ namespace: this.options.namespace, body });
  }
}
