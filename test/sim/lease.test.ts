/**
 * Lease safety over many schedules: three real RaftMembers (the driver, the lease, the
 * transfer and forget paths) on an in-memory network with random delays, under fake
 * timers so a schedule replays exactly. Every 10 ms of simulated time every member's view
 * is sampled (each member's clock and timers run at their own rate, within the drift bound):
 * at most one may answer isLeader, and no term may have two leaders (also with members on
 * different timing settings, restarted one at a time with new ones). After the
 * chaos the network heals and one leader must claim within a bound.
 */
import fc from 'fast-check';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { PeerTiming } from '../../cluster/interfaces.js';
import { RaftMember } from '../../cluster/member.js';
import { MemoryTimingRecord } from '../../cluster/timing-record.js';
import { seededRandom } from '../../raft/index.js';
import { MemoryStore } from '../harness/member-bus.js';
import { LeaseGroup, StepMs, syncsInBackground } from './lease-group.js';

const Ids = ['a', 'b', 'c'];
const TickMs = 100;
const ElectionTicks = 10;
const Uniform: PeerTiming = { tickMs: TickMs, electionTicks: ElectionTicks, maxClockDriftMs: 100 };
/**
 * Settings a rolling upgrade may mix. Each drift bound is at least 11% of its refusal window
 * ((electionTicks - 1) * tickMs), above the 10.5% the default clock rates can drift apart.
 */
const Timings: readonly PeerTiming[] = [
  Uniform,
  { tickMs: 20, electionTicks: 10, maxClockDriftMs: 20 },
  { tickMs: 50, electionTicks: 8, maxClockDriftMs: 40 },
  { tickMs: 30, electionTicks: 20, maxClockDriftMs: 65 },
];
/** LEASE_SIM_TRACE=/path/file writes every member's log there (simulated timestamps), to study a replay. */
const silent = process.env.LEASE_SIM_TRACE
  ? pino({ level: 'debug' }, pino.destination({ dest: process.env.LEASE_SIM_TRACE, sync: true }))
  : pino({ level: 'silent' });
/**
 * Each member's clock runs at its own rate, within ±maxRateSkew of real time; timers run on the
 * same clock. The default keeps any two members within 10.5% of each other, inside the 100 ms
 * over 800 ms (12.5%) that maxClockDriftMs tolerates.
 */
const maxRateSkew = Number(process.env.LEASE_SIM_DRIFT ?? 0.05);
/** Read before any fake timer: a fresh seed per run unless one is given. */
const defaultSeed = Date.now() % 1_000_000_000;

type Who = 'leader' | 'follower' | 'any';
type Action =
  | { kind: 'wait'; ms: number }
  | { kind: 'isolate'; who: Who; forMs: number }
  | { kind: 'crash'; who: Who; downMs: number }
  | { kind: 'transfer'; thenIsolateAfterMs: number | null }
  | { kind: 'podGone' }
  /** A rolling-upgrade step: stop one member and start it again with other settings. */
  | { kind: 'retime'; who: Who; timing: number }
  /** Hand leadership to a chosen member (the slowest one may lead), then maybe cut it off. */
  | { kind: 'handTo'; index: number; thenIsolateAfterMs: number | null }
  /** Restart a follower (maybe with other settings), then hand leadership to it inside its restart delay. */
  | { kind: 'restartThenHandTo'; index: number; timing: number | null; afterMs: number }
  /** Hand leadership to a follower and kill it mid-transfer; it comes back after downMs. */
  | { kind: 'handToThenRestart'; index: number; afterMs: number; downMs: number };

const whoArb = fc.constantFrom<Who>('leader', 'follower', 'any');
const actionArb: fc.Arbitrary<Action> = fc.oneof(
  fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 10, max: 2_500 }) }),
  fc.record({ kind: fc.constant('isolate' as const), who: whoArb, forMs: fc.integer({ min: 50, max: 3_000 }) }),
  fc.record({ kind: fc.constant('crash' as const), who: whoArb, downMs: fc.integer({ min: 0, max: 3_000 }) }),
  fc.record({
    kind: fc.constant('transfer' as const),
    // The old leader may lose its links just after the handover starts: it must not keep
    // claiming on its old lease while the target takes over.
    thenIsolateAfterMs: fc.option(fc.integer({ min: 0, max: 40 }), { nil: null }),
  }),
  fc.record({ kind: fc.constant('podGone' as const) }),
);
const mixedActionArb: fc.Arbitrary<Action> = fc.oneof(
  actionArb,
  fc.record({ kind: fc.constant('retime' as const), who: whoArb, timing: fc.nat({ max: Timings.length - 1 }) }),
  fc.record({
    kind: fc.constant('handTo' as const),
    index: fc.nat({ max: Ids.length - 1 }),
    thenIsolateAfterMs: fc.option(fc.integer({ min: 300, max: 1_500 }), { nil: null }),
  }),
);

/** Restarts around handovers (not in mixedActionArb, so the seeds found with it replay unchanged). */
const restartActionArb: fc.Arbitrary<Action> = fc.oneof(
  mixedActionArb,
  fc.record({
    kind: fc.constant('restartThenHandTo' as const),
    index: fc.nat({ max: Ids.length - 1 }),
    timing: fc.option(fc.nat({ max: Timings.length - 1 }), { nil: null }),
    afterMs: fc.integer({ min: 0, max: 400 }),
  }),
  fc.record({
    kind: fc.constant('handToThenRestart' as const),
    index: fc.nat({ max: Ids.length - 1 }),
    afterMs: fc.integer({ min: 0, max: 60 }),
    downMs: fc.integer({ min: 0, max: 600 }),
  }),
);

class Group extends LeaseGroup {
  readonly stores = new Map(Ids.map((id) => [id, new MemoryStore(id, this.bus, this.backgroundSync)]));
  readonly records = new Map(Ids.map((id) => [id, new MemoryTimingRecord()]));
  /** The settings each member runs with at its next start. */
  readonly timings = new Map<string, PeerTiming>(Ids.map((id) => [id, Uniform]));
  private readonly restarts = new Map<string, number>();
  private readonly rates = new Map<string, number>();

  constructor(seed: number, options: { syncInBackground?: boolean } = {}) {
    super(seed, options);
    const skew = seededRandom(seed ^ 0x27d4eb2d);
    for (const id of Ids) this.rates.set(id, 1 - maxRateSkew + (2 * maxRateSkew * skew.nextInt(1001)) / 1000);
  }

  async start(id: string): Promise<void> {
    const n = (this.restarts.get(id) ?? 0) + 1;
    this.restarts.set(id, n);
    const rate = this.rates.get(id)!;
    const origin = Date.now();
    const timing = this.timings.get(id)!;
    const member: RaftMember = new RaftMember({
      id,
      bootstrap: { voters: Ids },
      ...timing,
      heartbeatTicks: 1,
      store: this.stores.get(id)!,
      timingRecord: this.records.get(id)!,
      logger: silent,
      random: seededRandom(this.seed * 31 + Ids.indexOf(id) * 7 + n * 1009),
      // A process's monotonic clock and its timers run at the same (skewed) rate.
      monotonicNowMs: () => origin + (Date.now() - origin) * rate,
      timers: {
        setTimeout: (callback, delayMs) => setTimeout(callback, delayMs / rate),
        clearTimeout: (handle) => clearTimeout(handle),
      },
      // As cmd/raft-elector.ts: the handshake announces the longest windows of the timing record.
      createTransport: (events) => this.bus.transport(id, Ids.filter((p) => p !== id), events, timing, () => member.announcedTimingRecord()),
    });
    this.members.set(id, member);
    await member.start();
  }

  pick(who: Who, rnd: () => number): string | undefined {
    const running = [...this.members.keys()].sort();
    const leader = running.find((id) => this.members.get(id)!.view().role === 'Leader');
    const pool = who === 'leader' ? (leader ? [leader] : []) : who === 'follower' ? running.filter((id) => id !== leader) : running;
    return pool[rnd() % Math.max(pool.length, 1)];
  }
}

async function runSchedule(
  seed: number,
  actions: Action[],
  initialTimings: readonly PeerTiming[] = [],
  options: { syncInBackground?: boolean } = {},
): Promise<{ samples: number; claims: number; terms: number }> {
  const g = new Group(seed, options);
  const choose = seededRandom(seed);
  const rnd = () => choose.nextInt(1_000_000);
  Ids.forEach((id, i) => g.timings.set(id, initialTimings[i] ?? Uniform));
  try {
    for (const id of Ids) await g.start(id);
    await g.run(3_000);
    for (const action of actions) {
      switch (action.kind) {
        case 'wait':
          break;
        case 'isolate': {
          const id = g.pick(action.who, rnd);
          if (!id) break;
          // A partition: sockets stay open (no disconnect event); the link heals later.
          g.bus.isolate(id, Ids);
          g.later(action.forMs, () => g.bus.heal());
          break;
        }
        case 'crash': {
          const id = g.pick(action.who, rnd);
          if (!id) break;
          await g.crash(id);
          g.later(action.downMs, () => (g.members.has(id) ? undefined : g.start(id)));
          break;
        }
        case 'transfer': {
          const leader = g.pick('leader', rnd);
          if (!leader) break;
          g.members.get(leader)!.transferLeadership().catch(() => undefined);
          if (action.thenIsolateAfterMs !== null) {
            g.later(action.thenIsolateAfterMs, () => g.bus.isolate(leader, Ids));
            g.later(action.thenIsolateAfterMs + 2_000, () => g.bus.heal());
          }
          break;
        }
        case 'retime': {
          const id = g.pick(action.who, rnd);
          if (!id) break;
          await g.crash(id);
          g.timings.set(id, Timings[action.timing]!);
          await g.start(id);
          break;
        }
        case 'handTo': {
          const leader = g.pick('leader', rnd);
          const to = Ids[action.index]!;
          if (leader && leader !== to && g.members.has(to)) g.members.get(leader)!.transferLeadership(to).catch(() => undefined);
          if (action.thenIsolateAfterMs !== null) {
            g.later(action.thenIsolateAfterMs, () => g.bus.isolate(to, Ids));
            g.later(action.thenIsolateAfterMs + 2_000, () => g.bus.heal());
          }
          break;
        }
        case 'restartThenHandTo': {
          const to = Ids[action.index]!;
          if (!g.members.has(to) || g.members.get(to)!.view().role === 'Leader') break;
          await g.crash(to);
          if (action.timing !== null) g.timings.set(to, Timings[action.timing]!);
          await g.start(to);
          g.later(action.afterMs, () => {
            const leader = g.pick('leader', rnd);
            if (leader && leader !== to && g.members.has(to)) g.members.get(leader)!.transferLeadership(to).catch(() => undefined);
          });
          break;
        }
        case 'handToThenRestart': {
          const leader = g.pick('leader', rnd);
          const to = Ids[action.index]!;
          if (!leader || leader === to || !g.members.has(to)) break;
          g.members.get(leader)!.transferLeadership(to).catch(() => undefined);
          g.later(action.afterMs, async () => {
            await g.crash(to);
            g.later(action.downMs, () => (g.members.has(to) ? undefined : g.start(to)));
          });
          break;
        }
        case 'podGone': {
          // The API server says the leader's pod is going away while the leader still runs,
          // cut off: every follower forgets it and the lowest other voter campaigns.
          const leader = g.pick('leader', rnd);
          if (!leader) break;
          g.bus.isolate(leader, Ids);
          g.later(3_000, () => g.bus.heal());
          for (const [id, m] of g.members) if (id !== leader) m.forgetLeader();
          const campaigner = Ids.filter((id) => id !== leader).sort()[0]!;
          g.later(25, () => g.members.get(campaigner)?.campaign());
          break;
        }
      }
      await g.run(action.kind === 'wait' ? action.ms : 200);
    }
    // Heal everything and bring every member back: one leader must claim, and all follow it.
    await g.run(3_100);
    g.bus.heal();
    for (const id of Ids) if (!g.members.has(id)) await g.start(id);
    await g.runUntil('an agreed leader after healing', () => g.agreedClaim(), 20 * ElectionTicks * TickMs);
    return { samples: g.samples, claims: g.claims, terms: g.leaderOfTerm.size };
  } finally {
    await g.stop();
  }
}

describe('lease safety of real members over random schedules', () => {
  beforeEach(() => vi.useFakeTimers({ now: 1_000_000 }));
  afterEach(() => vi.useRealTimers());

  it('never two isLeader at once, never two leaders in a term, and a leader after healing', async () => {
    const seed = Number(process.env.LEASE_SIM_SEED ?? defaultSeed);
    const numRuns = Number(process.env.LEASE_SIM_RUNS ?? 500);
    console.log(`lease simulation: fast-check seed ${seed}, ${numRuns} schedules, clock rates within ±${maxRateSkew} (replay: LEASE_SIM_SEED=${seed} npx vitest run test/sim/lease.test.ts)`);
    let samples = 0;
    let claims = 0;
    let terms = 0;
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 2 ** 30 }), fc.array(actionArb, { minLength: 3, maxLength: 12 }), async (s, actions) => {
        vi.setSystemTime(1_000_000);
        const r = await runSchedule(s, actions, [], { syncInBackground: syncsInBackground(s) });
        samples += r.samples;
        claims += r.claims;
        terms += r.terms;
      }),
      { seed, numRuns, endOnFailure: true },
    );
    console.log(`lease simulation: ${samples} samples, ${claims} isLeader answers, ${terms} terms with a leader`);
    // The schedules really exercised leadership: leaders claimed and terms moved.
    expect(claims).toBeGreaterThan(samples / 10);
    expect(terms).toBeGreaterThan(numRuns * 2);
  }, 300_000);
});

describe('lease safety of real members with mixed timing settings', () => {
  beforeEach(() => vi.useFakeTimers({ now: 1_000_000 }));
  afterEach(() => vi.useRealTimers());

  /** A property over schedules of `actions` on members that start with random timing settings. */
  async function timedProperty(o: { label: string; runsEnv: string; defaultRuns: number; filter: string; actions: fc.Arbitrary<Action> }): Promise<void> {
    const seed = Number(process.env.LEASE_SIM_SEED ?? defaultSeed);
    const numRuns = Number(process.env[o.runsEnv] ?? o.defaultRuns);
    console.log(
      `${o.label}: fast-check seed ${seed}, ${numRuns} schedules over ${Timings.length} timings ` +
        `(replay: LEASE_SIM_SEED=${seed} ${o.runsEnv}=${numRuns} npx vitest run test/sim/lease.test.ts -t '${o.filter}')`,
    );
    let samples = 0;
    let claims = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 2 ** 30 }),
        fc.array(fc.nat({ max: Timings.length - 1 }), { minLength: 3, maxLength: 3 }),
        fc.array(o.actions, { minLength: 3, maxLength: 12 }),
        async (s, timingIdx, actions) => {
          vi.setSystemTime(1_000_000);
          const r = await runSchedule(s, actions, timingIdx.map((i) => Timings[i]!), { syncInBackground: syncsInBackground(s) });
          samples += r.samples;
          claims += r.claims;
        },
      ),
      { seed, numRuns, endOnFailure: true },
    );
    console.log(`${o.label}: ${samples} samples, ${claims} isLeader answers`);
    expect(claims).toBeGreaterThan(samples / 10);
  }

  it('members with different tickMs, electionTicks and maxClockDriftMs, restarted with new settings at random: never two isLeader', () =>
    timedProperty({ label: 'mixed-timing lease simulation', runsEnv: 'LEASE_SIM_MIXED_RUNS', defaultRuns: 150, filter: 'mixed timing', actions: mixedActionArb }), 300_000);

  it('restarts around handovers (to a member inside its restart delay, or killed mid-transfer): never two isLeader', () =>
    timedProperty({ label: 'restart-handover lease simulation', runsEnv: 'LEASE_SIM_RESTART_RUNS', defaultRuns: 60, filter: 'restarts around', actions: restartActionArb }), 300_000);

  it('replays a found counterexample: a member restarted with shorter timing must not campaign inside its old ack window', async () => {
    // fast-check seed 166063152, path 7: c acked a's heartbeat under 100 ms x 10 ticks, restarted
    // with 50 ms x 8 and stood (voting for itself) inside the old 800 ms window a's lease counted on.
    console.log('mixed-timing regression: fast-check seed 166063152 path 7, replayed as an explicit schedule (member seed 1073741823)');
    vi.setSystemTime(1_000_000);
    const actions: Action[] = [
      { kind: 'retime', who: 'any', timing: 2 },
      { kind: 'retime', who: 'any', timing: 1 },
      { kind: 'handTo', index: 0, thenIsolateAfterMs: 1144 },
      { kind: 'retime', who: 'leader', timing: 1 },
      { kind: 'handTo', index: 1, thenIsolateAfterMs: 1366 },
      { kind: 'retime', who: 'follower', timing: 2 },
      { kind: 'retime', who: 'any', timing: 0 },
      { kind: 'retime', who: 'follower', timing: 2 },
      { kind: 'wait', ms: 648 },
      { kind: 'podGone' },
      { kind: 'retime', who: 'any', timing: 2 },
      { kind: 'retime', who: 'leader', timing: 3 },
    ];
    await runSchedule(1073741823, actions, [0, 3, 0].map((i) => Timings[i]!));
  }, 60_000);

  it('replays a found counterexample: a transfer to a member restarted after it acked another leader waits that lease out', async () => {
    // fast-check seed 226153352, path 119: c led term 3 with b's ack; b forgot c, restarted (its
    // marks lost), and a handed over to it inside b's restart delay. b's transfer election was
    // plain, so b claimed while c's lease, held up by b's old ack, still ran.
    console.log('mixed-timing regression: fast-check seed 226153352 path 119, replayed as an explicit schedule (member seed 591766183)');
    vi.setSystemTime(1_000_000);
    const actions: Action[] = [
      { kind: 'handTo', index: 0, thenIsolateAfterMs: 1186 },
      { kind: 'transfer', thenIsolateAfterMs: 16 },
      { kind: 'podGone' },
      { kind: 'retime', who: 'leader', timing: 0 },
      { kind: 'handTo', index: 1, thenIsolateAfterMs: 310 },
      { kind: 'wait', ms: 1557 },
      { kind: 'podGone' },
      { kind: 'retime', who: 'any', timing: 3 },
      { kind: 'handTo', index: 1, thenIsolateAfterMs: 482 },
      { kind: 'podGone' },
      { kind: 'retime', who: 'follower', timing: 1 },
    ];
    await runSchedule(591766183, actions, [1, 0, 0].map((i) => Timings[i]!));
  }, 60_000);

  it('replays a review finding: a ForgetLeader inside the restart delay must not cut its marks short', async () => {
    // c leads with b's ack alone (a lost c first). b forgets c and a wins with b's marked vote.
    // b restarts with shorter timing (its restart delay, 46 ticks of 20 ms, covers the old 900 ms
    // window and marks its votes), then forgets a and hears it again. The forget replaced the
    // restart's marks with the rest of one 200 ms timeout, so a's handover to b was a plain
    // election and b claimed while c still did on b's old ack.
    console.log('mixed-timing regression: forget inside the restart delay, then a handover (directed schedule, member seed 3)');
    vi.setSystemTime(1_000_000);
    const g = new Group(3);
    const m = (id: string) => g.members.get(id)!;
    try {
      for (const id of Ids) await g.start(id);
      await g.run(3_000);
      const first = g.pick('leader', () => 0)!;
      if (first !== 'c') void m(first).transferLeadership('c').catch(() => undefined);
      await g.run(2_000);
      expect(m('c').view().isLeader).toBe(true);
      g.bus.isolate('c', ['a']);
      await g.run(1_500); // a is out of c's lease; b refuses its pre-votes
      g.bus.isolate('c', ['b']);
      m('b').forgetLeader();
      m('a').campaign();
      await g.run(200);
      expect(m('a').view()).toMatchObject({ role: 'Leader', isLeader: false });
      await g.crash('b');
      g.timings.set('b', Timings[1]!);
      await g.start('b');
      // Within one heartbeat round or two (its phase depends on when a was elected).
      for (let waited = 0; m('b').view().leader !== 'a' && waited < 300; waited += StepMs) await g.run(StepMs);
      expect(m('b').view().leader).toBe('a');
      m('b').forgetLeader();
      await g.run(250); // past the forgotten lease, inside b's restart delay; b follows a again
      void m('a').transferLeadership('b').catch(() => undefined);
      await g.run(3_000); // sampled throughout: b claims only once c's lease is over
      expect(m('b').view().isLeader).toBe(true);
    } finally {
      await g.stop();
    }
  }, 60_000);

  it('a rolling change of every timing setting, one member at a time, and back: one isLeader at most, and a leader throughout', async () => {
    const seed = Number(process.env.LEASE_SIM_SEED ?? defaultSeed);
    const numRuns = Number(process.env.LEASE_SIM_ROLL_RUNS ?? 10);
    console.log(`rolling-timing simulation: fast-check seed ${seed}, ${numRuns} rolls (replay: LEASE_SIM_SEED=${seed} npx vitest run test/sim/lease.test.ts -t 'rolling')`);
    let worstGapMs = 0;
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 2 ** 30 }), fc.nat({ max: Timings.length - 2 }), async (s, to) => {
        vi.setSystemTime(1_000_000);
        const g = new Group(s);
        const target = Timings[to + 1]!;
        try {
          for (const id of Ids) await g.start(id);
          await g.run(3_000);
          let gapMs = 0;
          const runTracking = async (ms: number) => {
            for (let t = 0; t < ms; t += StepMs) {
              await g.run(StepMs);
              gapMs = [...g.members.values()].some((m) => m.view().isLeader) ? 0 : gapMs + StepMs;
              worstGapMs = Math.max(worstGapMs, gapMs);
            }
          };
          for (const timing of [target, Uniform]) {
            for (const id of Ids) {
              // SIGTERM: a leader hands over first (its promise settles as time runs), then the process ends.
              const m = g.members.get(id)!;
              let done = false;
              void m.shutdown().finally(() => (done = true));
              while (!done) await runTracking(StepMs);
              g.members.delete(id);
              g.bus.crash(id);
              g.timings.set(id, timing);
              await g.start(id);
              await runTracking(3_000);
            }
          }
        } finally {
          await g.stop();
        }
      }),
      { seed, numRuns, endOnFailure: true },
    );
    console.log(`rolling-timing simulation: longest time without any isLeader ${worstGapMs} ms`);
    // Every stop is a graceful handover to a member long past its restart delay: no election.
    // 60-80 ms over 6 seeds x 60 rolls; an election-long gap (1.6 s when transferGrantsVote's
    // vote overtook its MsgTimeoutNow and the target dropped the latter) fails here.
    expect(worstGapMs).toBeLessThan(ElectionTicks * TickMs);
  }, 300_000);
});
