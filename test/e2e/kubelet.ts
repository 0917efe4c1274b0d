/**
 * A fake kubelet for one fake Node: it binds the group's pending pods to the node (no
 * scheduler runs), reports their loopback pod IP by ordinal (127.0.0.11, .12, ...) while
 * Pending, asks the harness to start the pod's sidecar process, then reports them Running
 * (as a kubelet: after the containers started), and on deletion does
 * what a kubelet does: SIGTERM, SIGKILL after the grace period, then removes the pod
 * object (grace 0, uid precondition) so the StatefulSet controller can recreate it.
 */
import type { KubeRest, Pod } from './rest.js';

export const NodeName = 'e2e-node';

export function podIpFor(name: string): string {
  const ordinal = Number(/-(\d+)$/.exec(name)?.[1]);
  if (!Number.isInteger(ordinal) || ordinal > 200) throw new Error(`pod ${name} has no StatefulSet ordinal`);
  return `127.0.0.${11 + ordinal}`;
}

/** Pod IPs for pods without an ordinal (a Deployment's): 127.0.0.100 and up, never reused in a run. */
let nextPoolIp = 100;
export function poolIp(): string {
  if (nextPoolIp > 254) throw new Error('the e2e pod IP pool (127.0.0.100-254) is used up');
  return `127.0.0.${nextPoolIp++}`;
}

export interface PodRuntime {
  /** Start the pod's containers; the pod is already reported Pending with `ip`, and Running after this resolves. */
  start(pod: Pod, ip: string): Promise<void>;
  /** Stop them: SIGTERM, SIGKILL after `graceMs`; resolves once they exited. */
  stop(pod: Pod, graceMs: number): Promise<void>;
  /** The readiness probe; absent: Ready as soon as started. */
  ready?(pod: Pod): Promise<boolean>;
}

export async function registerNode(api: KubeRest): Promise<void> {
  await api.json('POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: NodeName, labels: { 'kubernetes.io/hostname': NodeName } } });
  const now = new Date().toISOString();
  await api.mergePatch(`/api/v1/nodes/${NodeName}/status`, {
    status: {
      conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'fake kubelet', lastHeartbeatTime: now, lastTransitionTime: now }],
      addresses: [{ type: 'InternalIP', address: '127.0.0.1' }],
      capacity: { cpu: '2', memory: '8Gi', pods: '110' },
      allocatable: { cpu: '2', memory: '8Gi', pods: '110' },
    },
  });
}

export class FakeKubelet {
  /** uid → what the kubelet is doing with that pod. */
  private readonly pods = new Map<string, 'starting' | 'running' | 'stopping' | 'gone'>();
  private stopped = false;
  private loop: Promise<void> | undefined;
  private readonly pending = new Set<Promise<void>>();
  /** Errors the loop met (API server restarts are expected to cause some). */
  readonly errors: string[] = [];
  /** What it did, for a failing test's message. */
  readonly actions: string[] = [];

  private note(what: string): void {
    this.actions.push(`${new Date().toISOString().slice(11, 23)} ${what}`);
    if (this.actions.length > 200) this.actions.shift();
  }

  constructor(
    private readonly api: KubeRest,
    private readonly namespace: string,
    private readonly selector: string,
    private readonly runtime: PodRuntime,
    private readonly ips: 'ordinal' | 'pool' = 'ordinal',
  ) {}

  start(): void {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.sync();
      } catch (error) {
        this.errors.push(String(error));
        if (this.errors.length > 200) this.errors.shift();
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  private track(work: Promise<void>): void {
    const p = work.catch((error: unknown) => void this.errors.push(String(error))).finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  private async sync(): Promise<void> {
    const list = await this.api.json<{ items: Pod[] }>('GET', `/api/v1/namespaces/${this.namespace}/pods?labelSelector=${encodeURIComponent(this.selector)}`);
    for (const pod of list.items) {
      const { uid, name } = pod.metadata;
      const state = this.pods.get(uid);
      const base = `/api/v1/namespaces/${this.namespace}/pods/${name}`;
      if (pod.metadata.deletionTimestamp) {
        if (state === 'stopping' || state === 'gone' || state === 'starting') continue;
        this.pods.set(uid, 'stopping');
        this.note(`${name} ${uid.slice(0, 8)} deleting (was ${state ?? 'unknown'})`);
        const graceMs = (pod.metadata.deletionGracePeriodSeconds ?? 30) * 1000;
        this.track(
          (state === 'running' ? this.runtime.stop(pod, graceMs) : Promise.resolve()).then(async () => {
            await this.api.json('DELETE', base, { kind: 'DeleteOptions', apiVersion: 'v1', gracePeriodSeconds: 0, preconditions: { uid } });
            this.pods.set(uid, 'gone');
            this.note(`${name} ${uid.slice(0, 8)} removed`);
          }),
        );
        continue;
      }
      if (state !== undefined) continue;
      if (!pod.spec.nodeName) {
        await this.api.json('POST', `${base}/binding`, { apiVersion: 'v1', kind: 'Binding', metadata: { name, uid }, target: { apiVersion: 'v1', kind: 'Node', name: NodeName } });
      } else if (pod.spec.nodeName !== NodeName) {
        continue;
      }
      this.pods.set(uid, 'starting');
      this.note(`${name} ${uid.slice(0, 8)} starting`);
      const ip = this.ips === 'pool' ? poolIp() : podIpFor(name);
      this.track(
        (async () => {
          const now = new Date().toISOString();
          const gated = this.runtime.ready !== undefined;
          // As a kubelet: the sandbox's IP is reported while the pod is still Pending, and Running
          // only once its containers were created and started (the phase's definition).
          await this.api.mergePatch(`${base}/status`, {
            status: {
              phase: 'Pending',
              hostIP: '127.0.0.1',
              hostIPs: [{ ip: '127.0.0.1' }],
              podIP: ip,
              podIPs: [{ ip }],
              startTime: now,
              conditions: [
                { type: 'PodScheduled', status: 'True', lastTransitionTime: now },
                { type: 'Initialized', status: 'True', lastTransitionTime: now },
                { type: 'ContainersReady', status: 'False', lastTransitionTime: now },
                { type: 'Ready', status: 'False', lastTransitionTime: now },
              ],
            },
          });
          await this.runtime.start(pod, ip);
          if (this.pods.get(uid) !== 'starting') return;
          const started = new Date().toISOString();
          const ready = (type: string) => ({ type, status: gated && (type === 'Ready' || type === 'ContainersReady') ? 'False' : 'True', lastTransitionTime: started });
          await this.api.mergePatch(`${base}/status`, { status: { phase: 'Running', conditions: ['PodScheduled', 'Initialized', 'ContainersReady', 'Ready'].map(ready) } });
          if (this.pods.get(uid) === 'starting') this.pods.set(uid, 'running');
          this.note(`${name} ${uid.slice(0, 8)} running`);
          // As the kubelet's readinessProbe: a rollout waits for Ready (probed every 500 ms here, once Ready it stays).
          while (gated && !this.stopped && this.pods.get(uid) === 'running') {
            if (await this.runtime.ready!(pod).catch(() => false)) {
              const at = new Date().toISOString();
              await this.api.mergePatch(`${base}/status`, {
                status: { conditions: ['PodScheduled', 'Initialized', 'ContainersReady', 'Ready'].map((type) => ({ type, status: 'True', lastTransitionTime: at })) },
              });
              this.note(`${name} ${uid.slice(0, 8)} ready`);
              break;
            }
            await new Promise((r) => setTimeout(r, 500));
          }
        })(),
      );
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    await Promise.all([...this.pending]);
  }
}
