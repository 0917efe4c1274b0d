/**
 * Bootstrap exactly once per group. A member with no state forms a one-voter group only if
 *  1. it is the oldest pod of the selector (creationTimestamp, then name) in a list taken after
 *     every pod created in the same second as itself is listed (creationTimestamp has one-second
 *     resolution: a list taken earlier may miss a same-second pod that sorts first by name);
 *  2. no pod of the selector carries MEMBER_ANNOTATION (a member sets it on its own pod once it
 *     applied a configuration containing itself): a group exists;
 *  3. no reachable peer reported a term > 0 or a leader (handshake or messages).
 * Otherwise it waits as a joiner, and the leader's reconciler adds it. No API server: no
 * bootstrap. A pod whose sidecar container restarts in place still counts (it keeps its state
 * and may lead a group already); only a pod deleting or gone stops counting.
 */
import type { Logger } from 'pino';
import type { GroupPod } from './pod-watch.js';

export type BootstrapDecision =
  | { bootstrap: true; reason: 'oldest_pod' }
  | { bootstrap: false; reason: 'api_unreachable' | 'not_listed' | 'not_oldest' | 'group_exists' | 'peer_in_group' | 'too_early' };

export interface BootstrapInput {
  selfName: string;
  /** The group's pods from the API server, or null when it could not be reached. */
  pods: readonly GroupPod[] | null;
  /** A reachable peer reported a term > 0 or a leader. */
  peerInGroup: boolean;
  /** Local time at which the list was requested (the list is no older), and how much the node clock may differ from the API server's. */
  nowMs: number;
  maxClockSkewMs: number;
}

/** Pods that still count: a deleting or gone pod will never serve a group again. */
function counts(pod: GroupPod): boolean {
  return pod.exit === null || pod.exit === 'container-terminated';
}

function compareAge(a: GroupPod, b: GroupPod): number {
  const ta = Number.isFinite(a.createdAtMs) ? Math.floor(a.createdAtMs / 1000) : Infinity;
  const tb = Number.isFinite(b.createdAtMs) ? Math.floor(b.createdAtMs / 1000) : Infinity;
  if (ta !== tb) return ta < tb ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** The pure rule; every pod computes it alike. */
export function bootstrapDecision(input: BootstrapInput): BootstrapDecision {
  if (input.pods === null) return { bootstrap: false, reason: 'api_unreachable' };
  if (input.peerInGroup) return { bootstrap: false, reason: 'peer_in_group' };
  if (input.pods.some((p) => p.member)) return { bootstrap: false, reason: 'group_exists' };
  const self = input.pods.find((p) => p.name === input.selfName);
  if (!self || !Number.isFinite(self.createdAtMs)) return { bootstrap: false, reason: 'not_listed' };
  // Every pod of our creation second exists once that second is over on the API server's clock.
  const secondEndsMs = (Math.floor(self.createdAtMs / 1000) + 1) * 1000;
  if (input.nowMs < secondEndsMs + input.maxClockSkewMs) return { bootstrap: false, reason: 'too_early' };
  const oldest = input.pods.filter(counts).sort(compareAge)[0];
  if (oldest?.name !== input.selfName) return { bootstrap: false, reason: 'not_oldest' };
  return { bootstrap: true, reason: 'oldest_pod' };
}

export interface BootstrapGateOptions {
  selfName: string;
  /** A fresh list from the API server (not a watch cache); rejects when unreachable. */
  listPods(): Promise<GroupPod[]>;
  peerInGroup(): boolean;
  maxClockSkewMs?: number;
  nowMs?: () => number;
  sleep?: (ms: number) => Promise<void>;
  logger: Logger;
}

/**
 * The thin driver: lists, and when the rule says "too early" waits until the creation second
 * is over and lists again; any other answer is final. Run once, by a member with no state.
 */
export async function decideBootstrap(o: BootstrapGateOptions): Promise<BootstrapDecision> {
  const nowMs = o.nowMs ?? Date.now;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const maxClockSkewMs = o.maxClockSkewMs ?? 2000;
  const log = o.logger.child({ component: 'bootstrap' });
  for (;;) {
    let pods: GroupPod[] | null;
    // The list shows the pods as they were when the API server read them, no earlier than the
    // request left: only that instant proves the creation second was over (a list that took
    // 300 ms could otherwise miss a same-second pod that sorts first, and two pods bootstrap).
    const listedNoEarlierThanMs = nowMs();
    try {
      pods = await o.listPods();
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'cannot list the group\'s pods: no bootstrap without the API server; waiting as a joiner');
      return { bootstrap: false, reason: 'api_unreachable' };
    }
    const decision = bootstrapDecision({ selfName: o.selfName, pods, peerInGroup: o.peerInGroup(), nowMs: listedNoEarlierThanMs, maxClockSkewMs });
    if (decision.reason !== 'too_early') {
      if (decision.bootstrap) log.info({ pods: pods.length }, 'oldest pod of the group and no group exists: bootstrapping a one-voter group');
      else log.info({ reason: decision.reason }, 'not bootstrapping: waiting as a joiner for the leader to add this member');
      return decision;
    }
    const self = pods.find((p) => p.name === o.selfName)!;
    const waitMs = (Math.floor(self.createdAtMs / 1000) + 1) * 1000 + maxClockSkewMs - nowMs();
    await sleep(Math.max(1, waitMs));
  }
}
