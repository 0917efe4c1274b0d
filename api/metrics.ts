/**
 * The Prometheus side of a member: implements `MemberMetrics` (the member pushes
 * counters and timings into it) and derives the leadership gauges from
 * `member.view()` at scrape time, so a scrape never shows a stale leader.
 * Each instance owns its own Registry (never prom-client's global one), so one
 * process or one test can hold several.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ConfChangeKind, ElectionKind, LeadershipView, MemberInfo, MemberMetrics, TickTiming } from '../cluster/interfaces.js';
import { EventLoopLagMetrics, EventLoopLagNames } from './event-loop-metrics.js';
import { ADMISSION_ROUTES, type AdmissionRoute } from './admission.js';
import { CLIENT_CLASSES, type ClientClass } from './local-networks.js';

type MessageType = Parameters<MemberMetrics['messageSent']>[0];
type DroppedReason = Parameters<MemberMetrics['messageDropped']>[0];

/** What the scrape-time gauges are read from (a `Member` satisfies it). */
export interface LeadershipSource {
  view(): LeadershipView;
  members(): MemberInfo[];
  /** Worst lateness of a raft tick since start (a Member provides it). */
  worstTickLatenessMs?(): number;
  /** Every raft tick's lateness: feeds nodejs_eventloop_lag_* (a Member provides it). */
  onTick?(listener: (tick: TickTiming) => void): () => void;
}

/** Slots in use by route and client class, read at scrape time (the API server provides it). */
export type AdmissionSource = () => Record<AdmissionRoute, Readonly<Record<ClientClass, number>>>;

export interface ElectorMetricsOptions {
  /** Add prom-client's process and Node.js metrics (process_*, nodejs_*). Default true. */
  defaultMetrics?: boolean;
  /** Labels added to every series (for example {cluster: "orders"}). */
  defaultLabels?: Record<string, string>;
}

const ELECTION_KINDS: readonly ElectionKind[] = ['pre-vote', 'vote', 'transfer'];
const CONF_CHANGE_KINDS: readonly ConfChangeKind[] = ['add_learner', 'add_voter', 'joint', 'leave_joint', 'remove'];

/** From losing a leader to knowing a new one: milliseconds on a graceful stop, about one election timeout on a crash. */
const ELECTION_DURATION_BUCKETS_S = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30];
/** write + fsync + rename + directory fsync of a small file. */
const PERSIST_DURATION_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

/**
 * prom-client has no switch for one default metric: with this sampling period (the largest a
 * timer takes, about 25 days) its event-loop timer never wakes the process, and its series are
 * replaced by ones the raft tick feeds (event-loop-metrics.ts).
 */
const NeverMs = 2 ** 31 - 1;

/** A counter's series from a map of totals (sorted by label, so the exposition order is stable). */
function copyCounts(totals: ReadonlyMap<string, number>, counter: Counter<'type'>): void {
  counter.reset();
  for (const type of [...totals.keys()].sort()) counter.inc({ type }, totals.get(type)!);
}

export class ElectorMetrics implements MemberMetrics {
  readonly registry: Registry;
  private source: LeadershipSource | null = null;

  private readonly isLeader: Gauge;
  private readonly hasLeader: Gauge;
  private readonly term: Gauge;
  private readonly leaseRemaining: Gauge;
  private readonly tickLateness: Gauge;
  private readonly peerConnectedGauge: Gauge<'peer'>;
  private readonly leaderChanges: Counter;
  private readonly votersGauge: Gauge;
  private readonly learnersGauge: Gauge;
  private readonly confChanges: Counter<'type'>;
  private readonly electionsStarted: Counter<'kind'>;
  private readonly electionDurationHistogram: Histogram;
  private readonly messagesSent: Counter<'type'>;
  private readonly messagesReceived: Counter<'type'>;
  private readonly sentByType = new Map<string, number>();
  private readonly receivedByType = new Map<string, number>();
  private readonly messagesDropped: Counter<'reason'>;
  private readonly persistDuration: Histogram;
  private readonly apiRefusedCounter: Counter<'route' | 'client'>;
  private readonly apiIdleClosedCounter: Counter<'client'>;
  private readonly apiInUse: Gauge<'route' | 'client'>;
  private admission: AdmissionSource | null = null;
  private readonly eventLoop: EventLoopLagMetrics | null = null;
  private untrackTicks: (() => void) | null = null;

  constructor(options: ElectorMetricsOptions = {}) {
    this.registry = new Registry();
    if (options.defaultLabels) this.registry.setDefaultLabels(options.defaultLabels);
    const registers = [this.registry];
    // Arrow functions keep `this` bound to the instance inside prom-client's collect().
    const view = (): LeadershipView | null => this.source?.view() ?? null;

    this.isLeader = new Gauge({
      name: 'raft_elector_is_leader',
      help: 'Whether this member is the leader holding a valid lease (1) or not (0); as etcd_server_is_leader.',
      registers,
      collect: () => this.isLeader.set(view()?.isLeader ? 1 : 0),
    });
    this.hasLeader = new Gauge({
      name: 'raft_elector_has_leader',
      help: 'Whether this member knows a leader (1) or not (0); as etcd_server_has_leader.',
      registers,
      collect: () => this.hasLeader.set((view()?.leader ?? null) !== null ? 1 : 0),
    });
    this.term = new Gauge({
      name: 'raft_elector_term',
      help: 'The current raft term, which is the fencing token handed to the app.',
      registers,
      collect: () => this.term.set(view()?.term ?? 0),
    });
    this.leaseRemaining = new Gauge({
      name: 'raft_elector_lease_remaining_seconds',
      help: 'Remaining leader lease in seconds; 0 on followers and on a leader without a valid lease.',
      registers,
      collect: () => this.leaseRemaining.set((view()?.leaseExpiresInMs ?? 0) / 1000),
    });
    this.tickLateness = new Gauge({
      name: 'raft_elector_tick_lateness_max_seconds',
      help: 'Worst lateness of a raft tick against its schedule since start (a busy event loop delays elections).',
      registers,
      collect: () => this.tickLateness.set((this.source?.worstTickLatenessMs?.() ?? 0) / 1000),
    });
    this.peerConnectedGauge = new Gauge({
      name: 'raft_elector_peer_connected',
      help: 'Whether the transport to a peer is connected (1) or not (0).',
      labelNames: ['peer'],
      registers,
      collect: () => this.collectPeers(),
    });
    this.leaderChanges = new Counter({
      name: 'raft_elector_leader_changes_seen_total',
      help: 'Number of leader changes seen by this member; as etcd_server_leader_changes_seen_total.',
      registers,
    });
    this.votersGauge = new Gauge({
      name: 'raft_elector_voters',
      help: 'Voters in the configuration in force (both halves while joint), as this member applied it.',
      registers,
    });
    this.learnersGauge = new Gauge({
      name: 'raft_elector_learners',
      help: 'Learners in the configuration in force, as this member applied it.',
      registers,
    });
    this.confChanges = new Counter({
      name: 'raft_elector_conf_changes_total',
      help: 'Configuration changes this member applied, by type (add_learner, add_voter, remove, joint, leave_joint).',
      labelNames: ['type'],
      registers,
    });
    for (const type of CONF_CHANGE_KINDS) this.confChanges.inc({ type }, 0);
    this.electionsStarted = new Counter({
      name: 'raft_elector_elections_started_total',
      help: 'Campaigns this member started, by kind (pre-vote, vote, transfer).',
      labelNames: ['kind'],
      registers,
    });
    // Zero series for every kind, so rate() works before the first election of that kind.
    for (const kind of ELECTION_KINDS) this.electionsStarted.inc({ kind }, 0);
    this.electionDurationHistogram = new Histogram({
      name: 'raft_elector_election_duration_seconds',
      help: 'Time from losing a leader to knowing a new one.',
      buckets: ELECTION_DURATION_BUCKETS_S,
      registers,
    });
    // Counted in plain maps and handed to prom-client at scrape time: a labelled inc() hashes its
    // labels, twice per heartbeat on an idle member.
    this.messagesSent = new Counter({
      name: 'raft_elector_messages_sent_total',
      help: 'Raft messages handed to the transport, by message type.',
      labelNames: ['type'],
      registers,
      collect: () => copyCounts(this.sentByType, this.messagesSent),
    });
    this.messagesReceived = new Counter({
      name: 'raft_elector_messages_received_total',
      help: 'Raft messages received from peers, by message type.',
      labelNames: ['type'],
      registers,
      collect: () => copyCounts(this.receivedByType, this.messagesReceived),
    });
    this.messagesDropped = new Counter({
      name: 'raft_elector_messages_dropped_total',
      help: 'Raft messages dropped, by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.persistDuration = new Histogram({
      name: 'raft_elector_state_persist_duration_seconds',
      help: 'Time to write, fsync and rename the durable state (term, vote, commit).',
      buckets: PERSIST_DURATION_BUCKETS_S,
      registers,
    });
    this.apiRefusedCounter = new Counter({
      name: 'raft_elector_api_refused_total',
      help: 'API connections, watch streams and long-polls refused because their slots were full, by route (connection, long_poll, watch) and client (local, stranger).',
      labelNames: ['route', 'client'],
      registers,
    });
    this.apiIdleClosedCounter = new Counter({
      name: 'raft_elector_api_idle_connections_closed_total',
      help: 'API connections closed because they sent no request within the idle timeout, by client (local, stranger).',
      labelNames: ['client'],
      registers,
    });
    this.apiInUse = new Gauge({
      name: 'raft_elector_api_slots_in_use',
      help: 'API connections, watch streams and waiting long-polls open now, by route and client.',
      labelNames: ['route', 'client'],
      registers,
      collect: () => {
        const counts = this.admission?.();
        for (const route of ADMISSION_ROUTES) {
          for (const client of CLIENT_CLASSES) this.apiInUse.set({ route, client }, counts?.[route][client] ?? 0);
        }
      },
    });
    // Zero series for every route and class, so an alert on increase() sees the first refusal.
    for (const route of ADMISSION_ROUTES) for (const client of CLIENT_CLASSES) this.apiRefusedCounter.inc({ route, client }, 0);
    for (const client of CLIENT_CLASSES) this.apiIdleClosedCounter.inc({ client }, 0);
    // prom-client samples event-loop delay on a timer of its own (10 ms by default): wake-ups an
    // idle sidecar pays on top of its tick (docs/benchmarks.md). The raft tick feeds those series instead.
    if (options.defaultMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: NeverMs });
      for (const name of EventLoopLagNames) this.registry.removeSingleMetric(name);
      this.eventLoop = new EventLoopLagMetrics(this.registry);
    }
  }

  /** Read the leadership gauges from this member at every scrape, and its ticks' lateness as they run. */
  track(source: LeadershipSource): void {
    this.source = source;
    this.untrackTicks?.();
    const eventLoop = this.eventLoop;
    this.untrackTicks = eventLoop && source.onTick ? source.onTick((t) => eventLoop.record(t.lateMs)) : null;
  }

  /** Read the API's slot counts at every scrape. */
  trackAdmission(source: AdmissionSource): void {
    this.admission = source;
  }

  apiRefused(route: AdmissionRoute, client: ClientClass): void {
    this.apiRefusedCounter.inc({ route, client });
  }

  apiIdleConnectionClosed(client: ClientClass): void {
    this.apiIdleClosedCounter.inc({ client });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text exposition of every metric in this registry. */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }

  messageSent(type: MessageType): void {
    this.sentByType.set(type, (this.sentByType.get(type) ?? 0) + 1);
  }

  messageReceived(type: MessageType): void {
    this.receivedByType.set(type, (this.receivedByType.get(type) ?? 0) + 1);
  }

  messageDropped(reason: DroppedReason): void {
    this.messagesDropped.inc({ reason });
  }

  electionStarted(kind: ElectionKind): void {
    this.electionsStarted.inc({ kind });
  }

  electionDuration(seconds: number): void {
    if (Number.isFinite(seconds) && seconds >= 0) this.electionDurationHistogram.observe(seconds);
  }

  leaderChanged(): void {
    this.leaderChanges.inc();
  }

  statePersistDuration(seconds: number): void {
    if (Number.isFinite(seconds) && seconds >= 0) this.persistDuration.observe(seconds);
  }

  membershipChanged(counts: { voters: number; learners: number }): void {
    this.votersGauge.set(counts.voters);
    this.learnersGauge.set(counts.learners);
  }

  confChangeApplied(type: ConfChangeKind): void {
    this.confChanges.inc({ type });
  }

  peerConnected(peerId: string, connected: boolean): void {
    this.peerConnectedGauge.set({ peer: peerId }, connected ? 1 : 0);
  }

  /** With a tracked member, the peers it lists now (sorted, self excluded) replace what was pushed. */
  private collectPeers(): void {
    if (!this.source) return;
    const self = this.source.view().self;
    const peers = this.source
      .members()
      .filter((m) => m.id !== self)
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    this.peerConnectedGauge.reset();
    for (const peer of peers) this.peerConnectedGauge.set({ peer: peer.id }, peer.connected ? 1 : 0);
  }
}
