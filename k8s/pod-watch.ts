/**
 * The pod watch: Kubernetes tells us the leader's pod is going away before
 * raft could notice, so the followers forget it and one of them campaigns at
 * once instead of waiting an election timeout.
 *
 * `PodWatch` lists and watches the group's pods itself rather than through
 * client-node's informer, because the informer stops after errors other than
 * 410 and must be restarted by its caller anyway: here one loop lists, watches
 * from the list's resourceVersion, resumes from the last resourceVersion seen
 * when the stream ends, relists on 410 Gone (an ERROR event carrying a 410
 * Status, or an HTTP 410), and reconnects with capped backoff after any other
 * failure. A relist compares the new list with the cache, so a pod deleted
 * while the watch was down still produces its signal.
 *
 * `ForgetLeaderOnPodExit` turns "the current leader's pod is going away" into
 * `member.forgetLeader()` on every follower and `member.campaign()` on exactly
 * one of them. A leader pod deleting gracefully gets a short grace first: that
 * leader sees its own deletion too and hands over (no lease wait), which a
 * follower that already forgot it would spoil.
 */
import type { Logger } from 'pino';
import type { LeadershipView, Member } from '../cluster/interfaces.js';
import { podNameOf, podUidOf } from '../cluster/member-id.js';
import { ApiFailureReporter, Backoff, type ApiOperation, type BackoffOptions } from './api-errors.js';
import type { KubeClient } from './kube-client.js';
import { InterruptibleSleep } from './sleeper.js';

export type PodExitReason = 'deleting' | 'deleted' | 'failed' | 'succeeded' | 'container-terminated';

export interface PodExitEvent {
  pod: string;
  uid: string;
  reason: PodExitReason;
}

/** The fields we read, as both the list (deserialized) and the watch (raw JSON) deliver them. */
interface PodShape {
  metadata?: {
    name?: string;
    uid?: string;
    resourceVersion?: string;
    deletionTimestamp?: unknown;
    creationTimestamp?: unknown;
    annotations?: Record<string, string>;
  };
  status?: {
    phase?: string;
    podIP?: string;
    conditions?: { type?: string; status?: string }[];
    containerStatuses?: ContainerStatusShape[];
    initContainerStatuses?: ContainerStatusShape[];
  };
}

/** The annotation a member sets on its own pod once it applied a configuration containing itself. */
export const MEMBER_ANNOTATION = 'raft-elector.io/member';

/** One pod of the group as the watch last saw it: what the reconciler, bootstrap and addresses read. */
export interface GroupPod {
  name: string;
  uid: string;
  phase: string | null;
  podIP: string | null;
  /** ms since the epoch; NaN when the API server sent none. */
  createdAtMs: number;
  exit: PodExitReason | null;
  /** The pod carries MEMBER_ANNOTATION: it already belongs to a group. */
  member: boolean;
  /**
   * The pod's Ready condition is True. With the sidecar's readinessProbe (/readyz) that says its
   * member is in the configuration and past its fresh-vote delay; but the probe is the user's, so
   * the reconciler does not judge a successor by it (docs/membership.md). Absent: not known.
   */
  ready?: boolean;
}

function timeMs(value: unknown): number {
  if (value instanceof Date) return value.getTime();
  if (typeof value === 'string') return Date.parse(value);
  return Number.NaN;
}

interface ContainerStatusShape {
  name?: string;
  state?: { terminated?: unknown; [other: string]: unknown };
}

export function podExitReason(pod: PodShape, containerName: string): Exclude<PodExitReason, 'deleted'> | null {
  if (pod.metadata?.deletionTimestamp !== undefined && pod.metadata.deletionTimestamp !== null) return 'deleting';
  if (pod.status?.phase === 'Failed') return 'failed';
  if (pod.status?.phase === 'Succeeded') return 'succeeded';
  // A native sidecar (an init container with restartPolicy Always) reports under initContainerStatuses.
  const statuses = [...(pod.status?.containerStatuses ?? []), ...(pod.status?.initContainerStatuses ?? [])];
  const container = statuses.find((status) => status.name === containerName);
  if (container?.state?.terminated !== undefined && container.state.terminated !== null) return 'container-terminated';
  return null;
}

type PodRecord = GroupPod;

export interface PodWatchOptions {
  client: KubeClient;
  namespace: string;
  /** The group's pods, e.g. `app.kubernetes.io/instance=shop-elector`. */
  groupSelector: string;
  /** The sidecar container whose termination means the member is gone. */
  containerName?: string;
  /** Asks the server to end each watch after this long (it resumes from the last resourceVersion). Default 300. */
  watchTimeoutSeconds?: number;
  /** A watch silent for this long (no event, no bookmark) is presumed dead and reopened. Default watchTimeoutSeconds + 30 s. */
  idleTimeoutMs?: number;
  backoff?: BackoffOptions;
  /** Bound on the pods kept; beyond it new names are ignored (logged). Default 1024. */
  maxPods?: number;
  logger: Logger;
}

type WatchOutcome = 'ended' | 'expired';

/** The group's view of one pod. */
export function groupPodOf(name: string, pod: PodShape, containerName: string): GroupPod {
  return {
    name,
    uid: pod.metadata?.uid ?? '',
    exit: podExitReason(pod, containerName),
    phase: pod.status?.phase ?? null,
    podIP: pod.status?.podIP || null,
    createdAtMs: timeMs(pod.metadata?.creationTimestamp),
    member: pod.metadata?.annotations?.[MEMBER_ANNOTATION] !== undefined,
    ready: pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
  };
}

/** A fresh list from the API server (not the watch cache): the bootstrap rule needs one. */
export async function listGroupPods(
  client: Pick<KubeClient, 'core'>,
  namespace: string,
  groupSelector: string,
  containerName: string,
): Promise<GroupPod[]> {
  const list = await client.core.listNamespacedPod({ namespace, labelSelector: groupSelector });
  const out: GroupPod[] = [];
  for (const pod of list.items) {
    const name = pod.metadata?.name;
    if (name) out.push(groupPodOf(name, pod as PodShape, containerName));
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export class PodWatch {
  private readonly containerName: string;
  private readonly watchTimeoutSeconds: number;
  private readonly idleTimeoutMs: number;
  private readonly backoff: Backoff;
  private readonly reporter: ApiFailureReporter;
  private readonly log: Logger;
  private readonly pods = new Map<string, PodRecord>();
  /** `name/uid` of pods whose exit was already signalled: each pod incarnation signals once. */
  private readonly signalled = new Set<string>();
  private readonly listeners = new Set<(event: PodExitEvent) => void>();
  private readonly changeListeners = new Set<() => void>();
  private readonly maxPods: number;
  /** The last list or watch failed and nothing succeeded since: the cache may be stale. */
  private failing = false;
  private resourceVersion: string | null = null;
  private stopped = true;
  private loopDone: Promise<void> | null = null;
  private abortCurrent: (() => void) | null = null;
  private readonly sleeper = new InterruptibleSleep();
  private hasSynced = false;

  readonly counts = { lists: 0, watches: 0, relists: 0, expired: 0, failures: 0 };

  constructor(private readonly options: PodWatchOptions) {
    this.containerName = options.containerName ?? 'raft-elector';
    this.watchTimeoutSeconds = options.watchTimeoutSeconds ?? 300;
    this.idleTimeoutMs = options.idleTimeoutMs ?? (this.watchTimeoutSeconds + 30) * 1000;
    if (options.groupSelector.trim() === '') throw new Error('PodWatch needs a groupSelector that selects the group\'s pods');
    if (!(this.watchTimeoutSeconds > 0) || !(this.idleTimeoutMs > 0)) throw new Error('PodWatch timeouts must be > 0');
    this.backoff = new Backoff(options.backoff ?? { initialMs: 200, maxMs: 30_000 });
    this.maxPods = options.maxPods ?? 1024;
    this.log = options.logger.child({ component: 'pod-watch' });
    this.reporter = new ApiFailureReporter(this.log);
  }

  onPodExit(listener: (event: PodExitEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Called after any change of the group's pods (list or watch event); cheap, no arguments. */
  onPodsChange(listener: () => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /** Synced, and no list or watch failed since the last success: membership may act on it. */
  get healthy(): boolean {
    return this.hasSynced && !this.failing && !this.stopped;
  }

  /** The group's pods, sorted by name. */
  snapshot(): GroupPod[] {
    return [...this.pods.values()].map((p) => ({ ...p })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** True once the first list arrived. */
  get synced(): boolean {
    return this.hasSynced;
  }

  /** Whether the pod is in the watched set and not going away. */
  isRunning(pod: string): boolean {
    const record = this.pods.get(pod);
    return record !== undefined && record.exit === null;
  }

  /** The resourceVersion the next watch resumes from (null: the next step is a list). */
  get lastResourceVersion(): string | null {
    return this.resourceVersion;
  }

  exitReason(pod: string): PodExitReason | null {
    return this.pods.get(pod)?.exit ?? null;
  }

  uidOf(pod: string): string | null {
    return this.pods.get(pod)?.uid ?? null;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loopDone = this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abortCurrent?.();
    this.sleeper.wake();
    await this.loopDone;
  }

  private operation(verb: 'list' | 'watch'): ApiOperation {
    return { verb, resource: 'pods', group: '', namespace: this.options.namespace };
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      let verb: 'list' | 'watch' = 'list';
      try {
        if (this.resourceVersion === null) {
          await this.list();
          this.failing = false;
          this.reporter.succeeded(this.operation('list'));
          this.changed();
        }
        verb = 'watch';
        const startedAt = Date.now();
        const outcome = await this.watchOnce();
        if (outcome === 'expired') {
          this.counts.expired += 1;
          this.resourceVersion = null; // too old to resume: relist, and the relist diff delivers what we missed
          this.log.info({ namespace: this.options.namespace }, 'pod watch resourceVersion expired (410 Gone); relisting');
          continue;
        }
        // A normal end (timeoutSeconds, a proxy closing idle streams): resume at once, unless streams keep dying young.
        if (Date.now() - startedAt < 1000) await this.sleep(this.backoff.nextDelayMs());
        else this.backoff.reset();
      } catch (err) {
        if (this.stopped) break;
        this.counts.failures += 1;
        this.failing = true;
        const status = (err as { statusCode?: unknown; code?: unknown }).statusCode ?? (err as { code?: unknown }).code;
        if (status === 410) {
          this.resourceVersion = null;
          continue;
        }
        const delay = this.backoff.nextDelayMs();
        this.reporter.failed(err, this.operation(verb), delay);
        await this.sleep(delay);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return this.sleeper.sleep(ms);
  }

  private async list(): Promise<void> {
    this.counts.lists += 1;
    if (this.hasSynced) this.counts.relists += 1;
    const list = await this.options.client.core.listNamespacedPod({ namespace: this.options.namespace, labelSelector: this.options.groupSelector });
    const seen = new Set<string>();
    for (const pod of list.items) {
      const name = pod.metadata?.name;
      if (!name) continue;
      seen.add(name);
      this.upsert(name, pod as PodShape);
    }
    for (const [name, record] of [...this.pods]) {
      if (!seen.has(name)) {
        this.pods.delete(name);
        this.signal(name, record.uid, 'deleted'); // deleted while we were not watching
      }
    }
    this.resourceVersion = list.metadata?.resourceVersion ?? null;
    if (this.resourceVersion === null) throw new Error('the pod list carried no resourceVersion');
    this.hasSynced = true;
  }

  private changed(): void {
    for (const listener of [...this.changeListeners]) {
      try {
        listener();
      } catch (err) {
        this.log.error({ err }, 'pod change listener failed');
      }
    }
  }

  private upsert(name: string, pod: PodShape): void {
    const uid = pod.metadata?.uid ?? '';
    const previous = this.pods.get(name);
    if (!previous && this.pods.size >= this.maxPods) {
      this.log.warn({ pod: name, maxPods: this.maxPods }, 'ignoring a pod: the group already has maxPods pods');
      return;
    }
    const exit = podExitReason(pod, this.containerName);
    // Record the new incarnation first: listeners asked about the old one must see the new uid.
    this.pods.set(name, groupPodOf(name, pod, this.containerName));
    if (previous && previous.uid !== uid) this.signal(name, previous.uid, 'deleted'); // replaced by a new pod of the same name
    if (exit !== null) this.signal(name, uid, exit);
  }

  private signal(pod: string, uid: string, reason: PodExitReason): void {
    // Per reason: a sidecar that restarted in place (container-terminated) may later be deleted too.
    const key = `${pod}/${uid}/${reason}`;
    if (this.signalled.has(key)) return;
    this.signalled.add(key);
    // Bounded: a StatefulSet's pods come and go; older incarnations are never seen again.
    if (this.signalled.size > 1024) {
      const oldest = this.signalled.values().next().value;
      if (oldest !== undefined) this.signalled.delete(oldest);
    }
    this.log.debug({ pod, uid, reason }, 'pod going away');
    for (const listener of [...this.listeners]) {
      try {
        listener({ pod, uid, reason });
      } catch (err) {
        this.log.error({ err, pod }, 'pod exit listener failed');
      }
    }
  }

  /** One watch stream; resolves when it ends, rejects on a failure. */
  private watchOnce(): Promise<WatchOutcome> {
    this.counts.watches += 1;
    return new Promise<WatchOutcome>((resolve, reject) => {
      let settled = false;
      let expired = false;
      let idleTimer: NodeJS.Timeout | undefined;
      let controller: AbortController | null = null;
      const finish = (err: unknown): void => {
        if (settled) return;
        settled = true;
        clearTimeout(idleTimer);
        this.abortCurrent = null;
        controller?.abort();
        if (expired) resolve('expired');
        else if (err && !this.stopped) reject(err);
        else resolve('ended');
      };
      const armIdle = (): void => {
        clearTimeout(idleTimer);
        idleTimer = setTimeout(() => finish(Object.assign(new Error(`no watch event for ${this.idleTimeoutMs} ms`), { code: 'ETIMEDOUT' })), this.idleTimeoutMs);
      };
      this.abortCurrent = () => finish(null);
      armIdle();
      const path = `/api/v1/namespaces/${encodeURIComponent(this.options.namespace)}/pods`;
      const query = {
        labelSelector: this.options.groupSelector,
        resourceVersion: this.resourceVersion ?? undefined,
        allowWatchBookmarks: true,
        timeoutSeconds: this.watchTimeoutSeconds,
      };
      const onEvent = (type: string, object: unknown): void => {
        if (settled) return;
        armIdle();
        const pod = object as PodShape & { code?: unknown; message?: unknown };
        switch (type) {
          case 'ADDED':
          case 'MODIFIED':
            if (pod.metadata?.name) this.upsert(pod.metadata.name, pod);
            break;
          case 'DELETED': {
            const name = pod.metadata?.name;
            if (name) {
              this.pods.delete(name);
              this.signal(name, pod.metadata?.uid ?? '', 'deleted');
            }
            break;
          }
          case 'BOOKMARK':
            break;
          case 'ERROR':
            if (pod.code === 410) {
              expired = true;
              finish(null);
            } else {
              finish(Object.assign(new Error(`watch ERROR event: ${String(pod.message)}`), { code: typeof pod.code === 'number' ? pod.code : undefined, body: pod }));
            }
            return;
          default:
            return;
        }
        if (pod.metadata?.resourceVersion) this.resourceVersion = pod.metadata.resourceVersion;
        if (type !== 'BOOKMARK') this.changed();
      };
      this.options.client.watch
        .watch(path, query, onEvent, (err: unknown) => finish(err))
        .then((abort) => {
          controller = abort;
          if (settled) abort.abort();
          else {
            this.failing = false;
            this.reporter.succeeded(this.operation('watch'));
          }
        })
        .catch((err: unknown) => finish(err));
    });
  }
}

export interface ForgetLeaderOnPodExitOptions {
  member: Pick<Member, 'id' | 'view' | 'onChange' | 'forgetLeader' | 'campaign'>;
  podWatch: Pick<PodWatch, 'onPodExit' | 'exitReason' | 'isRunning' | 'uidOf'>;
  /**
   * The voters: a fixed list (pod names), or the configuration in force (incarnation ids
   * `<pod>@<uid>`, matched to pods by name and UID).
   */
  voters: readonly string[] | (() => readonly string[]);
  /**
   * The chosen follower campaigns this long after forgetting, so that the
   * other followers' watches have delivered the same event and they grant the
   * pre-vote (a follower that still remembers the leader refuses it). Default 25.
   */
  campaignDelayMs?: number;
  /**
   * A leader pod deleting gracefully hands over by itself (its own watch sees the deletion, and
   * the kubelet's SIGTERM follows): wait this long before forgetting it, since a follower that
   * forgot the leader ignores its MsgTimeoutNow and grants lease-skipping votes. A pod that is
   * gone, failed or whose sidecar terminated is forgotten at once; so is a leader whose link
   * closes (the member's own rule). Default 1000 (cmd: one election timeout, the bound of the
   * leader's own transfer).
   */
  handoverGraceMs?: number;
  logger: Logger;
}

/**
 * The one follower that campaigns after the leader's pod goes away: the
 * lowest id (in sorted order) among the voters other than the leader whose
 * pods are running and not going away. Every follower computes it from the
 * same voter list and the same API server state, so they agree without
 * talking. It need not be the most up-to-date member: raft's vote refuses a
 * candidate whose log is behind, and then the ordinary election timeout
 * elects another member, so safety never depends on this choice, only speed.
 */
export function chooseCampaigner(voters: readonly string[], leader: string, eligible: (id: string) => boolean): string | null {
  return [...voters].sort().find((id) => id !== leader && eligible(id)) ?? null;
}

export class ForgetLeaderOnPodExit {
  private readonly log: Logger;
  private readonly campaignDelayMs: number;
  private readonly handoverGraceMs: number;
  /** `uid:term` pairs already acted on, so one exit makes one forget (bounded). */
  private readonly handled: string[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  /** `uid:term` → the grace timer of a leader pod deleting gracefully (at most one per leadership). */
  private readonly graces = new Map<string, NodeJS.Timeout>();
  private unsubscribers: Array<() => void> = [];

  constructor(private readonly options: ForgetLeaderOnPodExitOptions) {
    this.campaignDelayMs = options.campaignDelayMs ?? 25;
    this.handoverGraceMs = options.handoverGraceMs ?? 1000;
    if (!(this.campaignDelayMs >= 0)) throw new Error(`campaignDelayMs must be >= 0, got ${this.campaignDelayMs}`);
    if (!(this.handoverGraceMs >= 0)) throw new Error(`handoverGraceMs must be >= 0, got ${this.handoverGraceMs}`);
    if (typeof options.voters !== 'function' && !options.voters.includes(options.member.id)) {
      throw new Error(`member ${options.member.id} is not one of the voters ${options.voters.join(', ')}`);
    }
    this.log = options.logger.child({ component: 'forget-leader' });
  }

  start(): void {
    if (this.unsubscribers.length > 0) return;
    this.unsubscribers.push(this.options.podWatch.onPodExit((event) => this.onPodExit(event)));
    // A leader learned after its pod already started going away counts too; deferred out of the raft loop's listener call.
    this.unsubscribers.push(
      this.options.member.onChange((view) => {
        if (view.leader === null || view.leader === this.options.member.id) return;
        const pod = podNameOf(view.leader);
        if (this.options.podWatch.exitReason(pod) !== null) {
          setImmediate(() => this.react(pod, this.options.podWatch.exitReason(pod) ?? 'deleting', this.options.podWatch.uidOf(pod) ?? ''));
        }
      }),
    );
  }

  stop(): void {
    for (const unsubscribe of this.unsubscribers) unsubscribe();
    this.unsubscribers = [];
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const timer of this.graces.values()) clearTimeout(timer);
    this.graces.clear();
  }

  private onPodExit(event: PodExitEvent): void {
    this.react(event.pod, event.reason, event.uid);
  }

  private react(pod: string, reason: PodExitReason, uid: string): void {
    const view: LeadershipView = this.options.member.view();
    if (view.leader === null || podNameOf(view.leader) !== pod) return; // not the leader we follow
    if (view.leader === this.options.member.id) return; // the leader transfers leadership itself on SIGTERM
    const leaderUid = podUidOf(view.leader);
    if (leaderUid !== null && uid !== '' && leaderUid !== uid) return; // another incarnation of that pod
    // An older incarnation of a pod that was since recreated under the same name: the running one
    // may well be the leader we hear from; if it is not, the election timeout replaces it.
    const current = this.options.podWatch.uidOf(pod);
    if (uid !== '' && current !== undefined && current !== null && current !== uid) return;
    const key = `${uid}:${view.term}`;
    if (this.handled.includes(key)) return;
    if (reason === 'deleting' && this.handoverGraceMs > 0) {
      if (this.graces.has(key)) return;
      this.log.info({ leader: pod, reason, term: view.term, graceMs: this.handoverGraceMs }, `leader pod ${pod} is deleting; waiting up to ${this.handoverGraceMs} ms for it to hand over`);
      const leader = view.leader;
      const term = view.term;
      const timer = setTimeout(() => {
        this.graces.delete(key);
        const now = this.options.member.view();
        // Handed over (or lost otherwise): the new leadership is not the one whose pod is deleting.
        if (now.leader !== leader || now.term !== term) {
          this.log.debug({ leader: pod, term, now: now.leader, nowTerm: now.term }, 'the deleting leader is no longer the leader: nothing to forget');
          return;
        }
        this.forget(pod, reason, uid, key);
      }, this.handoverGraceMs);
      this.graces.set(key, timer);
      return;
    }
    this.forget(pod, reason, uid, key);
  }

  private forget(pod: string, reason: PodExitReason, uid: string, key: string): void {
    const grace = this.graces.get(key);
    if (grace !== undefined) clearTimeout(grace); // the pod went further (gone, failed): no more waiting
    this.graces.delete(key);
    const view: LeadershipView = this.options.member.view();
    if (view.leader === null) return;
    this.handled.push(key);
    if (this.handled.length > 64) this.handled.shift();

    this.options.member.forgetLeader();
    const voters = typeof this.options.voters === 'function' ? this.options.voters() : this.options.voters;
    const running = (id: string): boolean => {
      const uidOf = podUidOf(id);
      return this.options.podWatch.isRunning(podNameOf(id)) && (uidOf === null || this.options.podWatch.uidOf(podNameOf(id)) === uidOf);
    };
    const campaigner = chooseCampaigner(voters, view.leader, running);
    const self = campaigner === this.options.member.id;
    this.log.info({ leader: pod, reason, term: view.term, campaigner, campaigning: self }, `leader pod ${pod} is going away (${reason}); forgot the leader${self ? ' and campaigning' : campaigner ? `; ${campaigner} campaigns` : '; no running follower to campaign'}`);
    if (!self) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      const now = this.options.member.view();
      // Someone else already won (or the old leader transferred): do not disturb the new term.
      if (now.leader !== null && now.leader !== pod) return;
      this.options.member.campaign();
    }, this.campaignDelayMs);
    this.timers.add(timer);
  }
}
