/** The options of WsTransport, their defaults, and their validation (once, up front). */
import { DEFAULT_MAX_FRAME_BYTES, MAX_ID_LENGTH, isValidClusterName, isValidMemberId } from './codec.js';
import { ClusterError } from './errors.js';
import { timingProblem } from './handshake.js';
import type { PeerTiming, TransportEvents } from './interfaces.js';
import type { TimingRecord } from './timing-record.js';
import type { Logger } from 'pino';
import type { NetConnectOpts, Socket } from 'node:net';

export const PEER_PATH = '/raft';
export const MIN_SECRET_BYTES = 16;

export interface TransportPeer {
  id: string;
  /** Unknown until discovery finds it; set later with setPeerAddress. */
  host?: string;
  port?: number;
}

export interface TransportTlsOptions {
  /** PEM certificate and key this member serves wss with. */
  cert: string | Buffer;
  key: string | Buffer;
  /**
   * PEM CA that signed the peers' certificates. When given, it verifies the member we
   * dial, and a dialing member must present a client certificate it signed (as etcd's
   * --peer-client-cert-auth). When absent: the system CAs, and no client certificate.
   */
  ca?: string | Buffer;
  /** Name to verify the peer's certificate against, when dialing by IP a cert issued for a DNS name. */
  serverName?: string;
}

export interface WsTransportOptions {
  selfId: string;
  clusterName: string;
  /** Port 0 picks a free port; read it back with `port` after start(). */
  listen: { host: string; port: number };
  /** The peers known at start (this member's own id is allowed and skipped); more may come at run time. */
  peers: TransportPeer[];
  /**
   * Membership that follows the workload: setPeerAddress adds an unknown id, and an
   * authenticated inbound link from an id not yet known is kept as that peer's link (a
   * joiner must reach the leader before the leader adds it). Off: only `peers` are members.
   */
  dynamicPeers?: boolean;
  /** Bound on the peers this member tracks (dynamic mode): beyond it TOO_MANY_PEERS. Default 256. */
  maxPeers?: number;
  /** This member's timing, announced in the authenticated handshake (events.onPeerTiming on the other side). */
  localTiming: PeerTiming;
  /**
   * A link that delivered an authenticated frame within this window belongs to a live
   * process: a connection from another process claiming the same id is refused
   * (duplicate_member). Default: the election timeout of localTiming (or the peer's, if longer).
   */
  liveLinkWindowMs?: number;
  /** Bound on accepted TCP connections that have not upgraded yet; known peer addresses are spared. Default 128. */
  maxPreUpgradeConnections?: number;
  /** Shared secret for the handshake MAC (at least 16 bytes). Exactly one of secret / insecure. */
  secret?: Buffer;
  /** Skip the MAC (version, cluster and ids are still checked); logs a warning. */
  insecure?: boolean;
  tls?: TransportTlsOptions;
  /** Largest frame accepted or sent; a larger incoming frame closes the link with 1009. Default 64 KiB. */
  maxFrameBytes?: number;
  /** Bytes waiting in a peer's socket before further messages to it are dropped. Default 1 MiB. */
  maxBufferedBytesPerPeer?: number;
  handshakeTimeoutMs?: number;
  pingIntervalMs?: number;
  /** A link whose pong is not back this long after its ping is terminated. */
  pongTimeoutMs?: number;
  reconnectBackoff?: { initialMs: number; maxMs: number };
  /**
   * A peer never linked since its address was set, whose connect failed at once with nothing
   * there yet (ECONNREFUSED: a pod whose process is still starting; EHOSTUNREACH: its network
   * still being set up; see NothingThereYetErrors in peer-link.ts), is redialled every
   * `newPeerRedial.intervalMs` (jittered down to half) for `windowMs` after that, instead of
   * backing off: a pod's IP shows before its process listens, and the backoff made the link to
   * a new pod wait 95–314 ms after it listened. Default 50 ms for 30 s; windowMs 0 turns it off.
   */
  newPeerRedial?: { intervalMs: number; windowMs: number };
  /** At most one onUnreachable per peer in this interval for messages dropped while it is away. */
  unreachableReportIntervalMs?: number;
  /** More than this many bad frames from a peer within badFrameWindowMs closes its link. */
  maxBadFrames?: number;
  badFrameWindowMs?: number;
  /** Bound on connections that are accepted but not yet authenticated. */
  maxPendingHandshakes?: number;
  /**
   * Bound on those from one source address, so one host cannot take every slot. Default
   * min(8, maxPendingHandshakes). An address that discovery knows as a peer's has this many
   * slots of its own, outside maxPendingHandshakes, so strangers can never starve a peer.
   */
  maxPendingHandshakesPerHost?: number;
  /** A repeated warning (same peer, same reason) is logged at most once per this interval. */
  logRepeatIntervalMs?: number;
  /** Refusals of unauthenticated connections: at most this many log lines per logRepeatIntervalMs in all. */
  maxStrangerLogLinesPerInterval?: number;
  /** Jitter source in [0, 1); inject for deterministic tests. */
  random?: () => number;
  /**
   * The fresh-vote delay (ms) this member would still serve if the group ran before it started;
   * announced in the handshake, so a leader knows when a transfer to it can go (PeerInfo).
   */
  freshVoteDelayMs?: () => number;
  /**
   * The longest refusal and lease windows this member ever announced (its timing record, across
   * restarts); announced in the handshake, so a peer's waits that cover another leader's lease count them.
   */
  timingRecord?: () => TimingRecord;
  /** Monotonic ms for link deadlines (pings, liveness questions, bad-frame windows); default performance.now. Injectable for tests. */
  now?: () => number;
  /** Opens a dial's socket (ws's createConnection); default ws's own. Injectable for tests: they cannot make a route fail. */
  createConnection?: (options: NetConnectOpts) => Socket;
  logger: Logger;
  events: TransportEvents;
}

export type ResolvedOptions = Required<Omit<WsTransportOptions, 'secret' | 'tls' | 'peers' | 'liveLinkWindowMs' | 'freshVoteDelayMs' | 'timingRecord' | 'createConnection'>> & {
  createConnection: ((options: NetConnectOpts) => Socket) | undefined;
  liveLinkWindowMs: number;
  secret: Buffer | undefined;
  tls: TransportTlsOptions | undefined;
  peers: TransportPeer[];
};

const defaults = {
  maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
  maxBufferedBytesPerPeer: 1024 * 1024,
  handshakeTimeoutMs: 3000,
  pingIntervalMs: 2000,
  pongTimeoutMs: 3000,
  reconnectBackoff: { initialMs: 100, maxMs: 1000 },
  newPeerRedial: { intervalMs: 50, windowMs: 30_000 },
  unreachableReportIntervalMs: 1000,
  maxBadFrames: 5,
  badFrameWindowMs: 10_000,
  maxPendingHandshakes: 32,
  maxPreUpgradeConnections: 128,
  logRepeatIntervalMs: 60_000,
  maxStrangerLogLinesPerInterval: 10,
  dynamicPeers: false,
  maxPeers: 256,
};

/** How long a closing socket may wait for the other side's close frame before it is cut. */
export const MAX_CLOSE_WAIT_MS = 1000;
/**
 * Parts one message may arrive in. We never fragment; ws's default (16384) let a stranger make
 * a sub-64-KiB message cost ~1.7 MB of heap (one Buffer per one-byte part) per connection.
 */
export const MAX_FRAGMENTS_PER_MESSAGE = 64;

function invalid(message: string): ClusterError {
  return new ClusterError('INVALID_TRANSPORT_OPTIONS', message);
}

function positiveInt(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value <= 0) throw invalid(`${name} must be a positive integer, got ${value}`);
}

/** Checks every option and every relation between them once, up front. */
export function resolveTransportOptions(o: WsTransportOptions): ResolvedOptions {
  if (!isValidMemberId(o.selfId)) throw invalid(`selfId must be a member id (1..${MAX_ID_LENGTH} characters, no whitespace), got ${JSON.stringify(o.selfId)}`);
  if (!isValidClusterName(o.clusterName)) throw invalid(`clusterName must be 1..253 characters without whitespace, got ${JSON.stringify(o.clusterName)}`);
  if (typeof o.listen?.host !== 'string' || o.listen.host.length === 0) throw invalid('listen.host must be a non-empty host');
  if (!Number.isInteger(o.listen.port) || o.listen.port < 0 || o.listen.port > 65535) {
    throw invalid(`listen.port must be 0..65535, got ${o.listen.port}`);
  }
  if (o.secret !== undefined && o.insecure === true) throw invalid('secret and insecure are exclusive: drop one of them');
  if (o.secret === undefined && o.insecure !== true) throw invalid('a shared secret is required (or set insecure: true explicitly for local experiments)');
  if (o.secret !== undefined && o.secret.length < MIN_SECRET_BYTES) {
    throw invalid(`the shared secret has ${o.secret.length} bytes; at least ${MIN_SECRET_BYTES} are required`);
  }
  if (typeof o.localTiming !== 'object' || o.localTiming === null) throw invalid('localTiming {tickMs, electionTicks, maxClockDriftMs} is required');
  const timing = timingProblem(o.localTiming);
  if (timing) throw invalid(`localTiming: ${timing}`);
  const seen = new Set<string>();
  const peers: TransportPeer[] = [];
  for (const p of o.peers) {
    if (!isValidMemberId(p.id)) throw invalid(`peer id ${JSON.stringify(p.id)} is not a member id`);
    if (seen.has(p.id)) throw invalid(`peer ${p.id} is listed twice`);
    seen.add(p.id);
    if ((p.host === undefined) !== (p.port === undefined)) throw invalid(`peer ${p.id} must have both host and port, or neither`);
    if (p.port !== undefined && (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535)) {
      throw invalid(`peer ${p.id} port must be 1..65535, got ${p.port}`);
    }
    if (p.host !== undefined && p.host.length === 0) throw invalid(`peer ${p.id} host is empty`);
    if (p.id !== o.selfId) peers.push({ ...p });
  }
  const r: ResolvedOptions = {
    ...defaults,
    ...Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)),
    secret: o.secret,
    insecure: o.insecure === true,
    tls: o.tls,
    peers,
    localTiming: { ...o.localTiming },
    liveLinkWindowMs: o.liveLinkWindowMs ?? o.localTiming.tickMs * o.localTiming.electionTicks,
    random: o.random ?? Math.random,
    // Not Date.now: a wall-clock step (NTP) would fire or postpone every link deadline at once.
    now: o.now ?? (() => performance.now()),
  } as ResolvedOptions;
  r.maxPendingHandshakesPerHost = o.maxPendingHandshakesPerHost ?? Math.min(8, r.maxPendingHandshakes);
  for (const name of [
    'maxFrameBytes',
    'maxBufferedBytesPerPeer',
    'handshakeTimeoutMs',
    'pingIntervalMs',
    'pongTimeoutMs',
    'unreachableReportIntervalMs',
    'maxBadFrames',
    'badFrameWindowMs',
    'maxPendingHandshakes',
    'maxPendingHandshakesPerHost',
    'logRepeatIntervalMs',
    'maxStrangerLogLinesPerInterval',
    'liveLinkWindowMs',
    'maxPreUpgradeConnections',
    'maxPeers',
  ] as const) {
    positiveInt(name, r[name]);
  }
  if (peers.length > r.maxPeers) throw invalid(`${peers.length} peers are more than maxPeers (${r.maxPeers})`);
  if (r.maxPendingHandshakesPerHost > r.maxPendingHandshakes) {
    throw invalid(`maxPendingHandshakesPerHost (${r.maxPendingHandshakesPerHost}) must be at most maxPendingHandshakes (${r.maxPendingHandshakes})`);
  }
  if (r.maxFrameBytes < 1024 || r.maxFrameBytes > 16 * 1024 * 1024) throw invalid(`maxFrameBytes must be 1 KiB..16 MiB, got ${r.maxFrameBytes}`);
  if (r.maxBufferedBytesPerPeer < r.maxFrameBytes) {
    throw invalid(`maxBufferedBytesPerPeer (${r.maxBufferedBytesPerPeer}) must be at least maxFrameBytes (${r.maxFrameBytes}), or no full frame could ever be sent`);
  }
  positiveInt('reconnectBackoff.initialMs', r.reconnectBackoff.initialMs);
  positiveInt('reconnectBackoff.maxMs', r.reconnectBackoff.maxMs);
  if (r.reconnectBackoff.maxMs < r.reconnectBackoff.initialMs) {
    throw invalid(`reconnectBackoff.maxMs (${r.reconnectBackoff.maxMs}) must be at least initialMs (${r.reconnectBackoff.initialMs})`);
  }
  positiveInt('newPeerRedial.intervalMs', r.newPeerRedial.intervalMs);
  if (!Number.isSafeInteger(r.newPeerRedial.windowMs) || r.newPeerRedial.windowMs < 0) {
    throw invalid(`newPeerRedial.windowMs must be a non-negative integer, got ${r.newPeerRedial.windowMs}`);
  }
  if (o.tls !== undefined && (!o.tls.cert || !o.tls.key)) throw invalid('tls needs both cert and key (and usually ca)');
  return r;
}
