/**
 * In-cluster identity. A member is one pod incarnation, `<POD_NAME>@<POD_UID>` (downward API),
 * so a pod recreated under the same name (a new UID, an empty emptyDir) never votes under an
 * id that voted before. The voters are not configured: they live in the raft log and the
 * reconciler (k8s/reconciler.ts) moves them toward the pods that exist, up to --max-voters.
 * A quorum is never computed from what DNS or the API server lists at a moment: only applied
 * configurations count (etcd's rule), so a partition cannot shrink it.
 */
import { makeIncarnationId } from '../cluster/member-id.js';

export type VoterConfigErrorCode =
  /** POD_NAME is unset or empty. */
  | 'POD_NAME_MISSING'
  /** POD_NAMESPACE is unset or empty. */
  | 'POD_NAMESPACE_MISSING'
  /** POD_UID is unset or empty. */
  | 'POD_UID_MISSING'
  /** The pod name is not a DNS label, or the UID is not a UID. */
  | 'POD_NAME_INVALID';

export class VoterConfigError extends Error {
  readonly code: VoterConfigErrorCode;
  constructor(code: VoterConfigErrorCode, message: string) {
    super(message);
    this.name = 'VoterConfigError';
    this.code = code;
  }
}

export interface InClusterIdentity {
  /** This member's id: `<podName>@<podUid>`. */
  id: string;
  podName: string;
  podUid: string;
  namespace: string;
  /** Set when the pod name has the StatefulSet shape `<statefulset>-<ordinal>`. */
  statefulSet: { name: string; ordinal: number } | null;
}

export interface InClusterIdentityInput {
  podName: string | undefined;
  podUid: string | undefined;
  namespace: string | undefined;
}

/** RFC 1123 label: what a pod hostname must be. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_LABEL_MAX = 63;
/** StatefulSet ordinals are plain decimals: no sign, no leading zero. */
const STATEFULSET_POD = /^(.+)-(0|[1-9][0-9]*)$/;

/** Splits `<statefulset>-<ordinal>`, or null when the name does not have that shape. */
export function parseStatefulSetPodName(podName: string): { statefulSet: string; ordinal: number } | null {
  const match = STATEFULSET_POD.exec(podName);
  if (!match?.[1] || match[2] === undefined) return null;
  const ordinal = Number(match[2]);
  if (!Number.isSafeInteger(ordinal)) return null;
  return { statefulSet: match[1], ordinal };
}

/** Votes needed to elect a leader in a group of `voters`, and the failures it survives. */
export function quorumOf(voters: number): { quorum: number; toleratedFailures: number } {
  const quorum = Math.floor(voters / 2) + 1;
  return { quorum, toleratedFailures: voters - quorum };
}

/** Validates the in-cluster identity once, up front; throws `VoterConfigError` naming the variable. */
export function resolveInClusterIdentity(input: InClusterIdentityInput): InClusterIdentity {
  const podName = input.podName ?? '';
  const podUid = input.podUid ?? '';
  const namespace = input.namespace ?? '';
  if (podName === '') {
    throw new VoterConfigError('POD_NAME_MISSING', 'POD_NAME is not set: set it from the downward API (env valueFrom fieldRef metadata.name)');
  }
  if (namespace.trim() === '') {
    throw new VoterConfigError(
      'POD_NAMESPACE_MISSING',
      'POD_NAMESPACE is not set: in-cluster mode needs the pod namespace; set it from the downward API (env valueFrom fieldRef metadata.namespace)',
    );
  }
  if (podUid === '') {
    throw new VoterConfigError(
      'POD_UID_MISSING',
      'POD_UID is not set: a member is one pod incarnation; set it from the downward API (env valueFrom fieldRef metadata.uid)',
    );
  }
  if (podName.length > DNS_LABEL_MAX || !DNS_LABEL.test(podName)) {
    throw new VoterConfigError(
      'POD_NAME_INVALID',
      `POD_NAME ${JSON.stringify(podName)} is not a DNS label (lowercase letters, digits and '-', at most ${DNS_LABEL_MAX} characters)`,
    );
  }
  let id: string;
  try {
    id = makeIncarnationId(podName, podUid);
  } catch (err) {
    throw new VoterConfigError('POD_NAME_INVALID', (err as Error).message);
  }
  const sts = parseStatefulSetPodName(podName);
  return { id, podName, podUid, namespace, statefulSet: sts ? { name: sts.statefulSet, ordinal: sts.ordinal } : null };
}

/** `resolveInClusterIdentity` with POD_NAME, POD_UID and POD_NAMESPACE read from `env`. */
export function inClusterIdentityFromEnv(env: NodeJS.ProcessEnv): InClusterIdentity {
  return resolveInClusterIdentity({ podName: env['POD_NAME'], podUid: env['POD_UID'], namespace: env['POD_NAMESPACE'] });
}
