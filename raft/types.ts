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

/**
 * Entries carry no payload except a configuration change: the elector only needs
 * their index and term, and the membership they change.
 */
export interface Entry {
  readonly index: number;
  readonly term: number;
  /** Set on a configuration-change entry (etcd's EntryConfChangeV2). */
  readonly confChange?: ConfChangeV2;
}

/** etcd's ConfChangeType. UpdateNode changes nothing in raft (etcd passes it through for the app). */
export type ConfChangeType = 'AddNode' | 'AddLearnerNode' | 'RemoveNode' | 'UpdateNode';

export interface ConfChangeSingle {
  readonly type: ConfChangeType;
  readonly nodeId: string;
}

/**
 * etcd's ConfChangeTransition: `Auto` changes one voter directly or enters a joint
 * configuration left automatically when more change; `JointImplicit` always goes joint
 * and leaves automatically; `JointExplicit` goes joint and waits for an empty change.
 */
export type ConfChangeTransition = 'Auto' | 'JointImplicit' | 'JointExplicit';

export interface ConfChangeV2 {
  readonly transition: ConfChangeTransition;
  readonly changes: readonly ConfChangeSingle[];
}

/** The membership at some index (etcd's ConfState); ids sorted. */
export interface ConfState {
  readonly voters: readonly string[];
  /** Non-empty only while joint: the voters of the configuration being left. */
  readonly votersOutgoing: readonly string[];
  readonly learners: readonly string[];
  /** Outgoing voters that become learners once the joint configuration is left. */
  readonly learnersNext: readonly string[];
  readonly autoLeave: boolean;
}

/** etcd's ConfChangeV2.LeaveJoint(): the empty change is the request to leave a joint configuration. */
export function confChangeLeavesJoint(cc: ConfChangeV2): boolean {
  return cc.transition === 'Auto' && cc.changes.length === 0;
}

/**
 * etcd's ConfChangeV2.EnterJoint(): whether the change goes through a joint configuration,
 * and whether that is left automatically. More than one change always goes joint.
 */
export function confChangeEntersJoint(cc: ConfChangeV2): { joint: boolean; autoLeave: boolean } {
  if (cc.transition === 'Auto' && cc.changes.length <= 1) return { joint: false, autoLeave: false };
  return { joint: true, autoLeave: cc.transition !== 'JointExplicit' };
}

export function copyConfChange(cc: ConfChangeV2): ConfChangeV2 {
  return { transition: cc.transition, changes: cc.changes.map((c) => ({ type: c.type, nodeId: c.nodeId })) };
}

export function copyEntry(e: Entry): Entry {
  return e.confChange ? { index: e.index, term: e.term, confChange: copyConfChange(e.confChange) } : { index: e.index, term: e.term };
}

export function copyConfState(cs: ConfState): ConfState {
  return {
    voters: [...cs.voters],
    votersOutgoing: [...cs.votersOutgoing],
    learners: [...cs.learners],
    learnersNext: [...cs.learnersNext],
    autoLeave: cs.autoLeave,
  };
}

export function confStateEqual(a: ConfState, b: ConfState): boolean {
  const same = (x: readonly string[], y: readonly string[]): boolean =>
    x.length === y.length && [...x].sort().every((id, i) => id === [...y].sort()[i]);
  return (
    same(a.voters, b.voters) &&
    same(a.votersOutgoing, b.votersOutgoing) &&
    same(a.learners, b.learners) &&
    same(a.learnersNext, b.learnersNext) &&
    a.autoLeave === b.autoLeave
  );
}

/** The last entry folded into a compaction marker (etcd's snapshot metadata, without data). */
export interface EntryId {
  readonly index: number;
  readonly term: number;
}

/** Context values with a meaning to the core. */
export const CampaignTransferContext = 'CampaignTransfer';
/**
 * Attached to a granted (pre-)vote by a follower that skips a lease it may still be holding
 * up: it forgot or switched from a leader it was still honouring, granted a transfer vote in
 * that lease (one from beyond the next term is marked itself), or is in its restart delay. The
 * winner must wait one lease window before it claims exclusive leadership (not an etcd rule:
 * raft-elector's lease safety; docs/design.md lists the cases).
 */
export const LeaseSkippedContext = 'LeaseSkipped';
/**
 * Carried by the append rejection of a member that has no configuration yet (a pod joining
 * a running group): it cannot interpret the log's configuration changes without a base, so
 * the leader answers with its snapshot and ConfState (not an etcd rule: etcd bootstraps the
 * configuration through the log from index 1).
 */
export const NoConfStateContext = 'NoConfState';

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
  /** On MsgSnap: the membership at the snapshot's index. */
  confState?: ConfState;
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
  /**
   * The membership at the compaction marker (etcd's snapshot ConfState). Committed
   * configuration changes after the marker are re-applied from `entries` on restart.
   * Absent in files written before membership changes: the configured voters apply.
   */
  confState?: ConfState;
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
  /**
   * Entries committed since the last Ready (etcd's CommittedEntries). The driver calls
   * applyConfChange() for each one carrying a confChange, in order, before advance().
   */
  committedEntries: Entry[];
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
  if (fields.confState !== undefined) m.confState = fields.confState;
  return m;
}

export type RaftErrorCode =
  | 'INVALID_CONFIG'
  | 'INVALID_ARGUMENT'
  | 'INVALID_STATE'
  | 'READY_NOT_ADVANCED'
  | 'NO_READY'
  | 'PROPOSAL_DROPPED'
  | 'INVALID_CONF_CHANGE'
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
