/**
 * In-cluster identity and the fixed voter set.
 *
 * The member id is the pod name (downward API `POD_NAME`), the namespace comes
 * from `POD_NAMESPACE`. With `--replicas N` and StatefulSet naming
 * `<statefulset>-<ordinal>`, the voters are `<statefulset>-0 … <statefulset>-(N-1)`.
 *
 * The voter set comes from configuration only, never from what DNS returns: a
 * quorum computed from whatever DNS lists at the moment would shrink during a
 * partition or while DNS lags behind, and two sides of a partition could each
 * see "a majority" of a smaller group and elect two leaders in one term.
 */

export type VoterConfigErrorCode =
  /** POD_NAME is unset or empty. */
  | 'POD_NAME_MISSING'
  /** POD_NAMESPACE is unset or empty. */
  | 'POD_NAMESPACE_MISSING'
  /** The pod name is not a DNS label, so it cannot be a pod hostname under the headless Service. */
  | 'POD_NAME_INVALID'
  /** The pod name does not end in `-<ordinal>`, so the StatefulSet and its voters cannot be derived. */
  | 'POD_NAME_NOT_STATEFULSET'
  /** --replicas is not an integer ≥ 1. */
  | 'REPLICAS_INVALID'
  /** The pod's ordinal is not below --replicas, so this pod would not be one of the voters. */
  | 'ORDINAL_OUT_OF_RANGE';

export class VoterConfigError extends Error {
  readonly code: VoterConfigErrorCode;
  constructor(code: VoterConfigErrorCode, message: string) {
    super(message);
    this.name = 'VoterConfigError';
    this.code = code;
  }
}

export interface InClusterIdentity {
  /** This member's id: the pod name. */
  id: string;
  namespace: string;
  statefulSet: string;
  ordinal: number;
  replicas: number;
  /** `<statefulset>-0 … <statefulset>-(replicas-1)`, in ordinal order. */
  voters: string[];
  /** Sound but questionable settings (an even replica count); the caller logs each once. */
  warnings: string[];
}

export interface InClusterIdentityInput {
  podName: string | undefined;
  namespace: string | undefined;
  replicas: number;
}

/** RFC 1123 label: what a pod hostname (and so a StatefulSet pod name) must be. */
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

export function statefulSetVoters(statefulSet: string, replicas: number): string[] {
  return Array.from({ length: replicas }, (_, ordinal) => `${statefulSet}-${ordinal}`);
}

/** Votes needed to elect a leader in a group of `voters`, and the failures it survives. */
export function quorumOf(voters: number): { quorum: number; toleratedFailures: number } {
  const quorum = Math.floor(voters / 2) + 1;
  return { quorum, toleratedFailures: voters - quorum };
}

/** Validates the in-cluster settings once, up front; throws `VoterConfigError` naming the broken relation. */
export function resolveInClusterIdentity(input: InClusterIdentityInput): InClusterIdentity {
  const podName = input.podName ?? '';
  const namespace = input.namespace ?? '';
  const { replicas } = input;

  if (podName === '') {
    throw new VoterConfigError(
      'POD_NAME_MISSING',
      'POD_NAME is not set: in-cluster mode uses the pod name as the member id; ' +
        'set it from the downward API (env valueFrom fieldRef metadata.name)',
    );
  }
  if (namespace.trim() === '') {
    throw new VoterConfigError(
      'POD_NAMESPACE_MISSING',
      'POD_NAMESPACE is not set: in-cluster mode needs the pod namespace to build DNS names; ' +
        'set it from the downward API (env valueFrom fieldRef metadata.namespace)',
    );
  }
  if (!Number.isSafeInteger(replicas) || replicas < 1) {
    throw new VoterConfigError(
      'REPLICAS_INVALID',
      `--replicas must be an integer >= 1 (the StatefulSet's replicas), got ${JSON.stringify(replicas)}`,
    );
  }
  if (podName.length > DNS_LABEL_MAX || !DNS_LABEL.test(podName)) {
    throw new VoterConfigError(
      'POD_NAME_INVALID',
      `POD_NAME ${JSON.stringify(podName)} is not a DNS label (lowercase letters, digits and '-', ` +
        `at most ${DNS_LABEL_MAX} characters), so it cannot be a pod hostname under the headless Service`,
    );
  }
  const parsed = parseStatefulSetPodName(podName);
  if (!parsed) {
    throw new VoterConfigError(
      'POD_NAME_NOT_STATEFULSET',
      `POD_NAME ${JSON.stringify(podName)} does not end in -<ordinal>: --replicas derives the voters from ` +
        'StatefulSet pod names <statefulset>-<ordinal>; run raft-elector in a StatefulSet',
    );
  }
  const voters = statefulSetVoters(parsed.statefulSet, replicas);
  if (parsed.ordinal >= replicas) {
    throw new VoterConfigError(
      'ORDINAL_OUT_OF_RANGE',
      `pod ${podName} has ordinal ${parsed.ordinal} but --replicas is ${replicas}, so the voters are ` +
        `${voters[0]} … ${voters[voters.length - 1]} and this pod is not one of them; ` +
        "set --replicas to the StatefulSet's replicas",
    );
  }

  const warnings: string[] = [];
  if (replicas % 2 === 0) {
    const even = quorumOf(replicas);
    const odd = quorumOf(replicas - 1);
    warnings.push(
      `--replicas ${replicas} is even: a group of ${replicas} needs ${even.quorum} votes and tolerates ` +
        `${even.toleratedFailures} failure(s), no more than a group of ${replicas - 1} ` +
        `(${odd.toleratedFailures}); prefer an odd count`,
    );
  }
  return { id: podName, namespace, statefulSet: parsed.statefulSet, ordinal: parsed.ordinal, replicas, voters, warnings };
}

/** `resolveInClusterIdentity` with POD_NAME and POD_NAMESPACE read from `env`. */
export function inClusterIdentityFromEnv(env: NodeJS.ProcessEnv, replicas: number): InClusterIdentity {
  return resolveInClusterIdentity({ podName: env['POD_NAME'], namespace: env['POD_NAMESPACE'], replicas });
}
