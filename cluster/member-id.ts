/**
 * Member ids. In-cluster a member is one pod incarnation, `<podName>@<podUid>`: a pod
 * recreated under the same name has a new UID, so its empty disk never votes under an id
 * that voted before. In --peers mode ids are plain names (no '@').
 */
import { ClusterError } from './errors.js';
import { MAX_ID_LENGTH, isValidMemberId } from './codec.js';

/** Kubernetes UIDs are RFC 4122 strings; any printable token without '@' up to this length is accepted. */
export const MAX_POD_UID_LENGTH = 64;
const UID_RE = /^[A-Za-z0-9][A-Za-z0-9-]*$/;

export interface Incarnation {
  podName: string;
  /** null for a plain (--peers mode or fixed-voter era) id. */
  podUid: string | null;
}

export function makeIncarnationId(podName: string, podUid: string): string {
  if (podName === '' || podName.includes('@')) {
    throw new ClusterError('INVALID_MEMBER_OPTIONS', `pod name ${JSON.stringify(podName)} must be non-empty and contain no '@'`);
  }
  if (podUid.length > MAX_POD_UID_LENGTH || !UID_RE.test(podUid)) {
    throw new ClusterError(
      'INVALID_MEMBER_OPTIONS',
      `pod UID ${JSON.stringify(podUid)} must be 1..${MAX_POD_UID_LENGTH} letters, digits or '-' (POD_UID from the downward API metadata.uid)`,
    );
  }
  const id = `${podName}@${podUid}`;
  if (!isValidMemberId(id)) {
    throw new ClusterError('INVALID_MEMBER_OPTIONS', `member id ${JSON.stringify(id)} is not a valid id (at most ${MAX_ID_LENGTH} characters, no whitespace)`);
  }
  return id;
}

/** Splits at the last '@'; a plain id has podUid null. */
export function parseMemberId(id: string): Incarnation {
  const at = id.lastIndexOf('@');
  if (at <= 0 || at === id.length - 1) return { podName: id, podUid: null };
  return { podName: id.slice(0, at), podUid: id.slice(at + 1) };
}

/** What apps compare with POD_NAME: the pod name of an incarnation id, the id itself otherwise. */
export function podNameOf(id: string): string {
  return parseMemberId(id).podName;
}

export function podUidOf(id: string): string | null {
  return parseMemberId(id).podUid;
}
