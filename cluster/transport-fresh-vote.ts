/**
 * A peer's announced fresh-vote delay on this side's clock: when it ends (PeerInfo, read by a
 * leader's successor rule) and the one warning for a value out of range. Split from transport.ts.
 */
import { MaxFreshVoteDelayMs } from './handshake.js';
import type { Connection, PeerState } from './peer-link.js';

/** How much later than announced a peer's fresh-vote delay is taken to end (its ticks may run late). */
const FreshVoteDelayLateTicksFactor = 1.25;

export function freshVoteDelayOf(link: Connection | null, nowMs: number): { freshVoteDelayEndsInMs?: number } {
  const endsAt = link?.peerFreshVoteDelayEndsAt ?? null;
  return endsAt === null ? {} : { freshVoteDelayEndsInMs: endsAt - nowMs };
}

/** At establish (conn.establishedAt set): when the delay the peer announced ends, and the warning for an adjusted one. */
export function noteFreshVoteDelay(conn: Connection, peer: PeerState): void {
  // Counted from here, not from when the peer said it: late by a round trip, never early. The
  // peer counts its delay in ticks, and a busy peer's ticks run late and are never caught up:
  // a quarter more covers ticks 25 % late (the reconciler adds a fixed margin on top).
  if (conn.peerFreshVoteDelayMs !== null) conn.peerFreshVoteDelayEndsAt = conn.peerFreshVoteDelayMs > 0 ? conn.establishedAt + conn.peerFreshVoteDelayMs * FreshVoteDelayLateTicksFactor : -Infinity;
  if (conn.peerFreshVoteDelayAnnounced === null || peer.loggedFreshVoteAdjust) return;
  // Authenticated by now, and once per peer: a peer on another build would say it on every link.
  peer.loggedFreshVoteAdjust = true;
  const taken = conn.peerFreshVoteDelayMs!;
  peer.log.warn(
    { announcedFreshVoteDelayMs: String(conn.peerFreshVoteDelayAnnounced), takenFreshVoteDelayMs: Number.isFinite(taken) ? taken : 'unbounded', maxFreshVoteDelayMs: MaxFreshVoteDelayMs },
    Number.isFinite(taken)
      ? `peer announced a fresh-vote delay out of range (another build?): taken as ${taken} ms, never shorter than announced`
      : `peer announced a fresh-vote delay above ${MaxFreshVoteDelayMs} ms (another build?): taken as not over while this link lasts (a leader hands over to it last)`,
  );
}
