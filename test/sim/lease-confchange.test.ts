/**
 * Lease safety while the configuration changes: real RaftMembers on the in-memory bus, under
 * fake timers, with random configuration changes among the faults — a learner added, promoted,
 * removed; a joint swap of a voter for a learner; the leader removed after it transferred
 * first; a wiped member rejoining under a new id while its old id is removed. Every 10 ms of
 * simulated time: at most one member answers isLeader, no term has two leaders, no identity
 * persists two votes in one term, and every member that applied an index holds the same
 * configuration at it. After the chaos the network heals and one leader must claim.
 *
 *   LEASE_CC_SIM_SEED=s   fast-check seed (default: random, printed)
 *   LEASE_CC_SIM_RUNS=n   schedules (default 150)
 */
import fc from 'fast-check';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RaftMember } from '../../cluster/member.js';
import { MemoryTimingRecord } from '../../cluster/timing-record.js';
import { confStateEqual, seededRandom, type ConfChangeV2, type ConfState, type DurableState } from '../../raft/index.js';
import { type BackgroundSync, Bus, MemoryStore } from '../harness/member-bus.js';
import { LeaseGroup, StepMs, syncsInBackground } from './lease-group.js';

const Bootstrap = ['a', 'b', 'c'];
/** Every id a run may use: the bootstrap three, then joiners and new incarnations. */
const Pool = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'];
const TickMs = 100;
const ElectionTicks = 10;
const silent = pino({ level: 'silent' });
const defaultSeed = Date.now() % 1_000_000_000;

type Action =
  | { kind: 'wait'; ms: number }
  | { kind: 'isolate'; pick: number; forMs: number }
  | { kind: 'crash'; pick: number; downMs: number }
  | { kind: 'transfer' }
  | { kind: 'addLearner' }
  | { kind: 'promote'; pick: number }
  | { kind: 'remove'; pick: number }
  | { kind: 'swap'; pick: number }
  | { kind: 'removeSelf' }
  | { kind: 'wipeRejoin'; pick: number }
  /** One follower forgets its leader (its link closed, or it saw the pod go), and may campaign. */
  | { kind: 'forget'; pick: number; campaign: boolean };

const pickArb = fc.nat({ max: 1_000 });
const actionArb: fc.Arbitrary<Action> = fc.oneof(
  fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 10, max: 2_000 }) }),
  fc.record({ kind: fc.constant('isolate' as const), pick: pickArb, forMs: fc.integer({ min: 50, max: 3_000 }) }),
  fc.record({ kind: fc.constant('crash' as const), pick: pickArb, downMs: fc.integer({ min: 0, max: 3_000 }) }),
  fc.record({ kind: fc.constant('transfer' as const) }),
  fc.record({ kind: fc.constant('addLearner' as const) }),
  fc.record({ kind: fc.constant('promote' as const), pick: pickArb }),
  fc.record({ kind: fc.constant('remove' as const), pick: pickArb }),
  fc.record({ kind: fc.constant('swap' as const), pick: pickArb }),
  fc.record({ kind: fc.constant('removeSelf' as const) }),
  fc.record({ kind: fc.constant('wipeRejoin' as const), pick: pickArb }),
);

/** With followers forgetting their leader too (a property of its own: actionArb's seeds replay unchanged). */
const forgetActionArb: fc.Arbitrary<Action> = fc.oneof(
  actionArb,
  fc.record({ kind: fc.constant('forget' as const), pick: pickArb, campaign: fc.boolean() }),
);

/**
 * A store that reports an identity persisting a second vote in one term (the member would
 * swallow a throw from save() as a write failure, so the group checks `violations`).
 */
class CheckedStore extends MemoryStore {
  private readonly votes = new Map<number, string>();
  constructor(
    private readonly who: string,
    bus: Bus,
    private readonly violations: string[],
    sync: BackgroundSync | undefined,
  ) {
    super(who, bus, sync);
  }
  override save(state: DurableState): void {
    const { term, vote } = state.hardState;
    const earlier = this.votes.get(term);
    if (vote !== '' && earlier !== undefined && earlier !== vote) this.violations.push(`${this.who} voted twice in term ${term}: ${earlier} and ${vote}`);
    if (vote !== '') this.votes.set(term, vote);
    super.save(state);
  }
}

class Group extends LeaseGroup {
  readonly stores = new Map<string, CheckedStore>();
  readonly records = new Map<string, MemoryTimingRecord>();
  readonly wiped = new Set<string>();
  /** The configuration at each applied index, as the first member to report it held it. */
  readonly confAt = new Map<number, { cs: ConfState; by: string }>();
  changesApplied = 0;
  private starts = 0;

  async start(id: string): Promise<void> {
    this.starts++;
    if (!this.stores.has(id)) this.stores.set(id, new CheckedStore(id, this.bus, this.violations, this.backgroundSync));
    if (!this.records.has(id)) this.records.set(id, new MemoryTimingRecord());
    const member = new RaftMember({
      id,
      // Only the first three form the group; every later id joins with an empty configuration.
      ...(Bootstrap.includes(id) ? { bootstrap: { voters: Bootstrap } } : {}),
      tickMs: TickMs,
      electionTicks: ElectionTicks,
      heartbeatTicks: 1,
      maxClockDriftMs: 100,
      store: this.stores.get(id)!,
      timingRecord: this.records.get(id)!,
      logger: silent,
      random: seededRandom(this.seed * 31 + Pool.indexOf(id) * 7 + this.starts * 1009),
      monotonicNowMs: () => Date.now(),
      createTransport: (events) => this.bus.transport(id, Pool.filter((p) => p !== id), events),
    });
    member.onMembershipChange((cs) => {
      this.changesApplied++;
      const at = member.membership().appliedIndex;
      const seen = this.confAt.get(at);
      if (seen === undefined) this.confAt.set(at, { cs, by: id });
      else if (!confStateEqual(seen.cs, cs)) {
        this.violations.push(`configurations diverge at index ${at}: ${seen.by} ${JSON.stringify(seen.cs)}, ${id} ${JSON.stringify(cs)}`);
      }
    });
    this.members.set(id, member);
    await member.start();
  }

  leader(): RaftMember | undefined {
    return [...this.members.values()].sort((x, y) => (x.id < y.id ? -1 : 1)).find((m) => m.view().role === 'Leader');
  }

  freshId(): string | undefined {
    return Pool.find((id) => !this.stores.has(id));
  }
}

/** Proposes on the leader; a refusal (pending, removes the leader, not leader) is part of the game. */
function propose(g: Group, cc: ConfChangeV2): void {
  try {
    g.leader()?.proposeConfChange(cc);
  } catch {
    // Typed refusals; the member tests check each code.
  }
}

const pickFrom = <T>(xs: readonly T[], n: number): T | undefined => xs[n % Math.max(xs.length, 1)];

async function runSchedule(
  seed: number,
  actions: Action[],
  options: { syncInBackground?: boolean } = {},
): Promise<{ samples: number; claims: number; terms: number; changes: number; lostQuorum: number }> {
  const g = new Group(seed, options);
  try {
    for (const id of Bootstrap) await g.start(id);
    await g.run(3_000);
    for (const action of actions) {
      const leader = g.leader();
      const cs = leader?.membership().confState;
      const running = [...g.members.keys()].sort();
      switch (action.kind) {
        case 'wait':
          break;
        case 'isolate': {
          const id = pickFrom(running, action.pick);
          if (!id) break;
          g.bus.isolate(id, Pool);
          g.later(action.forMs, () => g.bus.heal());
          break;
        }
        case 'crash': {
          const id = pickFrom(running, action.pick);
          if (!id) break;
          await g.crash(id);
          g.later(action.downMs, () => (g.members.has(id) || g.wiped.has(id) ? undefined : g.start(id)));
          break;
        }
        case 'transfer':
          leader?.transferLeadership().catch(() => undefined);
          break;
        case 'addLearner': {
          const id = g.freshId();
          if (!id || !leader) break;
          await g.start(id);
          propose(g, { transition: 'Auto', changes: [{ type: 'AddLearnerNode', nodeId: id }] });
          break;
        }
        case 'promote': {
          const id = pickFrom(cs?.learners ?? [], action.pick);
          if (id) propose(g, { transition: 'Auto', changes: [{ type: 'AddNode', nodeId: id }] });
          break;
        }
        case 'remove': {
          const pool = [...(cs?.voters ?? []), ...(cs?.learners ?? [])].filter((id) => id !== leader?.id);
          const id = pickFrom(pool, action.pick);
          if (id) propose(g, { transition: 'Auto', changes: [{ type: 'RemoveNode', nodeId: id }] });
          break;
        }
        case 'swap': {
          const out = pickFrom((cs?.voters ?? []).filter((id) => id !== leader?.id), action.pick);
          const inn = pickFrom(cs?.learners ?? [], action.pick);
          if (out && inn) {
            propose(g, {
              transition: 'JointImplicit',
              changes: [
                { type: 'RemoveNode', nodeId: out },
                { type: 'AddNode', nodeId: inn },
              ],
            });
          }
          break;
        }
        case 'removeSelf': {
          // etcd's rule, as the reconciler follows it: transfer first, then the new leader removes the old.
          if (!leader) break;
          const old = leader.id;
          leader
            .transferLeadership()
            .then((r) => {
              if (r.transferred) propose(g, { transition: 'Auto', changes: [{ type: 'RemoveNode', nodeId: old }] });
            })
            .catch(() => undefined);
          break;
        }
        case 'forget': {
          const m = g.members.get(pickFrom(running, action.pick) ?? '');
          if (!m || m.view().role !== 'Follower') break;
          m.forgetLeader();
          if (action.campaign) g.later(25, () => g.members.get(m.id)?.campaign());
          break;
        }
        case 'wipeRejoin': {
          // The disk is lost: the pod comes back as a new incarnation, under a new id; the old one is removed.
          const victim = pickFrom(running.filter((id) => id !== leader?.id), action.pick);
          const fresh = g.freshId();
          if (!victim || !fresh) break;
          await g.crash(victim);
          g.wiped.add(victim);
          await g.start(fresh);
          propose(g, { transition: 'Auto', changes: [{ type: 'AddLearnerNode', nodeId: fresh }] });
          g.later(1_000, () => propose(g, { transition: 'Auto', changes: [{ type: 'RemoveNode', nodeId: victim }] }));
          break;
        }
      }
      await g.run(action.kind === 'wait' ? action.ms : 300);
    }
    // Heal, bring back every member not wiped: one leader claims, and every running voter of its configuration follows it.
    await g.run(3_100);
    g.bus.heal();
    for (const id of g.stores.keys()) if (!g.members.has(id) && !g.wiped.has(id)) await g.start(id);
    // A wiped voter is gone for good: if the latest configuration lost a quorum to wipes, no one
    // can lead it (a liveness loss the schedule chose, not a safety one); safety was checked throughout.
    // The latest configuration any member applied (a joiner that never learned one shows none).
    const latestAt = Math.max(0, ...g.confAt.keys());
    const latest = g.confAt.get(latestAt)?.cs ?? { voters: Bootstrap, votersOutgoing: [] };
    const quorumLeft = [latest.voters, latest.votersOutgoing].every(
      (half, i) => (i === 1 && half.length === 0) || half.filter((id) => !g.wiped.has(id)).length > half.length / 2,
    );
    if (!quorumLeft) return { samples: g.samples, claims: g.claims, terms: g.leaderOfTerm.size, changes: g.changesApplied, lostQuorum: 1 };
    const boundMs = 30 * ElectionTicks * TickMs;
    for (let waited = 0; ; waited += StepMs) {
      const claimer = [...g.members.values()].find((m) => m.view().isLeader);
      const voters = claimer?.membership().confState.voters ?? [];
      const view = claimer?.view();
      const agreed = voters.every((id) => !g.members.has(id) || (g.members.get(id)!.view().leader === view?.self && g.members.get(id)!.view().term === view?.term));
      if (claimer && agreed) break;
      if (waited >= boundMs) {
        const detail = [...g.members.values()].map((m) => `${m.id}: ${m.view().role} t${m.view().term} -> ${m.view().leader} ${JSON.stringify(m.membership().confState)}`);
        throw new Error(`no agreed leader ${boundMs} ms after healing (${detail.join('; ')})`);
      }
      await g.run(StepMs);
    }
    return { samples: g.samples, claims: g.claims, terms: g.leaderOfTerm.size, changes: g.changesApplied, lostQuorum: 0 };
  } finally {
    await g.stop();
  }
}

describe('lease safety of real members while the configuration changes', () => {
  beforeEach(() => vi.useFakeTimers({ now: 1_000_000 }));
  afterEach(() => vi.useRealTimers());

  it('never two isLeader, never two leaders in a term, no second vote per identity, no diverging configuration', async () => {
    const seed = Number(process.env.LEASE_CC_SIM_SEED ?? defaultSeed);
    const numRuns = Number(process.env.LEASE_CC_SIM_RUNS ?? 150);
    console.log(`lease simulation with conf changes: fast-check seed ${seed}, ${numRuns} schedules (replay: LEASE_CC_SIM_SEED=${seed} LEASE_CC_SIM_RUNS=${numRuns} npx vitest run test/sim/lease-confchange.test.ts)`);
    let samples = 0;
    let claims = 0;
    let changes = 0;
    let lostQuorum = 0;
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 2 ** 30 }), fc.array(actionArb, { minLength: 3, maxLength: 14 }), async (s, actions) => {
        vi.setSystemTime(1_000_000);
        const r = await runSchedule(s, actions, { syncInBackground: syncsInBackground(s) });
        samples += r.samples;
        claims += r.claims;
        changes += r.changes;
        lostQuorum += r.lostQuorum;
      }),
      { seed, numRuns, endOnFailure: true },
    );
    console.log(`lease simulation with conf changes: ${samples} samples, ${claims} isLeader answers, ${changes} configuration changes applied (summed over members), ${lostQuorum} schedules wiped a quorum away (liveness not checked)`);
    expect(claims).toBeGreaterThan(samples / 10);
    expect(changes).toBeGreaterThan(numRuns);
  }, 600_000);

  it('the same with followers forgetting their leader (ForgetLeader, then maybe a campaign): never two isLeader', async () => {
    const seed = Number(process.env.LEASE_CC_SIM_SEED ?? defaultSeed);
    const numRuns = Number(process.env.LEASE_CC_SIM_FORGET_RUNS ?? 40);
    console.log(`lease simulation with conf changes and forgets: fast-check seed ${seed}, ${numRuns} schedules (replay: LEASE_CC_SIM_SEED=${seed} LEASE_CC_SIM_FORGET_RUNS=${numRuns} npx vitest run test/sim/lease-confchange.test.ts -t 'forgetting')`);
    let samples = 0;
    let claims = 0;
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 2 ** 30 }), fc.array(forgetActionArb, { minLength: 3, maxLength: 14 }), async (s, actions) => {
        vi.setSystemTime(1_000_000);
        const r = await runSchedule(s, actions, { syncInBackground: syncsInBackground(s) });
        samples += r.samples;
        claims += r.claims;
      }),
      { seed, numRuns, endOnFailure: true },
    );
    console.log(`lease simulation with conf changes and forgets: ${samples} samples, ${claims} isLeader answers`);
    expect(claims).toBeGreaterThan(samples / 10);
  }, 600_000);

  it('replays a found counterexample: a leader that began a transfer and then became the only voter steps down, and the next term is claimed', async () => {
    // LEASE_CC_SIM_SEED=9105 run 115: c transferred in term 4, then removed its last other voter,
    // and stayed a leader that could never claim (no voter to hand over to).
    console.log('lease conf-change regression: fast-check seed 9105 path 114');
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 2 ** 30 }), fc.array(actionArb, { minLength: 3, maxLength: 14 }), async (s, actions) => {
        vi.setSystemTime(1_000_000);
        await runSchedule(s, actions);
      }),
      { seed: 9105, path: '114', numRuns: 1, endOnFailure: true },
    );
  }, 120_000);
});
