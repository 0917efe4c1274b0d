/**
 * The `raft-role` label on this member's own pod, so that
 * `kubectl get pods -l raft-role=leader` names the leader.
 *
 * - leader only while the view says `isLeader` (raft leader, lease held, not
 *   transferring); follower otherwise;
 * - the new leader also lists the group's pods still labelled leader and sets
 *   each other one to follower: a crashed leader cannot clean its own label;
 * - coalesced: one slot holds the latest desired state, one request is in
 *   flight at a time, and a state that was superseded while waiting is never
 *   written;
 * - failures are retried with capped backoff and logged once (api-errors.ts);
 * - never blocks the raft loop: the view listener only stores the desired
 *   state and wakes the worker.
 *
 * The leader label carries the term in an annotation, so a leader never
 * demotes a pod labelled by a newer leader (a stale leader's clean-up racing
 * the new leader's own label).
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { LeadershipView, Member } from '../cluster/interfaces.js';
import { ApiFailureReporter, Backoff, type ApiOperation, type BackoffOptions, isKubeApiError } from './api-errors.js';
import { PatchContentType, type KubeClient, type PatchOptions, type Wire } from './kube-client.js';
import { InterruptibleSleep } from './sleeper.js';

export class PodLabelConfigError extends Error {
  readonly code = 'POD_LABEL_CONFIG_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'PodLabelConfigError';
  }
}

export interface PodLabelerOptions {
  client: KubeClient;
  member: Pick<Member, 'id' | 'view' | 'onChange'>;
  namespace: string;
  /** This member's pod; defaults to member.id (the pod name in in-cluster mode). */
  podName?: string;
  /** Selects the pods of this group only, e.g. `app.kubernetes.io/instance=shop-elector`. Required: the clean-up must not touch other apps' pods. */
  groupSelector: string;
  labelKey?: string;
  leaderValue?: string;
  followerValue?: string;
  /** Annotation holding the term of a leader label. */
  termAnnotation?: string;
  backoff?: BackoffOptions;
  logger: Logger;
}

interface DesiredLabel {
  leader: boolean;
  term: number;
}

const LABEL_KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$/;

export const mergePatchOptions = (): PatchOptions => ({ contentType: PatchContentType.MergePatch });

export class PodLabeler {
  private readonly podName: string;
  private readonly labelKey: string;
  private readonly leaderValue: string;
  private readonly followerValue: string;
  private readonly termAnnotation: string;
  private readonly backoff: Backoff;
  private readonly reporter: ApiFailureReporter;
  private readonly log: Logger;

  /** The single queue slot: the latest state the view asks for. */
  private desired: DesiredLabel | null = null;
  /** What the API server acknowledged for our own pod. */
  private written: DesiredLabel | null = null;
  /** The term whose stale leader labels were cleaned. */
  private cleanedTerm: number | null = null;
  private worker: Promise<void> | null = null;
  private running = false;
  private unsubscribe: (() => void) | null = null;
  private stopped = false;
  private readonly sleeper = new InterruptibleSleep();
  private readonly settledWaiters = new Set<() => void>();

  /** Requests sent, for tests and metrics. */
  readonly counts = { patches: 0, lists: 0, failures: 0 };

  constructor(private readonly options: PodLabelerOptions) {
    this.podName = options.podName ?? options.member.id;
    this.labelKey = options.labelKey ?? 'raft-role';
    this.leaderValue = options.leaderValue ?? 'leader';
    this.followerValue = options.followerValue ?? 'follower';
    this.termAnnotation = options.termAnnotation ?? 'raft-elector.io/leader-term';
    if (!LABEL_KEY.test(this.labelKey)) throw new PodLabelConfigError(`label key "${this.labelKey}" is not a valid Kubernetes label key`);
    for (const [name, value] of [['leader', this.leaderValue], ['follower', this.followerValue]] as const) {
      if (!LABEL_VALUE.test(value)) throw new PodLabelConfigError(`${name} label value "${value}" is not a valid Kubernetes label value`);
    }
    if (this.leaderValue === this.followerValue) throw new PodLabelConfigError(`the leader and follower label values must differ (both "${this.leaderValue}")`);
    if (options.groupSelector.trim() === '') throw new PodLabelConfigError('groupSelector must select the group\'s pods (e.g. "app.kubernetes.io/instance=my-elector"); an empty selector would let the leader relabel every pod in the namespace');
    if (options.groupSelector.includes(`${this.labelKey}`)) throw new PodLabelConfigError(`groupSelector "${options.groupSelector}" must not use the role label "${this.labelKey}" itself`);
    if (!options.namespace) throw new PodLabelConfigError('namespace is required');
    this.backoff = new Backoff(options.backoff ?? { initialMs: 500, maxMs: 30_000 });
    this.log = options.logger.child({ component: 'pod-label' });
    this.reporter = new ApiFailureReporter(this.log);
  }

  start(): void {
    if (this.unsubscribe || this.stopped) return;
    this.unsubscribe = this.options.member.onChange((view) => this.want(view));
    this.want(this.options.member.view());
  }

  /** Stops retrying and waits for the request in flight (bounded by the client's request timeout). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.sleeper.wake();
    await this.worker;
  }

  /** Resolves once the API server holds the latest desired state (tests; the worker never needs it). */
  settled(): Promise<void> {
    if (this.isSettled()) return Promise.resolve();
    return new Promise((resolve) => this.settledWaiters.add(resolve));
  }

  private isSettled(): boolean {
    const desired = this.desired;
    return desired !== null && this.sameAsWritten(desired) && (!desired.leader || this.cleanedTerm === desired.term);
  }

  private sameAsWritten(desired: DesiredLabel): boolean {
    const written = this.written;
    if (written === null || written.leader !== desired.leader) return false;
    return !desired.leader || written.term === desired.term;
  }

  /** Called from the raft loop's view listener: O(1), no I/O. */
  private want(view: LeadershipView): void {
    this.desired = { leader: view.isLeader, term: view.term };
    if (!this.running && !this.stopped) {
      this.running = true;
      this.worker = this.run();
    }
  }

  private async run(): Promise<void> {
    await Promise.resolve(); // leave the caller's (raft) stack before any work
    while (!this.stopped) {
      const target = this.desired;
      if (target === null || this.isSettled()) break;
      try {
        if (!this.sameAsWritten(target)) await this.patchOwnPod(target);
        if (target.leader && this.cleanedTerm !== target.term) await this.demoteStaleLeaders(target);
        this.backoff.reset();
      } catch (err) {
        this.counts.failures += 1;
        const delay = this.backoff.nextDelayMs();
        this.reporter.failed(err, (err as { operation?: ApiOperation }).operation ?? this.ownPodOperation('patch'), delay);
        await this.sleep(delay);
      }
    }
    // Cleared in the same synchronous step as the last check, so a view change after it starts a new worker.
    this.running = false;
    if (this.isSettled()) {
      for (const resolve of this.settledWaiters) resolve();
      this.settledWaiters.clear();
    }
  }

  private sleep(ms: number): Promise<void> {
    return this.sleeper.sleep(ms);
  }

  private ownPodOperation(verb: ApiOperation['verb']): ApiOperation {
    return { verb, resource: 'pods', group: '', namespace: this.options.namespace, name: this.podName };
  }

  private async call<T>(operation: ApiOperation, request: () => Promise<T>): Promise<T> {
    try {
      const result = await request();
      this.reporter.succeeded(operation);
      return result;
    } catch (err) {
      throw Object.assign(err instanceof Error ? err : new Error(String(err)), { operation });
    }
  }

  private async patchOwnPod(target: DesiredLabel): Promise<void> {
    const value = target.leader ? this.leaderValue : this.followerValue;
    const metadata: Record<string, unknown> = { labels: { [this.labelKey]: value } };
    if (target.leader) metadata.annotations = { [this.termAnnotation]: String(target.term) };
    this.counts.patches += 1;
    await this.call(this.ownPodOperation('patch'), () =>
      this.options.client.core.patchNamespacedPod({ name: this.podName, namespace: this.options.namespace, body: { metadata } }, mergePatchOptions()),
    );
    this.written = target;
    this.log.debug({ label: `${this.labelKey}=${value}`, term: target.term }, 'pod label written');
  }

  /** Demotes every other pod of the group still labelled leader by an older term. */
  private async demoteStaleLeaders(target: DesiredLabel): Promise<void> {
    const listOperation: ApiOperation = { verb: 'list', resource: 'pods', group: '', namespace: this.options.namespace };
    this.counts.lists += 1;
    const list = await this.call(listOperation, () =>
      this.options.client.core.listNamespacedPod({ namespace: this.options.namespace, labelSelector: `${this.options.groupSelector},${this.labelKey}=${this.leaderValue}` }),
    );
    const stale = list.items
      .filter((pod: Wire<V1Pod>) => pod.metadata?.name !== undefined && pod.metadata.name !== this.podName)
      .filter((pod: Wire<V1Pod>) => {
        const term = Number(pod.metadata?.annotations?.[this.termAnnotation] ?? '0');
        return !(term > target.term); // a newer leader's label is not ours to touch
      })
      .sort((a: Wire<V1Pod>, b: Wire<V1Pod>) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
    for (const pod of stale) {
      const name = pod.metadata?.name ?? '';
      // The view may have moved on while we listed: only a current leader demotes others.
      const desired = this.desired;
      if (this.stopped || desired === null || !desired.leader || desired.term !== target.term) return;
      const operation: ApiOperation = { verb: 'patch', resource: 'pods', group: '', namespace: this.options.namespace, name };
      this.counts.patches += 1;
      try {
        await this.call(operation, () =>
          this.options.client.core.patchNamespacedPod(
            {
              name,
              namespace: this.options.namespace,
              // The resourceVersion precondition: if the pod changed since the list (its own member relabelled it), 409 and relist.
              body: { metadata: { resourceVersion: pod.metadata?.resourceVersion, labels: { [this.labelKey]: this.followerValue } } },
            },
            mergePatchOptions(),
          ),
        );
      } catch (err) {
        const status = (err as { code?: unknown }).code;
        if (status === 404 || isKubeApiError(err, 'KUBE_NOT_FOUND')) continue; // gone: nothing to clean
        throw err;
      }
      this.log.info({ pod: name, label: `${this.labelKey}=${this.followerValue}`, term: target.term }, 'demoted a stale leader label');
    }
    this.cleanedTerm = target.term;
  }
}
