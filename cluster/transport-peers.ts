/**
 * The transport's peer table: who the peers are, bounded. Peers come from the start-up list,
 * from setPeerAddress (the pod watch or DNS), from setMembers (the applied configuration) and,
 * in dynamic mode, from an authenticated inbound link.
 */
import type { Logger } from 'pino';
import { ClusterError } from './errors.js';
import { compareIds, normalizeHost, type Connection, type PeerState } from './peer-link.js';

export class PeerTable {
  private readonly byId = new Map<string, PeerState>();

  constructor(
    private readonly selfId: string,
    private readonly maxPeers: number,
    private readonly log: Logger,
    /** The transport's monotonic clock (addressSetAt is compared with it). */
    private readonly now: () => number,
  ) {}

  get size(): number {
    return this.byId.size;
  }

  get(id: string): PeerState | undefined {
    return this.byId.get(id);
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  /** Whether `id` could be added now (known already, or room left). */
  hasRoomFor(id: string): boolean {
    return id !== this.selfId && (this.byId.has(id) || this.byId.size < this.maxPeers);
  }

  /** Sorted by id: logs and peers() show a stable order. */
  values(): PeerState[] {
    return [...this.byId.values()].sort((a, b) => compareIds(a.id, b.id));
  }

  /** Adds a peer; throws TOO_MANY_PEERS at the cap. */
  add(id: string, host: string | null, port: number | null, member: boolean): PeerState {
    const existing = this.byId.get(id);
    if (existing) return existing;
    if (this.byId.size >= this.maxPeers) {
      throw new ClusterError('TOO_MANY_PEERS', `cannot add peer ${JSON.stringify(id)}: this member already tracks ${this.byId.size} peers (maxPeers ${this.maxPeers})`);
    }
    const peer: PeerState = {
      id,
      host,
      port,
      weDial: compareIds(this.selfId, id) < 0,
      member,
      link: null,
      pending: null,
      reconnectTimer: null,
      attempt: 0,
      addressSetAt: this.now(),
      linkedSinceAddress: false,
      lastUnreachableAt: -Infinity,
      loggedFreshVoteAdjust: false,
      loggedLongestWindowAdjust: false,
      log: this.log.child({ peer: id }),
    };
    this.byId.set(id, peer);
    return peer;
  }

  delete(id: string): void {
    this.byId.delete(id);
  }

  /** Whether discovery knows a peer at `host`: its connections never wait behind strangers'. */
  hasHost(host: string): boolean {
    const h = normalizeHost(host);
    for (const p of this.byId.values()) if (p.host !== null && normalizeHost(p.host) === h) return true;
    return false;
  }

  /** The established links, one per connected peer. */
  *links(): Iterable<Connection> {
    for (const peer of this.values()) if (peer.link) yield peer.link;
  }
}
