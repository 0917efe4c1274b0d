/**
 * The one warning for a longest refusal window a peer announced out of range (handshake.ts
 * readLongestRefusalWindow took it adjusted). Split from transport.ts.
 */
import { MaxRefusalWindowMs } from './handshake.js';
import type { Connection, PeerState } from './peer-link.js';

/** At establish: authenticated by now, and once per peer (a peer on another build says it on every link). */
export function noteLongestRefusalWindow(conn: Connection, peer: PeerState): void {
  if (conn.peerLongestRefusalWindowAnnounced === null || peer.loggedLongestWindowAdjust) return;
  peer.loggedLongestWindowAdjust = true;
  const taken = conn.peerLongestRefusalWindowMs!;
  peer.log.warn(
    { announcedLongestRefusalWindowMs: String(conn.peerLongestRefusalWindowAnnounced), takenLongestRefusalWindowMs: taken, maxRefusalWindowMs: MaxRefusalWindowMs },
    `peer announced a longest refusal window out of range (another build?): taken as ${taken} ms, ` +
      'never shorter than announced up to the longest window this build allows; the waits that cover another leader\'s lease count it',
  );
}
