/**
 * What a peer announced of its timing record, for onPeerTiming, and the one warning for a
 * window of it announced out of range (handshake.ts readRecordedWindow took it adjusted).
 * Split from transport.ts.
 */
import { MaxRefusalWindowMs } from './handshake.js';
import type { PeerTimingRecord } from './interfaces.js';
import type { Connection, PeerState } from './peer-link.js';

/** undefined when the peer announced neither window (an older member). */
export function peerTimingRecord(conn: Connection): PeerTimingRecord | undefined {
  const refusal = conn.peerLongestRefusalWindowMs;
  const lease = conn.peerLongestLeaseWindowMs;
  if (refusal === null && lease === null) return undefined;
  return { ...(refusal === null ? {} : { longestRefusalWindowMs: refusal }), ...(lease === null ? {} : { longestLeaseWindowMs: lease }) };
}

/** At establish: authenticated by now, and once per peer (a peer on another build says it on every link). */
export function noteTimingRecord(conn: Connection, peer: PeerState): void {
  const refusal = conn.peerLongestRefusalWindowAnnounced;
  const lease = conn.peerLongestLeaseWindowAnnounced;
  if ((refusal === null && lease === null) || peer.loggedLongestWindowAdjust) return;
  peer.loggedLongestWindowAdjust = true;
  const fields: Record<string, unknown> = { maxRefusalWindowMs: MaxRefusalWindowMs };
  if (refusal !== null) Object.assign(fields, { announcedLongestRefusalWindowMs: String(refusal), takenLongestRefusalWindowMs: conn.peerLongestRefusalWindowMs });
  if (lease !== null) Object.assign(fields, { announcedLongestLeaseWindowMs: String(lease), takenLongestLeaseWindowMs: conn.peerLongestLeaseWindowMs });
  const taken = [refusal !== null ? `refusal window ${conn.peerLongestRefusalWindowMs} ms` : '', lease !== null ? `lease window ${conn.peerLongestLeaseWindowMs} ms` : '']
    .filter(Boolean)
    .join(', ');
  peer.log.warn(
    fields,
    `peer announced a timing-record window out of range (another build?): taken as ${taken}, ` +
      'never shorter than announced up to the longest window this build allows; the waits that cover another leader\'s lease count it',
  );
}
