/**
 * Who gets a slot on the peer port before authentication. Strangers share bounded
 * pools (per source address, and in total); an address that discovery knows as a
 * peer's has a pool of its own, so no number of strangers can keep a peer out
 * (a restarted member rejoins while its port is flooded).
 */
import type { Socket } from 'node:net';
import { hostOf } from './log-limits.js';
import type { ResolvedOptions } from './transport-options.js';

export type AdmissionRefusal = 'pre_upgrade_full' | 'handshakes_full' | 'handshakes_full_per_host';

export class Admission {
  /** Accepted TCP connections that have not upgraded yet, by remote `host:port`. */
  private readonly preUpgrade = new Map<string, Socket>();
  /** Unauthenticated upgraded connections per stranger host, and their total. */
  private readonly pendingByHost = new Map<string, number>();
  private pendingStrangers = 0;
  /** The same per known peer host: their own pool, outside maxPendingHandshakes. */
  private readonly pendingByPeerHost = new Map<string, number>();

  constructor(
    private readonly o: Pick<ResolvedOptions, 'maxPreUpgradeConnections' | 'maxPendingHandshakes' | 'maxPendingHandshakesPerHost'>,
    private readonly isKnownPeerHost: (host: string) => boolean,
    private readonly refuse: (remote: string, reason: AdmissionRefusal, limit: number, message: string) => void,
  ) {}

  /** A backstop on TCP connections that have not upgraded (yet): strangers past it are cut, known peers never. */
  onConnection(socket: Socket): void {
    socket.on('error', () => {});
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    if (this.preUpgrade.size >= this.o.maxPreUpgradeConnections && !this.isKnownPeerHost(hostOf(remote))) {
      this.refuse(remote, 'pre_upgrade_full', this.o.maxPreUpgradeConnections, 'too many connections that have not upgraded; cutting one');
      socket.destroy();
      return;
    }
    this.preUpgrade.set(remote, socket);
    socket.once('close', () => {
      if (this.preUpgrade.get(remote) === socket) this.preUpgrade.delete(remote);
    });
  }

  /** Upgraded: from here the handshake slots bound it, not the pre-upgrade cap. */
  upgraded(remote: string): void {
    this.preUpgrade.delete(remote);
  }

  /** A handshake slot for `remote`, as a release function, or null when refused (already reported). */
  admitHandshake(remote: string): (() => void) | null {
    const host = hostOf(remote);
    const known = this.isKnownPeerHost(host);
    const pool = known ? this.pendingByPeerHost : this.pendingByHost;
    const fromHost = pool.get(host) ?? 0;
    const perHost = fromHost >= this.o.maxPendingHandshakesPerHost;
    if (perHost || (!known && this.pendingStrangers >= this.o.maxPendingHandshakes)) {
      this.refuse(
        remote,
        perHost ? 'handshakes_full_per_host' : 'handshakes_full',
        perHost ? this.o.maxPendingHandshakesPerHost : this.o.maxPendingHandshakes,
        perHost ? 'too many unauthenticated connections from one address; refusing one' : 'too many unauthenticated connections; refusing one',
      );
      return null;
    }
    if (!known) this.pendingStrangers++;
    pool.set(host, fromHost + 1);
    let counted = true;
    return () => {
      if (!counted) return;
      counted = false;
      if (!known) this.pendingStrangers--;
      const left = (pool.get(host) ?? 1) - 1;
      if (left > 0) pool.set(host, left);
      else pool.delete(host);
    };
  }
}
