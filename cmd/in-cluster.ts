/**
 * The Kubernetes parts of a member, loaded only in in-cluster mode (the client library
 * costs memory a loopback member should not pay): DNS discovery feeds the transport,
 * the pod label, Events and the Lease mirror follow the leadership view, and the pod watch forgets a
 * leader whose pod is going away.
 */
import type { Logger } from 'pino';
import type { PeerTransport } from '../cluster/interfaces.js';
import type { RaftMember } from '../cluster/member.js';
import { DnsDiscovery } from '../k8s/discovery.js';
import { LeadershipEvents } from '../k8s/events.js';
import { LeaseMirror } from '../k8s/lease-mirror.js';
import { createKubeClient, loadInClusterConfig } from '../k8s/kube-client.js';
import { PodLabeler } from '../k8s/pod-label.js';
import { ForgetLeaderOnPodExit, PodWatch } from '../k8s/pod-watch.js';
import { resolveInClusterIdentity, type InClusterIdentity } from '../k8s/voters.js';
import type { ElectorConfig, KubernetesConfig } from './config.js';
import { createMembershipParts, isMembershipMember, type MembershipParts } from './in-cluster-membership.js';

import { resolveDiscoveryOptions, type DnsDiscoveryOptions } from '../k8s/discovery.js';

export function inClusterIdentity(k: KubernetesConfig): InClusterIdentity {
  return resolveInClusterIdentity({ podName: k.podName, namespace: k.namespace, replicas: k.replicas });
}

export function discoveryOptions(config: ElectorConfig, k: KubernetesConfig, identity: InClusterIdentity, log: Logger): DnsDiscoveryOptions {
  return {
    selfId: identity.id,
    voters: identity.voters,
    namespace: k.namespace,
    service: k.service,
    clusterDomain: k.clusterDomain,
    peerPort: config.listen.port,
    ...(k.dnsServer ? { dnsServer: `${k.dnsServer.host}:${k.dnsServer.port}` } : {}),
    logger: log,
  };
}

/** Checks the discovery settings without starting anything (used by --check-config too). */
export function validateDiscovery(config: ElectorConfig, k: KubernetesConfig, identity: InClusterIdentity, log: Logger): void {
  resolveDiscoveryOptions(discoveryOptions(config, k, identity, log));
}

export interface InClusterParts {
  /** Starts discovery and the API-server followers; none of them blocks or fails the election. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Discovery re-resolves a peer the transport cannot reach. */
  peerUnreachable(peerId: string): void;
}

/** Builds every part up front, so a bad configuration fails before the member starts. */
export function createInClusterParts(
  config: ElectorConfig,
  k: KubernetesConfig,
  identity: InClusterIdentity,
  member: RaftMember,
  transport: () => PeerTransport,
  log: Logger,
): InClusterParts {
  const kube = loadInClusterConfig({ tokenFile: k.tokenFile, caFile: k.caFile });
  const client = createKubeClient(kube);
  const common = { client, namespace: k.namespace, logger: log };
  const labeler = new PodLabeler({
    ...common,
    member,
    groupSelector: k.podSelector,
    labelKey: k.labelKey,
    leaderValue: k.labelLeader,
    followerValue: k.labelFollower,
  });
  const podWatch = new PodWatch({ ...common, groupSelector: k.podSelector, containerName: k.containerName });
  const forget = new ForgetLeaderOnPodExit({ member, podWatch, voters: identity.voters, logger: log });
  const events = new LeadershipEvents({ ...common, member, ...(process.env.POD_UID ? { podUid: process.env.POD_UID } : {}) });
  const leaseMirror = k.leaseName ? new LeaseMirror({ api: client.coordination, member, namespace: k.namespace, leaseName: k.leaseName, logger: log }) : undefined;
  let discovery: DnsDiscovery | undefined;
  // Only a member with the membership API (after core11) follows the workload; a fixed-voter member does not.
  const membership: MembershipParts | undefined = isMembershipMember(member)
    ? createMembershipParts({
        member,
        podWatch,
        transport,
        client,
        namespace: k.namespace,
        podName: k.podName,
        peerPort: config.listen.port,
        maxVoters: k.maxVoters,
        tickMs: config.tickMs,
        events,
        logger: log,
      })
    : undefined;

  return {
    async start() {
      discovery = new DnsDiscovery(discoveryOptions(config, k, identity, log), transport());
      labeler.start();
      forget.start();
      podWatch.start();
      events.start();
      leaseMirror?.start();
      membership?.start();
      await discovery.start();
    },
    async stop() {
      forget.stop();
      await Promise.all([membership?.stop(), labeler.stop(), podWatch.stop(), events.stop(), leaseMirror?.stop(), discovery?.stop()]);
    },
    peerUnreachable(peerId) {
      discovery?.peerUnreachable(peerId);
    },
  };
}
