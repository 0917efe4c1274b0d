/**
 * The pod watch as the address source for incarnations: every Running pod of the group with a
 * pod IP is `<name>@<uid>` at `podIP:peerPort`. The transport adds an id it does not know yet
 * (dynamic peers), so a joiner is reachable before the leader adds it. DNS (dns-addresses.ts) is
 * the second source, for members restarted while the API server is away; an address here only ever adds or moves a
 * peer, never removes one (removal follows the configuration: transport.setMembers).
 */
import type { Logger } from 'pino';
import { makeIncarnationId } from '../cluster/member-id.js';
import type { GroupPod } from './pod-watch.js';

export interface AddressSink {
  setPeerAddress(id: string, host: string, port: number): void;
  /** Forgets an id that is not in the configuration; keeps the transport's peer table bounded across rollouts. */
  dropJoiner?(id: string): void;
}

export interface PodAddressSource {
  snapshot(): GroupPod[];
  onPodsChange(listener: () => void): () => void;
  /** False until the first list arrived (PodWatch): an empty snapshot before it is no news. */
  readonly synced?: boolean;
}

export interface PodAddressesOptions {
  selfId: string;
  pods: PodAddressSource;
  transport: AddressSink;
  peerPort: number;
  /**
   * Pods listed just before the member started (the bootstrap decision's list): their addresses
   * go to the transport at start, so a joiner that dials (the smaller id) links to the leader
   * without waiting for the pod watch's own first list. The watch's list then takes over.
   */
  seed?: readonly GroupPod[];
  logger: Logger;
}

/** Incarnation id and address of every pod that can take a link now, sorted by id. */
export function podAddresses(pods: readonly GroupPod[], peerPort: number): { id: string; host: string; port: number }[] {
  const out: { id: string; host: string; port: number }[] = [];
  for (const pod of pods) {
    if (pod.exit !== null && pod.exit !== 'container-terminated') continue;
    if (pod.phase !== 'Running' || pod.podIP === null || pod.uid === '') continue;
    let id: string;
    try {
      id = makeIncarnationId(pod.name, pod.uid);
    } catch {
      continue;
    }
    out.push({ id, host: pod.podIP, port: peerPort });
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

export class PodAddresses {
  private readonly log: Logger;
  private readonly known = new Map<string, string>();
  /** Ids whose add was refused: logged once each, retried on every sync. */
  private readonly refused = new Set<string>();
  private unsubscribe: (() => void) | null = null;

  constructor(private readonly o: PodAddressesOptions) {
    this.log = o.logger.child({ component: 'pod-addresses' });
  }

  start(): void {
    if (this.unsubscribe) return;
    this.unsubscribe = this.o.pods.onPodsChange(() => this.sync());
    if (this.o.seed && this.o.pods.synced === false) this.push(podAddresses(this.o.seed, this.o.peerPort));
    this.sync();
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
  }

  /** Pushes new and moved addresses; unchanged ones are not re-sent. */
  sync(): void {
    // Before the watch's first list its snapshot is empty, not the truth: keep what was seeded.
    if (this.o.pods.synced === false) return;
    const current = podAddresses(this.o.pods.snapshot(), this.o.peerPort);
    const seen = this.push(current);
    for (const id of [...this.known.keys()]) {
      if (seen.has(id)) continue;
      this.known.delete(id);
      this.o.transport.dropJoiner?.(id);
    }
    for (const id of [...this.refused]) if (!seen.has(id)) this.refused.delete(id);
  }

  /** Sends the addresses not sent yet; returns every id in `current`. */
  private push(current: readonly { id: string; host: string; port: number }[]): Set<string> {
    const seen = new Set<string>();
    for (const a of current) {
      seen.add(a.id);
      if (a.id === this.o.selfId) continue;
      const address = `${a.host}:${a.port}`;
      if (this.known.get(a.id) === address) continue;
      try {
        this.o.transport.setPeerAddress(a.id, a.host, a.port);
        this.known.set(a.id, address);
        this.refused.delete(a.id);
      } catch (err) {
        if (this.refused.has(a.id)) continue;
        this.refused.add(a.id);
        // TOO_MANY_PEERS: the transport's bound; the pod stays unreachable from here and is logged.
        this.log.warn({ peer: a.id, address, code: (err as { code?: string }).code, err: (err as Error).message }, 'cannot add a peer address from the pod watch');
      }
    }
    return seen;
  }
}
