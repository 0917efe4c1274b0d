/**
 * The seams between a running member and everything around it. The member
 * (cluster/member.ts) implements `Member`; the transport, the state file, the
 * HTTP API and the Kubernetes parts code against these types only.
 */
import type { ConfChangeV2, ConfState, DurableState, Message, StateType } from '../raft/index.js';

export interface PeerAddress {
  id: string;
  host: string;
  port: number;
}

export interface PeerInfo {
  id: string;
  /** `host:port`, or null while discovery has not found it yet. */
  address: string | null;
  connected: boolean;
  /**
   * Ms until the fresh-vote delay the peer announced on its link ends (negative: ended,
   * -Infinity: none to serve, Infinity: above the bound, not over while the link lasts); absent
   * while not linked or from a peer that announces nothing.
   */
  freshVoteDelayEndsInMs?: number;
}

/** Why a message did not leave (label values of raft_elector_messages_dropped_total). */
export type DropReason =
  | 'peer_unknown'
  | 'not_connected'
  | 'send_buffer_full'
  | 'frame_invalid'
  | 'frame_oversized'
  | 'unauthenticated'
  | 'wrong_cluster'
  /** A frame failed its per-frame tag or sequence check: the link was closed. */
  | 'frame_auth_failed'
  /** A second live process claimed a member id that holds a live link: refused. */
  | 'duplicate_member'
  /** A connection refused for want of a free handshake or connection slot. */
  | 'admission_refused';

/**
 * A member's timing settings, as it announces them in the authenticated handshake. A rolling
 * upgrade that changes them runs members with different settings side by side, and a
 * leader's lease must hold for the shortest vote-refusal window among those that
 * acknowledged it.
 */
export interface PeerTiming {
  tickMs: number;
  electionTicks: number;
  maxClockDriftMs: number;
}

/**
 * What a peer's handshake says of its timing record (cluster/timing-record.ts): the longest
 * windows it ever announced, across restarts. Each is absent from a peer that sends none.
 */
export interface PeerTimingRecord {
  longestRefusalWindowMs?: number;
  longestLeaseWindowMs?: number;
}

export interface TransportEvents {
  /** A validated message from an authenticated peer. */
  onMessage(message: Message): void;
  /** A peer could not be reached (connect failed or the link dropped). */
  onUnreachable(peerId: string): void;
  onPeerConnectionChange?(peerId: string, connected: boolean): void;
  onDrop?(reason: DropReason, peerId: string | null): void;
  /**
   * The timing an authenticated peer announced; called on every new link, before its first
   * message. `record`: what it announced of its timing record; absent from a peer that
   * announces none (an older member).
   */
  onPeerTiming?(peerId: string, timing: PeerTiming, record?: PeerTimingRecord): void;
}

export interface PeerTransport {
  start(): Promise<void>;
  /** Never blocks and never throws for a peer problem: raft tolerates loss, so it drops and reports. */
  send(message: Message): void;
  /** Discovery may move a peer; the transport reconnects to the new address. */
  setPeerAddress(id: string, host: string, port: number): void;
  peers(): PeerInfo[];
  /**
   * The ids the member needs links to (every member of the configuration in force but
   * itself, sorted); called after each applied configuration change. Optional.
   */
  setMembers?(ids: readonly string[]): void;
  close(): Promise<void>;
}

export interface SaveOptions {
  /**
   * False when only the commit index changed (raft's Ready.mustSync, etcd's MustSync rule):
   * written, not synced; a crash may then restore the previous commit, which raft relearns.
   * Default true.
   */
  sync?: boolean;
}

export interface StateStore {
  /** undefined for a fresh member (no file); throws a typed error naming the file when it is unreadable. */
  load(): DurableState | undefined;
  /** On disk (synced) before it returns, unless `options.sync` is false. */
  save(state: DurableState, options?: SaveOptions): void;
  /**
   * Optional: a synced save whose sync runs off the event loop. `done` runs once the state is on
   * disk, or with the error (the member then stops), never before this returns. One at a time:
   * the member starts the next only after `done`.
   */
  saveInBackground?(state: DurableState, done: (err: Error | undefined) => void): void;
}

/** What the app is told: GET /leader is built from this. */
export interface LeadershipView {
  self: string;
  /** The leader this member knows of, or null. */
  leader: string | null;
  /** The fencing token: only grows. */
  term: number;
  role: StateType;
  /** Raft leader, holding a valid lease, and not transferring leadership. */
  isLeader: boolean;
  /** Remaining lease for a leader that holds one, else null. */
  leaseExpiresInMs: number | null;
  /** When this member first saw the current (leader, term), ISO 8601; null without a leader. */
  since: string | null;
}

export type MembershipRole = 'voter' | 'learner' | 'joining' | 'removed';

export interface MemberInfo extends PeerInfo {
  /** The role as last known from here: this member's own, or the leader we follow. */
  role: 'leader' | 'follower' | 'unknown';
  /**
   * Place in the configuration in force: a voter (of either half while joint), a learner,
   * joining (a peer the transport knows that the configuration does not hold yet), or removed
   * (held before and no longer; the last 32 are kept). RaftMember always fills it.
   */
  membership?: MembershipRole;
}

export interface MemberProgress {
  match: number;
  recentActive: boolean;
  isLearner: boolean;
}

export interface MembershipStatus {
  confState: ConfState;
  /** A change is proposed and not yet applied, or the configuration is joint. */
  pendingConfChange: boolean;
  appliedIndex: number;
  lastIndex: number;
  /** Filled on the leader only, sorted by id. */
  progress: Record<string, MemberProgress>;
}

export type ElectionKind = 'pre-vote' | 'vote' | 'transfer';

/** Counters and timings the member reports; the API's Prometheus registry implements it. */
export interface MemberMetrics {
  messageSent(type: Message['type']): void;
  messageReceived(type: Message['type']): void;
  messageDropped(reason: DropReason | 'not_leader' | 'decode'): void;
  electionStarted(kind: ElectionKind): void;
  /** From losing a leader to knowing a new one. */
  electionDuration(seconds: number): void;
  leaderChanged(): void;
  statePersistDuration(seconds: number): void;
  peerConnected(peerId: string, connected: boolean): void;
  /** After every applied configuration change (and once at start). */
  membershipChanged?(counts: { voters: number; learners: number }): void;
  /** One applied configuration change, by kind. */
  confChangeApplied?(type: ConfChangeKind): void;
}

/** Label values of raft_elector_conf_changes_total. */
export type ConfChangeKind = 'add_voter' | 'add_learner' | 'remove' | 'joint' | 'leave_joint';

export interface TransferResult {
  /** The member that leads afterwards, or null if none is known yet. */
  leader: string | null;
  transferred: boolean;
}

/** One raft tick as the member ran it. */
export interface TickTiming {
  lateMs: number;
  nextInMs: number;
}

export interface Member {
  readonly id: string;
  view(): LeadershipView;
  members(): MemberInfo[];
  /** Called on every change of the view (leader, term, role, isLeader). Returns an unsubscribe. */
  onChange(listener: (view: LeadershipView) => void): () => void;
  forgetLeader(): void;
  campaign(): void;
  /** On the leader: hand over to `to` or to the most up-to-date connected follower; resolves when done or timed out. */
  transferLeadership(to?: string): Promise<TransferResult>;
  /** Raft's last index and term, for choosing who campaigns after a ForgetLeader. */
  lastLogId(): { index: number; term: number };
  /** Worst lateness of a tick against its schedule since start, in ms (for bench/api). */
  worstTickLatenessMs(): number;
  /**
   * Called after every raft tick with its lateness against its schedule and the time until the
   * next one is due (ms): the tick timer doubles as the API's event-loop probe, which then needs
   * no timer of its own. A stopping member reports `nextInMs: Infinity` (no next tick).
   * Returns an unsubscribe.
   */
  onTick?(listener: (tick: TickTiming) => void): () => void;
  /** The configuration in force and, on the leader, each member's progress. */
  membership(): MembershipStatus;
  /**
   * On the leader: proposes a configuration change. Throws ClusterError NOT_LEADER,
   * CONF_CHANGE_PENDING (one at a time; joint is left first), CONF_CHANGE_REMOVES_LEADER
   * (transfer leadership first, then let the new leader propose it) or CONF_CHANGE_INVALID.
   */
  proposeConfChange(cc: ConfChangeV2): void;
  /** Called after each applied configuration change with the configuration now in force. */
  onMembershipChange(listener: (cs: ConfState) => void): () => void;
  /**
   * Ms left of the fresh-vote delay (started with no state in a group that ran): until then this
   * member votes for no one and ignores MsgTimeoutNow, so it cannot take leadership over. 0 after.
   */
  freshVoteDelayMsLeft?(): number;
}
