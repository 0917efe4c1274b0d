/**
 * Marks this member's own pod `raft-elector.io/member=true` once it applied a configuration
 * containing itself: from then on no other pod of the selector may bootstrap a second group
 * (k8s/bootstrap.ts, rule 2). Written once per incarnation; retried with capped backoff while
 * the API server is away, never blocking the member.
 */
import type { Logger } from 'pino';
import type { ConfState } from '../raft/index.js';
import { ApiFailureReporter, Backoff, type ApiOperation, type BackoffOptions } from './api-errors.js';
import type { KubeClient } from './kube-client.js';
import { mergePatchOptions } from './pod-label.js';
import { MEMBER_ANNOTATION } from './pod-watch.js';
import { InterruptibleSleep } from './sleeper.js';

export interface MemberAnnotationOptions {
  client: Pick<KubeClient, 'core'>;
  namespace: string;
  podName: string;
  selfId: string;
  onMembershipChange(listener: (cs: ConfState) => void): () => void;
  /** The configuration at start (a restarted member may already be in one). */
  confState(): ConfState;
  backoff?: BackoffOptions;
  logger: Logger;
}

export function containsSelf(cs: ConfState, selfId: string): boolean {
  return [cs.voters, cs.learners, cs.votersOutgoing, cs.learnersNext].some((ids) => ids.includes(selfId));
}

export class MemberAnnotation {
  private readonly log: Logger;
  private readonly backoff: Backoff;
  private readonly reporter: ApiFailureReporter;
  private readonly sleeper = new InterruptibleSleep();
  private unsubscribe: (() => void) | null = null;
  private worker: Promise<void> | null = null;
  private stopped = false;
  written = false;

  constructor(private readonly o: MemberAnnotationOptions) {
    this.log = o.logger.child({ component: 'member-annotation' });
    this.backoff = new Backoff(o.backoff ?? { initialMs: 200, maxMs: 30_000 });
    this.reporter = new ApiFailureReporter(this.log);
  }

  start(): void {
    if (this.unsubscribe || this.stopped) return;
    this.unsubscribe = this.o.onMembershipChange((cs) => this.observe(cs));
    this.observe(this.o.confState());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.sleeper.wake();
    await this.worker;
  }

  /** Resolves when the write (if one started) is done (tests). */
  async settled(): Promise<void> {
    await this.worker;
  }

  private observe(cs: ConfState): void {
    if (this.worker || this.stopped || !containsSelf(cs, this.o.selfId)) return;
    this.worker = this.write();
  }

  private async write(): Promise<void> {
    const operation: ApiOperation = { verb: 'patch', resource: 'pods', group: '', namespace: this.o.namespace, name: this.o.podName };
    while (!this.stopped) {
      try {
        await this.o.client.core.patchNamespacedPod(
          { name: this.o.podName, namespace: this.o.namespace, body: { metadata: { annotations: { [MEMBER_ANNOTATION]: 'true' } } } },
          mergePatchOptions(),
        );
        this.reporter.succeeded(operation);
        this.written = true;
        this.log.info({ annotation: MEMBER_ANNOTATION }, 'this pod is marked as a member of the group');
        return;
      } catch (err) {
        const delay = this.backoff.nextDelayMs();
        this.reporter.failed(err, operation, delay);
        await this.sleeper.sleep(delay);
      }
    }
  }
}
