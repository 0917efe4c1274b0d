/**
 * The membership parts of an in-cluster member (issue 11): the pod watch feeds incarnation
 * addresses to the transport, the member marks its own pod once it is in a configuration, and
 * the reconciler runs (acting only while this member leads). Started for every in-cluster member.
 */
import type { Logger } from 'pino';
import type { PeerInfo } from '../cluster/interfaces.js';
import type { KubeClient } from '../k8s/kube-client.js';
import { MemberAnnotation } from '../k8s/member-annotation.js';
import { PodAddresses, type AddressSink } from '../k8s/pod-addresses.js';
import type { GroupPod, PodWatch } from '../k8s/pod-watch.js';
import { MembershipReconciler, type MembershipEventSink, type MembershipMember } from '../k8s/reconciler.js';

export function isMembershipMember(member: unknown): member is MembershipMember {
  const m = member as Partial<MembershipMember> | null;
  return typeof m?.membership === 'function' && typeof m.proposeConfChange === 'function' && typeof m.onMembershipChange === 'function';
}

export interface MembershipPartsOptions {
  member: MembershipMember;
  podWatch: PodWatch;
  transport: () => AddressSink & { peers(): PeerInfo[] };
  client: Pick<KubeClient, 'core'>;
  namespace: string;
  podName: string;
  peerPort: number;
  maxVoters: number;
  tickMs: number;
  electionTicks: number;
  events: MembershipEventSink;
  /** Subscribes to authenticated links coming up (a new pod's link makes it ready to add); returns the unsubscribe. */
  onPeerLinked?: (listener: (peerId: string) => void) => () => void;
  /** The pods the bootstrap decision listed: dialled before the pod watch's first list (PodAddresses' seed). */
  seedPods?: readonly GroupPod[];
  logger: Logger;
}

export interface MembershipParts {
  start(): void;
  /** On SIGTERM, before the member's shutdown: a leader hands over to the newest caught-up voter. */
  handOver(deadlineMs: number): Promise<void>;
  stop(): Promise<void>;
}

export function createMembershipParts(o: MembershipPartsOptions): MembershipParts {
  let addresses: PodAddresses | undefined;
  let reconciler: MembershipReconciler | undefined;
  let unsubscribeLinked: (() => void) | undefined;
  let roundQueued = false;
  let stopped = false;
  const annotation = new MemberAnnotation({
    client: o.client,
    namespace: o.namespace,
    podName: o.podName,
    selfId: o.member.id,
    confState: () => o.member.membership().confState,
    onMembershipChange: (l) => o.member.onMembershipChange(l),
    logger: o.logger,
  });
  return {
    start() {
      const transport = o.transport();
      addresses = new PodAddresses({ selfId: o.member.id, pods: o.podWatch, transport, peerPort: o.peerPort, ...(o.seedPods ? { seed: o.seedPods } : {}), logger: o.logger });
      reconciler = new MembershipReconciler({
        member: o.member,
        pods: o.podWatch,
        isConnected: (id) => transport.peers().some((p) => p.id === id && p.connected),
        freshVoteDelayEndsInMs: (id) => transport.peers().find((p) => p.id === id)?.freshVoteDelayEndsInMs,
        // Its ticks may run late: the delay is counted in them.
        freshVoteMarginMs: o.tickMs * 2,
        newerSuccessorWaitMaxMs: o.tickMs * 4,
        maxVoters: o.maxVoters,
        // Every tick: a link coming up and a learner catching up raise no event, and each would
        // otherwise wait for the next round on the way to voter (ten ticks, before).
        periodMs: o.tickMs,
        confSettleMs: o.tickMs * 2,
        // For a member that announces no delay: it refuses to campaign for 2 election timeouts after it starts (ticks run late under load).
        successorMinAgeMs: (2 * o.electionTicks + 5) * o.tickMs,
        events: o.events,
        logger: o.logger,
      });
      addresses.start();
      annotation.start();
      reconciler.start();
      // A link up raises no pod event: without this the new pod waited for the next tick's round.
      unsubscribeLinked = o.onPeerLinked?.(() => {
        if (roundQueued) return;
        roundQueued = true;
        setImmediate(() => {
          roundQueued = false;
          if (!stopped) reconciler?.round();
        });
      });
    },
    async handOver(deadlineMs) {
      await reconciler?.handOver(deadlineMs);
    },
    async stop() {
      stopped = true;
      unsubscribeLinked?.();
      reconciler?.stop();
      addresses?.stop();
      await annotation.stop();
    },
  };
}
