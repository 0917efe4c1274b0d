import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { TickTiming } from '../cluster/interfaces.js';
import { FakeMember } from './fake-member.js';
import { ElectorMetrics } from './metrics.js';
import { createApiServer, type ApiServer } from './server.js';

// ---------- a strict parser of the Prometheus text format 0.0.4 ----------

type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Family {
  name: string;
  type: MetricType;
  help: string | undefined;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
// Prometheus reads values with Go's strconv.ParseFloat: decimal floats, and inf/infinity/nan in any case
// (prom-client writes an empty event-loop histogram's mean as "Nan").
const FLOAT = /^[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)$/;
const SPECIAL = /^([+-]?)(inf|infinity|nan)$/i;

function parseValue(raw: string, line: number): number {
  const special = SPECIAL.exec(raw);
  if (special) {
    if (special[2]?.toLowerCase() === 'nan') return NaN;
    return special[1] === '-' ? -Infinity : Infinity;
  }
  if (!FLOAT.test(raw)) throw new Error(`line ${line}: bad value ${JSON.stringify(raw)}`);
  return Number(raw);
}

/** Parses and validates; throws naming the line for anything a Prometheus server would reject. */
function parsePrometheusText(text: string): Map<string, Family> {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  const families = new Map<string, Family>();
  const seenSeries = new Set<string>();
  const finished = new Set<string>(); // families whose samples ended (samples must be contiguous)
  let current: Family | null = null;
  const lines = text.slice(0, -1).split('\n');
  lines.forEach((raw, index) => {
    const n = index + 1;
    if (raw === '') return;
    if (raw.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(raw);
      if (!m) return; // a plain comment
      const [, keyword, name = '', rest = ''] = m;
      if (!METRIC_NAME.test(name)) throw new Error(`line ${n}: bad metric name ${JSON.stringify(name)}`);
      let family = families.get(name);
      if (family && finished.has(name)) throw new Error(`line ${n}: ${keyword} for ${name} after its samples ended`);
      if (!family) {
        family = { name, type: 'untyped', help: undefined, samples: [] };
        families.set(name, family);
        (family as Family & { typed?: boolean }).typed = false;
      }
      if (current && current !== family) finished.add(current.name);
      current = family;
      if (keyword === 'HELP') {
        if (family.help !== undefined) throw new Error(`line ${n}: second HELP for ${name}`);
        if (/\\[^\\n]/.test(rest.replace(/\\\\/g, ''))) throw new Error(`line ${n}: bad escape in HELP`);
        family.help = rest.replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
      } else {
        const typed = family as Family & { typed?: boolean };
        if (typed.typed) throw new Error(`line ${n}: second TYPE for ${name}`);
        if (family.samples.length > 0) throw new Error(`line ${n}: TYPE for ${name} after its samples`);
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) throw new Error(`line ${n}: bad type ${rest}`);
        family.type = rest as MetricType;
        typed.typed = true;
      }
      return;
    }
    const sample = parseSampleLine(raw, n);
    const family = familyOf(sample.name, families);
    if (!family) throw new Error(`line ${n}: sample ${sample.name} has no TYPE before it`);
    if (finished.has(family.name)) throw new Error(`line ${n}: samples of ${family.name} are not contiguous`);
    if (current && current !== family) finished.add(current.name);
    current = family;
    const key = `${sample.name}${JSON.stringify(Object.entries(sample.labels).sort())}`;
    if (seenSeries.has(key)) throw new Error(`line ${n}: duplicate series ${key}`);
    seenSeries.add(key);
    if (family.type === 'counter' && !(sample.value >= 0)) throw new Error(`line ${n}: counter ${sample.name} is ${sample.value}`);
    family.samples.push(sample);
  });
  for (const family of families.values()) if (family.type === 'histogram') checkHistogram(family);
  return families;
}

function familyOf(sampleName: string, families: Map<string, Family>): Family | undefined {
  const exact = families.get(sampleName);
  if (exact && exact.type !== 'histogram') return exact;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!sampleName.endsWith(suffix)) continue;
    const base = families.get(sampleName.slice(0, -suffix.length));
    if (base && (base.type === 'histogram' || (base.type === 'summary' && suffix !== '_bucket'))) return base;
  }
  return undefined;
}

function parseSampleLine(line: string, n: number): Sample {
  const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
  if (!nameMatch) throw new Error(`line ${n}: no metric name in ${JSON.stringify(line)}`);
  const name = nameMatch[0];
  let i = name.length;
  const labels: Record<string, string> = {};
  if (line[i] === '{') {
    i++;
    while (line[i] !== '}') {
      const labelMatch = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(i));
      if (!labelMatch) throw new Error(`line ${n}: bad label name at column ${i}`);
      const label = labelMatch[0];
      if (!LABEL_NAME.test(label) || label in labels) throw new Error(`line ${n}: bad or repeated label ${label}`);
      i += label.length;
      if (line[i] !== '=' || line[i + 1] !== '"') throw new Error(`line ${n}: expected =" after ${label}`);
      i += 2;
      let value = '';
      for (;;) {
        const c = line[i];
        if (c === undefined) throw new Error(`line ${n}: unterminated label value`);
        if (c === '"') break;
        if (c === '\\') {
          const e = line[i + 1];
          if (e === '\\') value += '\\';
          else if (e === '"') value += '"';
          else if (e === 'n') value += '\n';
          else throw new Error(`line ${n}: bad escape \\${e ?? ''} in label ${label}`);
          i += 2;
        } else {
          value += c;
          i++;
        }
      }
      labels[label] = value;
      i++; // closing quote
      if (line[i] === ',') i++;
      else if (line[i] !== '}') throw new Error(`line ${n}: expected , or } after label ${label}`);
    }
    i++;
  }
  if (line[i] !== ' ') throw new Error(`line ${n}: expected a space before the value`);
  const parts = line.slice(i + 1).split(' ');
  if (parts.length < 1 || parts.length > 2) throw new Error(`line ${n}: expected value [timestamp]`);
  const value = parseValue(parts[0] ?? '', n);
  if (parts[1] !== undefined && !/^-?\d+$/.test(parts[1])) throw new Error(`line ${n}: bad timestamp`);
  return { name, labels, value };
}

function checkHistogram(family: Family): void {
  const groups = new Map<string, { buckets: [number, number][]; count?: number; sum?: number }>();
  for (const s of family.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const group = groups.get(key) ?? { buckets: [] };
    groups.set(key, group);
    if (s.name.endsWith('_bucket')) {
      if (le === undefined) throw new Error(`${s.name}: bucket without le`);
      group.buckets.push([parseValue(le, 0), s.value]);
    } else if (s.name.endsWith('_count')) group.count = s.value;
    else group.sum = s.value;
  }
  for (const [key, g] of groups) {
    const where = `${family.name}${key}`;
    if (g.count === undefined || g.sum === undefined) throw new Error(`${where}: missing _count or _sum`);
    for (let i = 1; i < g.buckets.length; i++) {
      const [prevLe, prevCount] = g.buckets[i - 1] ?? [0, 0];
      const [le, count] = g.buckets[i] ?? [0, 0];
      if (!(le > prevLe)) throw new Error(`${where}: le not increasing`);
      if (count < prevCount) throw new Error(`${where}: bucket counts not cumulative`);
    }
    const last = g.buckets[g.buckets.length - 1];
    if (!last || last[0] !== Infinity) throw new Error(`${where}: no le="+Inf" bucket`);
    if (last[1] !== g.count) throw new Error(`${where}: +Inf bucket ${last[1]} differs from _count ${g.count}`);
  }
}

function value(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const family of families.values()) {
    for (const s of family.samples) {
      if (s.name !== name) continue;
      if (Object.keys(labels).length !== Object.keys(s.labels).length) continue;
      if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value;
    }
  }
  return undefined;
}

// ---------- the parser is strict ----------

describe('the test parser', () => {
  const ok = '# HELP a_total Some.\n# TYPE a_total counter\na_total{x="1"} 2\n';
  it('accepts a well-formed exposition', () => {
    expect(value(parsePrometheusText(ok), 'a_total', { x: '1' })).toBe(2);
  });
  it.each([
    ['no trailing newline', ok.slice(0, -1), /end with a newline/],
    ['a sample without TYPE', 'b 1\n', /no TYPE/],
    ['a bad label escape', '# TYPE a gauge\na{x="\\t"} 1\n', /bad escape/],
    ['a duplicate series', '# TYPE a gauge\na{x="1"} 1\na{x="1"} 2\n', /duplicate series/],
    ['a bad value', '# TYPE a gauge\na 1,5\n', /bad value/],
    ['a word for a value', '# TYPE a gauge\na none\n', /bad value/],
    ['a negative counter', '# TYPE a counter\na -1\n', /counter a is -1/],
    ['a second TYPE', '# TYPE a gauge\n# TYPE a gauge\na 1\n', /second TYPE/],
    ['split samples', '# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{x="2"} 1\n', /not contiguous/],
    [
      'non-cumulative buckets',
      '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
      /not cumulative/,
    ],
    ['a +Inf bucket different from _count', '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 1\n', /differs from _count/],
  ])('rejects %s', (_what, text, reason) => {
    expect(() => parsePrometheusText(text)).toThrow(reason);
  });
});

// ---------- the metrics ----------

const servers: ApiServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function startWithMetrics(): Promise<{ member: FakeMember; metrics: ElectorMetrics; scrape: () => Promise<Map<string, Family>> }> {
  const metrics = new ElectorMetrics();
  const member = new FakeMember('pod-a', [
    { id: 'pod-c', address: 'c:4041', connected: false, role: 'follower' },
    { id: 'pod-b', address: 'b:4041', connected: true, role: 'follower' },
  ]);
  member.metrics = metrics;
  const server = createApiServer({ member, metrics, logger: pino({ level: 'silent' }) });
  servers.push(server);
  const { port } = await server.listen('127.0.0.1', 0);
  const scrape = async (): Promise<Map<string, Family>> => {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    return parsePrometheusText(await res.text());
  };
  return { member, metrics, scrape };
}

const NAMES: [string, MetricType][] = [
  ['raft_elector_is_leader', 'gauge'],
  ['raft_elector_has_leader', 'gauge'],
  ['raft_elector_term', 'gauge'],
  ['raft_elector_leader_changes_seen_total', 'counter'],
  ['raft_elector_elections_started_total', 'counter'],
  ['raft_elector_election_duration_seconds', 'histogram'],
  ['raft_elector_lease_remaining_seconds', 'gauge'],
  ['raft_elector_peer_connected', 'gauge'],
  ['raft_elector_messages_sent_total', 'counter'],
  ['raft_elector_messages_received_total', 'counter'],
  ['raft_elector_messages_dropped_total', 'counter'],
  ['raft_elector_state_persist_duration_seconds', 'histogram'],
  ['raft_elector_voters', 'gauge'],
  ['raft_elector_learners', 'gauge'],
  ['raft_elector_conf_changes_total', 'counter'],
  ['process_cpu_seconds_total', 'counter'],
  ['nodejs_eventloop_lag_seconds', 'gauge'],
];

describe('GET /metrics', () => {
  it('exposes every named metric, with its type and help, in valid text format', async () => {
    const { scrape } = await startWithMetrics();
    const families = await scrape();
    for (const [name, type] of NAMES) {
      const family = families.get(name);
      expect({ name, type: family?.type }).toEqual({ name, type });
      expect(family?.help).toBeTruthy();
    }
    for (const kind of ['pre-vote', 'vote', 'transfer']) {
      expect(value(families, 'raft_elector_elections_started_total', { kind })).toBe(0);
    }
    for (const type of ['add_learner', 'add_voter', 'joint', 'leave_joint', 'remove']) {
      expect(value(families, 'raft_elector_conf_changes_total', { type })).toBe(0);
    }
  });

  it('shows the configuration the member reports: voters, learners, conf changes by type', async () => {
    const { metrics, scrape } = await startWithMetrics();
    metrics.membershipChanged({ voters: 3, learners: 2 });
    metrics.confChangeApplied('add_learner');
    metrics.confChangeApplied('add_learner');
    metrics.confChangeApplied('joint');
    const f = await scrape();
    expect(value(f, 'raft_elector_voters')).toBe(3);
    expect(value(f, 'raft_elector_learners')).toBe(2);
    expect(value(f, 'raft_elector_conf_changes_total', { type: 'add_learner' })).toBe(2);
    expect(value(f, 'raft_elector_conf_changes_total', { type: 'joint' })).toBe(1);
    expect(value(f, 'raft_elector_conf_changes_total', { type: 'remove' })).toBe(0);
  });

  it('derives the leadership gauges from the view at scrape time', async () => {
    const { member, scrape } = await startWithMetrics();
    let f = await scrape();
    expect(value(f, 'raft_elector_is_leader')).toBe(0);
    expect(value(f, 'raft_elector_has_leader')).toBe(0);
    expect(value(f, 'raft_elector_term')).toBe(0);
    expect(value(f, 'raft_elector_lease_remaining_seconds')).toBe(0);
    expect(f.get('raft_elector_peer_connected')?.samples).toEqual([
      { name: 'raft_elector_peer_connected', labels: { peer: 'pod-b' }, value: 1 },
      { name: 'raft_elector_peer_connected', labels: { peer: 'pod-c' }, value: 0 },
    ]);

    member.update({ leader: 'pod-a', term: 9, role: 'Leader', isLeader: true, leaseExpiresInMs: 850 });
    f = await scrape();
    expect(value(f, 'raft_elector_is_leader')).toBe(1);
    expect(value(f, 'raft_elector_has_leader')).toBe(1);
    expect(value(f, 'raft_elector_term')).toBe(9);
    expect(value(f, 'raft_elector_lease_remaining_seconds')).toBe(0.85);
  });

  it('shows the counters and histograms move as the member reports', async () => {
    const { member, metrics, scrape } = await startWithMetrics();
    const before = await scrape();
    expect(value(before, 'raft_elector_leader_changes_seen_total')).toBe(0);

    member.update({ leader: 'pod-b', term: 1 });
    member.update({ leader: null });
    member.update({ leader: 'pod-c', term: 2 });
    metrics.electionStarted('pre-vote');
    metrics.electionStarted('pre-vote');
    metrics.electionStarted('vote');
    metrics.electionDuration(0.3);
    metrics.electionDuration(4);
    metrics.messageSent('MsgHeartbeat');
    metrics.messageSent('MsgHeartbeat');
    metrics.messageReceived('MsgHeartbeatResp');
    metrics.messageDropped('not_connected');
    metrics.statePersistDuration(0.002);
    metrics.peerConnected('pod-z', true); // replaced at scrape by the member's own list

    const after = await scrape();
    expect(value(after, 'raft_elector_leader_changes_seen_total')).toBe(2);
    expect(value(after, 'raft_elector_elections_started_total', { kind: 'pre-vote' })).toBe(2);
    expect(value(after, 'raft_elector_elections_started_total', { kind: 'vote' })).toBe(1);
    expect(value(after, 'raft_elector_elections_started_total', { kind: 'transfer' })).toBe(0);
    expect(value(after, 'raft_elector_election_duration_seconds_count')).toBe(2);
    expect(value(after, 'raft_elector_election_duration_seconds_sum')).toBeCloseTo(4.3);
    expect(value(after, 'raft_elector_election_duration_seconds_bucket', { le: '0.5' })).toBe(1);
    expect(value(after, 'raft_elector_messages_sent_total', { type: 'MsgHeartbeat' })).toBe(2);
    expect(value(after, 'raft_elector_messages_received_total', { type: 'MsgHeartbeatResp' })).toBe(1);
    expect(value(after, 'raft_elector_messages_dropped_total', { reason: 'not_connected' })).toBe(1);
    expect(value(after, 'raft_elector_state_persist_duration_seconds_count')).toBe(1);
    expect(value(after, 'raft_elector_peer_connected', { peer: 'pod-z' })).toBeUndefined();
  });

  it('keeps one registry per server, so two in one process do not mix', async () => {
    const one = await startWithMetrics();
    const two = await startWithMetrics();
    one.member.update({ leader: 'pod-b', term: 1 });
    expect(value(await one.scrape(), 'raft_elector_leader_changes_seen_total')).toBe(1);
    expect(value(await two.scrape(), 'raft_elector_leader_changes_seen_total')).toBe(0);
  });

  it('nodejs_eventloop_lag_* read the raft ticks\' lateness since the last scrape', async () => {
    const ticks = new Set<(t: TickTiming) => void>();
    const member = Object.assign(new FakeMember('pod-a'), {
      onTick: (l: (t: TickTiming) => void) => {
        ticks.add(l);
        return () => ticks.delete(l);
      },
    });
    const metrics = new ElectorMetrics();
    metrics.track(member);
    for (const lateMs of [2, 5, 250]) for (const l of ticks) l({ lateMs, nextInMs: 100 });
    const f = parsePrometheusText(await metrics.scrape());
    expect(f.get('nodejs_eventloop_lag_max_seconds')?.type).toBe('gauge');
    expect(value(f, 'nodejs_eventloop_lag_max_seconds')).toBeCloseTo(0.25, 3);
    expect(value(f, 'nodejs_eventloop_lag_min_seconds')).toBeCloseTo(0.002, 3);
    expect(value(f, 'nodejs_eventloop_lag_p50_seconds')).toBeCloseTo(0.005, 3);
    expect(value(f, 'nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);
    // Reset at every scrape, as prom-client's are: no tick since, no figure.
    expect(value(parsePrometheusText(await metrics.scrape()), 'nodejs_eventloop_lag_max_seconds')).toBeNaN();
    for (const l of ticks) l({ lateMs: 0, nextInMs: 100 });
    expect(value(parsePrometheusText(await metrics.scrape()), 'nodejs_eventloop_lag_max_seconds')).toBeLessThan(0.001);
  });

  it('without a tracked member, keeps the peer gauges the member pushed and reports no leader', async () => {
    const metrics = new ElectorMetrics({ defaultMetrics: false, defaultLabels: { cluster: 'orders' } });
    metrics.peerConnected('pod-b', true);
    metrics.peerConnected('pod-c', false);
    const f = parsePrometheusText(await metrics.scrape());
    expect(value(f, 'raft_elector_peer_connected', { peer: 'pod-b', cluster: 'orders' })).toBe(1);
    expect(value(f, 'raft_elector_peer_connected', { peer: 'pod-c', cluster: 'orders' })).toBe(0);
    expect(value(f, 'raft_elector_has_leader', { cluster: 'orders' })).toBe(0);
    expect(f.has('process_cpu_seconds_total')).toBe(false);
  });
});
