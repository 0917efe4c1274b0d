/**
 * The Kubernetes parts of a member, loaded only in in-cluster mode (the client library
 * costs memory a loopback member should not pay): the pod watch feeds peer addresses and the
 * reconciler, the pod label, Events and the Lease mirror follow the leadership view, and the
 * pod watch forgets a leader whose pod is going away.
 */
import type { Logger } from 'pino';
import type { PeerTransport } from '../cluster/interfaces.js';
import type { RaftMember } from '../cluster/member.js';
import { createDnsResolver, realDnsTimers } from '../k8s/dns.js';
import { DnsAddresses } from '../k8s/dns-addresses.js';
import { decideBootstrap, type BootstrapDecision } from '../k8s/bootstrap.js';
import { LeadershipEvents } from '../k8s/events.js';
import { LeaseMirror } from '../k8s/lease-mirror.js';
import { waitUntilRemoved, type LeaveOutcome } from '../k8s/leave-wait.js';
import { createKubeClient, loadInClusterConfig, type KubeClient } from '../k8s/kube-client.js';
import { PodLabeler } from '../k8s/pod-label.js';
import { ForgetLeaderOnPodExit, listGroupPods, PodWatch, type GroupPod } from '../k8s/pod-watch.js';
import { resolveInClusterIdentity, type InClusterIdentity } from '../k8s/voters.js';
import type { ElectorConfig, KubernetesConfig } from './config.js';
import { createMembershipParts } from './in-cluster-membership.js';

/** DNS is the fallback source: asked rarely, so an idle member stays idle. */
const DnsIntervalMs = 10_000;
const DnsReidentifyMs = 300_000;
/** SIGTERM: how long a fresh read of the own pod may take before the member leaves without waiting. */
const OwnPodReadTimeoutMs = 1_000;

function formatHostPort(h: { host: string; port: number }): string {
  return h.host.includes(':') ? `[${h.host}]:${h.port}` : `${h.host}:${h.port}`;
}

export function inClusterIdentity(k: KubernetesConfig): InClusterIdentity {
  return resolveInClusterIdentity({ podName: k.podName, podUid: k.podUid, namespace: k.namespace });
}

export function createKube(k: KubernetesConfig): KubeClient {
  return createKubeClient(loadInClusterConfig({ tokenFile: k.tokenFile, caFile: k.caFile }));
}

/**
 * Run once by a member with no state (k8s/bootstrap.ts): bootstrap a one-voter group only when
 * the rule says so; any other answer starts it as a joiner the leader's reconciler adds.
 */
export async function decideInClusterBootstrap(client: KubeClient, k: KubernetesConfig, log: Logger): Promise<BootstrapDecision & { pods: GroupPod[] | null }> {
  // The last list is kept: a joiner dials the pods it shows at once (PodAddresses' seed).
  let pods: GroupPod[] | null = null;
  const decision = await decideBootstrap({
    selfName: k.podName,
    listPods: async () => (pods = await listGroupPods(client, k.namespace, k.podSelector, k.containerName)),
    // No transport yet: the annotation rule (a member marks its pod) stands for what peers would say.
    peerInGroup: () => false,
    logger: log,
  });
  return { ...decision, pods };
}

export interface InClusterParts {
  /** Starts the API-server followers and the membership parts; none of them blocks or fails the election. */
  start(): Promise<void>;
  /**
   * On a graceful stop, before member.shutdown(): a leader hands over to the newest caught-up
   * voter (a rolling update keeps that one), waiting for a handover already under way.
   */
  handOver(): Promise<void>;
  /** On SIGTERM, after any handover: a deleting voter stays until the leader has removed it (k8s/leave-wait.ts). */
  awaitLeave(): Promise<LeaveOutcome>;
  stop(): Promise<void>;
}

/** Builds every part up front, so a bad configuration fails before the member starts. */
export function createInClusterParts(
  config: ElectorConfig,
  k: KubernetesConfig,
  client: KubeClient,
  member: RaftMember,
  transport: () => PeerTransport & { dropJoiner?(id: string): void; identify?(host: string, port: number): Promise<string> },
  log: Logger,
  links: { onPeerLinked?: (listener: (peerId: string) => void) => () => void; seedPods?: readonly GroupPod[] } = {},
): InClusterParts {
  const common = { client, namespace: k.namespace, logger: log };
  const labeler = new PodLabeler({
    ...common,
    member,
    podName: k.podName,
    groupSelector: k.podSelector,
    labelKey: k.labelKey,
    leaderValue: k.labelLeader,
    followerValue: k.labelFollower,
  });
  const podWatch = new PodWatch({ ...common, groupSelector: k.podSelector, containerName: k.containerName });
  // One election timeout: the leader's own transfer gives up after that long, so a live handover is
  // never spoiled (measured at load 15: a 300 ms grace expired under transfers still in flight).
  const forget = new ForgetLeaderOnPodExit({ member, podWatch, voters: () => member.membership().confState.voters, handoverGraceMs: config.tickMs * config.electionTicks, logger: log });
  const events = new LeadershipEvents({ ...common, member, podName: k.podName, podUid: k.podUid });
  const leaseMirror = k.leaseName ? new LeaseMirror({ api: client.coordination, member, namespace: k.namespace, leaseName: k.leaseName, logger: log }) : undefined;
  // Addresses come from the pod watch (pod IPs) and, for when it has nothing, from the
  // Service's DNS with each IP asked who it is (an incarnation id is not a DNS name).
  const dnsAddresses = new DnsAddresses({
    selfId: member.id,
    serviceFqdn: `${k.service}.${k.namespace}.svc.${k.clusterDomain}`,
    peerPort: config.listen.port,
    resolver: createDnsResolver({ queryTimeoutMs: 2_000, dnsServer: k.dnsServer ? formatHostPort(k.dnsServer) : undefined }),
    identify: (host, port) => {
      const t = transport();
      if (!t.identify) return Promise.reject(new Error('this transport cannot identify addresses'));
      return t.identify(host, port);
    },
    configurationIds: () => {
      const cs = member.membership().confState;
      return new Set([...cs.voters, ...cs.votersOutgoing, ...cs.learners, ...cs.learnersNext]);
    },
    transport: { setPeerAddress: (id, host, port) => transport().setPeerAddress(id, host, port) },
    intervalMs: DnsIntervalMs,
    reidentifyMs: DnsReidentifyMs,
    maxAddresses: 64,
    timers: realDnsTimers,
    logger: log,
  });
  const membership = createMembershipParts({
    member,
    podWatch,
    transport,
    client,
    namespace: k.namespace,
    podName: k.podName,
    peerPort: config.listen.port,
    maxVoters: k.maxVoters,
    tickMs: config.tickMs,
    electionTicks: config.electionTicks,
    events,
    ...(links.onPeerLinked ? { onPeerLinked: links.onPeerLinked } : {}),
    ...(links.seedPods ? { seedPods: links.seedPods } : {}),
    logger: log,
  });

  return {
    awaitLeave: () =>
      waitUntilRemoved({
        selfId: member.id,
        confState: () => member.membership().confState,
        onMembershipChange: (listener) => member.onMembershipChange(listener),
        ownPodDeleting: async () => {
          if (podWatch.snapshot().some((p) => p.name === k.podName && p.uid === k.podUid && p.exit === 'deleting')) return true;
          const read = client.core.listNamespacedPod({ namespace: k.namespace, fieldSelector: `metadata.name=${k.podName}` });
          const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no answer')), OwnPodReadTimeoutMs).unref());
          const list = await Promise.race([read, timeout]);
          return list.items.some((p) => p.metadata?.uid === k.podUid && p.metadata.deletionTimestamp !== undefined && p.metadata.deletionTimestamp !== null);
        },
        maxWaitMs: k.leaveWaitMs,
        setTimeout: (callback, delayMs) => setTimeout(callback, delayMs),
        clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
        logger: log,
      }),
    async start() {
      labeler.start();
      forget.start();
      podWatch.start();
      events.start();
      leaseMirror?.start();
      membership.start();
      dnsAddresses.start();
      await Promise.resolve();
    },
    async handOver() {
      // Two transfers at most (one under way, then ours), each bounded by the member's own deadline.
      await membership.handOver(2 * config.tickMs * config.electionTicks);
    },
    async stop() {
      forget.stop();
      await Promise.all([dnsAddresses.stop(), membership.stop(), labeler.stop(), podWatch.stop(), events.stop(), leaseMirror?.stop()]);
    },
  };
}
