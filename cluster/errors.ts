/**
 * Typed errors for cluster/: callers branch on `code`, never on message text.
 * Codes are stable; add new ones at the end of the union.
 */
export type ClusterErrorCode =
  /** The state file exists but its content is damaged (checksum, JSON, version, shape). */
  | 'STATE_FILE_CORRUPT'
  /** The state file (or its data dir) exists but cannot be read. */
  | 'STATE_FILE_UNREADABLE'
  /** The state could not be written, fsynced or renamed into place. */
  | 'STATE_FILE_WRITE_FAILED'
  /** save() was given a state that load() would refuse (a bug in the caller). */
  | 'STATE_INVALID'
  /** A peer frame is not valid JSON or fails the message schema. */
  | 'FRAME_MALFORMED'
  /** A peer frame is larger than the configured limit. */
  | 'FRAME_OVERSIZED'
  /** A peer frame speaks another protocol version. */
  | 'FRAME_UNSUPPORTED_VERSION'
  /** A peer frame names another cluster. */
  | 'FRAME_WRONG_CLUSTER'
  /** Transport options are inconsistent or out of range. */
  | 'INVALID_TRANSPORT_OPTIONS'
  /** Member options are inconsistent or out of range. */
  | 'INVALID_MEMBER_OPTIONS'
  /** The request needs the leader and this member is not it. */
  | 'NOT_LEADER'
  /** A leadership transfer target is unknown, this member, or not a voter. */
  | 'INVALID_TRANSFER_TARGET'
  /** A transfer to another target is under way (a second one would abort it and wake a rival candidate). */
  | 'TRANSFER_IN_PROGRESS'
  /** The member is not running (not started yet, or stopped). */
  | 'MEMBER_STOPPED'
  /** The state file records another member or group than this process is configured as. */
  | 'STATE_FILE_IDENTITY_MISMATCH'
  /** The timing record (the longest vote-refusal window announced) is damaged. */
  | 'TIMING_RECORD_CORRUPT'
  /** The timing record exists but cannot be read. */
  | 'TIMING_RECORD_UNREADABLE'
  /** The timing record could not be written, fsynced or renamed into place. */
  | 'TIMING_RECORD_WRITE_FAILED'
  /** The persisted term is too close to 2^53 for this member ever to campaign again. */
  | 'STATE_TERM_NO_HEADROOM'
  /** The transport already tracks its maximum of peers (maxPeers). */
  | 'TOO_MANY_PEERS'
  /** A configuration change is proposed and not applied yet, or the configuration is joint. */
  | 'CONF_CHANGE_PENDING'
  /** The change would remove the leader from the voters: transfer leadership first. */
  | 'CONF_CHANGE_REMOVES_LEADER'
  /** The change is not valid from the configuration in force (raft's confchange checks). */
  | 'CONF_CHANGE_INVALID'
  /** An address did not prove which member is behind it (GET /identify on the peer port). */
  | 'IDENTIFY_FAILED';

export class ClusterError extends Error {
  readonly code: ClusterErrorCode;
  constructor(code: ClusterErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ClusterError';
    this.code = code;
  }
}

export function isClusterError(err: unknown, code?: ClusterErrorCode): err is ClusterError {
  return err instanceof ClusterError && (code === undefined || err.code === code);
}
