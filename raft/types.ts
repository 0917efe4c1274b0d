/** Message types keep etcd-raft's names so traces read the same as upstream's. */
export const MessageTypes = [
  'MsgHup',
  'MsgBeat',
  'MsgProp',
  'MsgApp',
  'MsgAppResp',
  'MsgVote',
  'MsgVoteResp',
  'MsgSnap',
  'MsgHeartbeat',
  'MsgHeartbeatResp',
  'MsgUnreachable',
  'MsgCheckQuorum',
  'MsgTransferLeader',
  'MsgTimeoutNow',
  'MsgPreVote',
  'MsgPreVoteResp',
  'MsgForgetLeader',
] as const;
export type MessageType = (typeof MessageTypes)[number];

/** Messages that only ever travel from the driver into its own node. */
export const LocalMessageTypes: ReadonlySet<MessageType> = new Set<MessageType>([
  'MsgHup',
  'MsgBeat',
  'MsgProp',
  'MsgUnreachable',
  'MsgCheckQuorum',
  'MsgForgetLeader',
]);

/** The empty id, as etcd's `None`. Member ids are non-empty strings (pod names). */
export const None = '';

export type StateType = 'Follower' | 'PreCandidate' | 'Candidate' | 'Leader';

/** Entries carry no payload: the elector only needs their index and term. */
export interface Entry {
  readonly index: number;
  readonly term: number;
}

/** The last entry folded into a compaction marker (etcd's snapshot metadata, without data). */
export interface EntryId {
  readonly index: number;
  readonly term: number;
}

/** Context values with a meaning to the core. */
export const CampaignTransferContext = 'CampaignTransfer';
/**
 * Attached to a granted (pre-)vote by a follower that forgot a leader whose lease
 * it was still honouring; the winner must wait one lease window before it claims
 * exclusive leadership (not an etcd rule: raft-elector's lease safety).
 */
export const LeaseSkippedContext = 'LeaseSkipped';

export interface Message {
  type: MessageType;
  to: string;
  from: string;
  term: number;
  /** For MsgApp: the term of the entry at `index`; for vote requests: the candidate's last term. */
  logTerm: number;
  index: number;
  entries: Entry[];
  commit: number;
  reject: boolean;
  rejectHint: number;
  /** Opaque to the transport: campaign kind, heartbeat sequence, lease flags. */
  context: string;
  snapshot?: EntryId;
}

export interface HardState {
  term: number;
  vote: string;
  commit: number;
}

export interface SoftState {
  lead: string;
  state: StateType;
}

/** Everything a member must keep across a restart, written whole and atomically. */
export interface DurableState {
  hardState: HardState;
  /** Compaction marker: entries at or below it are folded away. `{0, 0}` for a new log. */
  snapshot: EntryId;
  entries: Entry[];
}

export interface Ready {
  /** Set when leader or role changed since the last Ready. */
  softState?: SoftState;
  /** Set when term, vote or commit changed since the last Ready. */
  hardState?: HardState;
  /** Entries not yet persisted, etcd-style; `durableState` holds the whole log. */
  entries: Entry[];
  /** Set when a compaction marker arrived from the leader (MsgSnap) and must be persisted. */
  snapshot?: EntryId;
  /** The full state to write, whenever any durable part changed. */
  durableState?: DurableState;
  /**
   * Messages to send after `durableState` (if any) is on disk. Vote and append
   * responses are in here and must never leave before that write.
   */
  messages: Message[];
  /** True when term, vote or entries changed: the write must be fsynced. */
  mustSync: boolean;
}

export function emptyHardState(): HardState {
  return { term: 0, vote: None, commit: 0 };
}

export function isEmptyHardState(hs: HardState): boolean {
  return hs.term === 0 && hs.vote === None && hs.commit === 0;
}

export function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

export function isResponseMessage(type: MessageType): boolean {
  return (
    type === 'MsgAppResp' ||
    type === 'MsgVoteResp' ||
    type === 'MsgHeartbeatResp' ||
    type === 'MsgPreVoteResp'
  );
}

export function voteResponseType(type: MessageType): MessageType {
  if (type === 'MsgVote') return 'MsgVoteResp';
  if (type === 'MsgPreVote') return 'MsgPreVoteResp';
  throw new RaftError('INVALID_ARGUMENT', `not a vote request: ${type}`);
}

/** Builds a message with every field present, so codecs and tests see one shape. */
export function makeMessage(fields: Partial<Message> & { type: MessageType }): Message {
  const m: Message = {
    type: fields.type,
    to: fields.to ?? None,
    from: fields.from ?? None,
    term: fields.term ?? 0,
    logTerm: fields.logTerm ?? 0,
    index: fields.index ?? 0,
    entries: fields.entries ?? [],
    commit: fields.commit ?? 0,
    reject: fields.reject ?? false,
    rejectHint: fields.rejectHint ?? 0,
    context: fields.context ?? '',
  };
  if (fields.snapshot !== undefined) m.snapshot = fields.snapshot;
  return m;
}

export type RaftErrorCode =
  | 'INVALID_CONFIG'
  | 'INVALID_ARGUMENT'
  | 'INVALID_STATE'
  | 'READY_NOT_ADVANCED'
  | 'NO_READY'
  | 'PROPOSAL_DROPPED'
  | 'LOG_CORRUPTED'
  | 'INVALID_MESSAGE';

/** A typed error with a stable code, so callers branch on `code` and not on text. */
export class RaftError extends Error {
  readonly code: RaftErrorCode;
  constructor(code: RaftErrorCode, message: string) {
    super(message);
    this.name = 'RaftError';
    this.code = code;
  }
}
