import fc from 'fast-check';
import type { FaultRates } from './simulator.js';
import {
  CLOCK_EIGHTHS_MIN,
  CLOCK_EIGHTHS_NOMINAL,
  NO_FAULTS,
  SLOTS_PER_TICK,
  SimViolation,
  Simulation,
  type CrashPoint,
  type DoubleLeader,
  type SimStats,
} from './simulator.js';

/** One hostile run: a chaos phase of random faults and scripted actions, then a healed network. */
/** The fault rates (documented on FaultRates) plus the cluster and the scripted actions. */
export interface Schedule extends FaultRates {
  /** Seeds the network's choices and the members' election timeouts. */
  seed: number;
  members: number;
  electionTick: number;
  preVote: boolean;
  checkQuorum: boolean;
  /** When set, a restarted member grants no vote for one election timeout (the product's rule). */
  restartVoteDelay: boolean;
  /**
   * When set, a member that starts with no state grants no vote for two election timeouts
   * once its first peer message shows the group ran (the product's rule, freshVoteDelayTicks).
   */
  freshVoteDelay?: boolean;
  /** RaftConfig.successorCampaign (the product sets it): a silent leader's lowest-id successor asks for pre-votes first. */
  successorCampaign?: boolean;
  /** RaftConfig.transferGrantsVote (the product sets it): a leader's MsgTimeoutNow comes with its vote. */
  transferGrantsVote?: boolean;
  /** Clock rate of member i in eighths of the global tick rate (index modulo the list). */
  clockEighths: number[];
  chaosTicks: number;
  actions: ScheduledAction[];
}

export type Action =
  /** Members whose bit is set in `mask` form one side; the rest the other. */
  | { kind: 'partition'; mask: number }
  | { kind: 'isolateLeader' }
  | { kind: 'heal' }
  | { kind: 'crash'; member: number; downTicks: number }
  /** The member's pod is recreated on an empty disk (disk-loss schedules only). */
  | { kind: 'wipe'; member: number; downTicks: number }
  | { kind: 'crashLeader'; point: CrashPoint; downTicks: number }
  /** The leader's pod is terminating: the pod watch makes every follower forget it, then it dies. */
  | { kind: 'stopLeader'; downTicks: number }
  | { kind: 'transferLeader'; member: number }
  | { kind: 'campaign'; member: number };

export interface ScheduledAction {
  /** When, in thousandths of the chaos phase. */
  atPerMille: number;
  action: Action;
}

export const HEARTBEAT_TICK = 1;

/**
 * Election rounds allowed after the network heals before liveness counts as broken.
 * A round (every member waits out a fresh randomized timeout in [E, 2E) of its own
 * ticks, and all traffic arrives within the tick) fails only when two members time out
 * in the same tick and split the vote, or the first to time out has a stale log (a
 * majority of logs is up to date, so it is less likely than not). Taking a round's
 * success chance as at least 0.3, 60 rounds fail together with a chance below 1e-9:
 * generous enough to hold on every seed, finite enough to catch a livelock.
 */
export const LIVENESS_ROUNDS = 60;

/**
 * The slowest clock allowed once the network heals, in eighths of the fastest.
 * Any drift is allowed during the chaos phase (safety must not depend on clocks), but
 * liveness does: without PreVote, a member with a stale log and a fast clock campaigns
 * (and so resets every other member's election timer) before an up-to-date member with
 * a clock at half speed can ever time out, and no leader is ever elected. The simulator
 * found this livelock (kept as a test in faults.test.ts); etcd-raft has the same rules, so
 * it is Raft's limit, not a port bug. Real clocks drift by parts per million, so 1/8 is generous.
 */
export const LIVENESS_MIN_CLOCK_EIGHTHS = 7;

/**
 * The bound, in global ticks, within which a healed group with every member up must
 * agree on one leader. In the members' own ticks it is:
 *   D                a member restarted at the heal answers no vote for restartVoteDelayTicks
 *                    (freshVoteDelayTicks if its disk was wiped; D is the larger);
 * + 2E               a leader cut off from its quorum steps down at its next CheckQuorum
 *                    (within E ticks), and its followers honour its lease for E ticks more;
 * + ROUNDS * 2E      the election rounds above, each within one randomized timeout;
 * scaled by 8 / slowest clock rate (a member with half-speed clock needs twice the global
 * ticks), plus the slowest in-flight message left over from the chaos phase.
 */
export function livenessBoundTicks(electionTick: number, voteDelayTicks: number, slowestClockEighths: number): number {
  const ownTicks = voteDelayTicks + 2 * electionTick + LIVENESS_ROUNDS * 2 * electionTick;
  const maxLeftoverDelayTicks = Math.ceil((12 + 1) / SLOTS_PER_TICK);
  return Math.ceil((ownTicks * CLOCK_EIGHTHS_NOMINAL) / slowestClockEighths) + maxLeftoverDelayTicks;
}

export const memberIds = (n: number): string[] => Array.from({ length: n }, (_, i) => `m${i + 1}`);

const memberArb = fc.integer({ min: 0, max: 4 });
const downArb = fc.integer({ min: 0, max: 40 });
const baseActionArbs = [
  fc.record({ kind: fc.constant('partition' as const), mask: fc.integer({ min: 1, max: 30 }) }),
  fc.record({ kind: fc.constant('isolateLeader' as const) }),
  fc.record({ kind: fc.constant('heal' as const) }),
  fc.record({ kind: fc.constant('crash' as const), member: memberArb, downTicks: downArb }),
  fc.record({
    kind: fc.constant('crashLeader' as const),
    point: fc.constantFrom<CrashPoint>('idle', 'beforePersist', 'afterPersist'),
    downTicks: downArb,
  }),
  fc.record({ kind: fc.constant('stopLeader' as const), downTicks: downArb }),
  fc.record({ kind: fc.constant('transferLeader' as const), member: memberArb }),
  fc.record({ kind: fc.constant('campaign' as const), member: memberArb }),
] as const;
const actionArb: fc.Arbitrary<Action> = fc.oneof(...baseActionArbs);
/** The same actions plus disk loss; a wipe is drawn about as often as each other action. */
const wipeActionArb: fc.Arbitrary<Action> = fc.oneof(
  ...baseActionArbs,
  fc.record({ kind: fc.constant('wipe' as const), member: memberArb, downTicks: downArb }),
);

export const MAX_CHAOS_TICKS = 300;

const scheduleFields = {
  seed: fc.integer({ min: 0, max: 0x7fffffff }),
  members: fc.integer({ min: 3, max: 5 }),
  electionTick: fc.integer({ min: 4, max: 10 }),
  preVote: fc.boolean(),
  checkQuorum: fc.boolean(),
  restartVoteDelay: fc.boolean(),
  successorCampaign: fc.boolean(),
  dropPercent: fc.integer({ min: 0, max: 30 }),
  duplicatePercent: fc.integer({ min: 0, max: 20 }),
  maxDelaySlots: fc.integer({ min: 0, max: 12 }),
  crashPerMille: fc.integer({ min: 0, max: 20 }),
  maxDownTicks: fc.integer({ min: 1, max: 30 }),
  clockEighths: fc.array(fc.integer({ min: CLOCK_EIGHTHS_MIN, max: CLOCK_EIGHTHS_NOMINAL }), { minLength: 1, maxLength: 5 }),
  chaosTicks: fc.integer({ min: 30, max: MAX_CHAOS_TICKS }),
  actions: fc.array(fc.record({ atPerMille: fc.integer({ min: 0, max: 999 }), action: actionArb }), {
    maxLength: 40,
    size: 'medium',
  }),
  // Last, so the fields above draw what they drew before it was added.
  transferGrantsVote: fc.boolean(),
};

/** The main property's schedules: no disk loss, so every safety invariant holds in full. */
export const scheduleArb: fc.Arbitrary<Schedule> = fc.record(scheduleFields);

/**
 * Schedules with disk loss: wipe actions and random crashes that lose the disk, and the
 * product's two vote delays. `freshVoteDelay` is fixed by the caller, so the same schedules
 * can be run with and without it.
 */
export function wipeScheduleArb(freshVoteDelay: boolean): fc.Arbitrary<Schedule> {
  return fc.record({
    ...scheduleFields,
    restartVoteDelay: fc.constant(true),
    freshVoteDelay: fc.constant(freshVoteDelay),
    wipePercent: fc.integer({ min: 0, max: 100 }),
    actions: fc.array(fc.record({ atPerMille: fc.integer({ min: 0, max: 999 }), action: wipeActionArb }), {
      maxLength: 40,
      size: 'medium',
    }),
  });
}

export interface ScheduleResult {
  stats: SimStats;
  /** Global ticks from the heal until every member followed one leader (undefined only when `stuckDoubleLeader` is set). */
  ticksToAgree: number | undefined;
  /**
   * Only with `allowWipedDoubleVotes`: liveness failed because two running members still led
   * the same term at the bound, a double leader explained by a wiped member's double vote.
   * Neither steps down: a leader ignores a same-term heartbeat (etcd's rule), and with
   * CheckQuorum both count the followers that answer both as active.
   */
  stuckDoubleLeader?: { term: number; leaders: string[] };
  livenessBound: number;
  /** The agreed leader ('' when `stuckDoubleLeader` is set). */
  leader: string;
  trace: string[];
  /** Second leaders of a term found (only with `allowWipedDoubleVotes`; each has its witness). */
  doubleLeaders: DoubleLeader[];
}

/**
 * Runs one schedule and checks every invariant; throws SimViolation on a breach,
 * including liveness (within the bound after the heal, a leader that every member
 * follows and that keeps its place for two election timeouts).
 */
export interface RunOptions {
  trace?: boolean;
  /** Clock floor after the heal; lower than LIVENESS_MIN_CLOCK_EIGHTHS only to show the livelock. */
  livenessMinClockEighths?: number;
  /** Simulator switches that break the driver on purpose (tests of the checks themselves). */
  unsafeSendBeforePersist?: boolean;
  checkVoteDurability?: boolean;
  /** See SimOptions.allowWipedDoubleVotes: count, rather than throw on, double leaders a wiped member's double vote explains. */
  allowWipedDoubleVotes?: boolean;
  /** See SimOptions.allowLostCommittedEntries. */
  allowLostCommittedEntries?: boolean;
}

export function runSchedule(s: Schedule, options: RunOptions = {}): ScheduleResult {
  const ids = memberIds(s.members);
  const clockEighths: Record<string, number> = {};
  ids.forEach((id, i) => (clockEighths[id] = s.clockEighths[i % s.clockEighths.length] ?? CLOCK_EIGHTHS_NOMINAL));
  const restartVoteDelayTicks = s.restartVoteDelay ? s.electionTick : 0;
  const freshVoteDelayTicks = s.freshVoteDelay ? 2 * s.electionTick : 0;
  const sim = new Simulation({
    ids,
    electionTick: s.electionTick,
    heartbeatTick: HEARTBEAT_TICK,
    preVote: s.preVote,
    checkQuorum: s.checkQuorum,
    restartVoteDelayTicks,
    freshVoteDelayTicks,
    successorCampaign: s.successorCampaign ?? false,
    transferGrantsVote: s.transferGrantsVote ?? false,
    allowWipedDoubleVotes: options.allowWipedDoubleVotes ?? false,
    allowLostCommittedEntries: options.allowLostCommittedEntries ?? false,
    seed: s.seed,
    clockEighths,
    trace: options.trace ?? false,
    unsafeSendBeforePersist: options.unsafeSendBeforePersist ?? false,
    checkVoteDurability: options.checkVoteDurability ?? true,
    faults: {
      dropPercent: s.dropPercent,
      duplicatePercent: s.duplicatePercent,
      maxDelaySlots: s.maxDelaySlots,
      crashPerMille: s.crashPerMille,
      maxDownTicks: s.maxDownTicks,
      wipePercent: s.wipePercent ?? 0,
    },
  });

  const byTick = new Map<number, Action[]>();
  for (const a of s.actions) {
    const at = 1 + Math.floor((a.atPerMille * s.chaosTicks) / 1000);
    const list = byTick.get(at) ?? [];
    list.push(a.action);
    byTick.set(at, list);
  }
  for (let t = 1; t <= s.chaosTicks; t++) {
    for (const action of byTick.get(t) ?? []) apply(sim, ids, action);
    sim.runTicks(1);
  }

  // Heal: a lossless, prompt network with every member up, and clock drift within
  // LIVENESS_MIN_CLOCK_EIGHTHS (see there).
  sim.setFaults(NO_FAULTS);
  sim.heal();
  for (const id of ids) {
    const eighths = Math.max(clockEighths[id]!, options.livenessMinClockEighths ?? LIVENESS_MIN_CLOCK_EIGHTHS);
    if (eighths !== clockEighths[id]) sim.setClockEighths(id, eighths);
    clockEighths[id] = eighths;
    sim.disarmCrash(id);
    sim.restart(id);
  }
  // Agreement counts once the chaos phase's last messages have landed and no leader
  // transfer started before the heal is still pending (its MsgTimeoutNow would rightly
  // move leadership again). It must then hold for two election timeouts: a follower
  // whose timer was about to fire at the heal may rightly start one more election
  // (without PreVote and CheckQuorum nothing stops it), so liveness is "a leader that
  // stays", and the tick its stay began must fall within the bound.
  const healSlot = sim.slot;
  const settledLeader = (): string | undefined => {
    if (sim.inFlightSentBefore(healSlot) > 0) return undefined;
    const leader = sim.agreedLeader();
    return leader !== undefined && sim.status(leader).leadTransferee === '' ? leader : undefined;
  };
  const slowest = Math.min(...Object.values(clockEighths));
  const bound = livenessBoundTicks(s.electionTick, Math.max(restartVoteDelayTicks, freshVoteDelayTicks), slowest);
  const stableTicks = Math.ceil((2 * s.electionTick * CLOCK_EIGHTHS_NOMINAL) / slowest);
  let streakLeader: string | undefined;
  let streakTerm = 0;
  let streakStart = 0;
  let ticksToAgree: number | undefined;
  for (let t = 1; t <= bound + stableTicks; t++) {
    sim.runTicks(1);
    const leader = settledLeader();
    const term = leader === undefined ? 0 : sim.status(leader).term;
    if (leader === undefined || leader !== streakLeader || term !== streakTerm) {
      streakLeader = leader;
      streakTerm = term;
      streakStart = t;
      if (t > bound) break;
      continue;
    }
    if (t - streakStart >= stableTicks) {
      ticksToAgree = streakStart;
      break;
    }
  }
  if (ticksToAgree === undefined || streakLeader === undefined) {
    const stuck = options.allowWipedDoubleVotes ? stuckDoubleLeader(sim) : undefined;
    if (stuck) {
      return { stats: sim.stats, ticksToAgree: undefined, stuckDoubleLeader: stuck, livenessBound: bound, leader: '', trace: sim.trace, doubleLeaders: sim.doubleLeaders };
    }
    const who = ids.map((id) => {
      if (!sim.isUp(id)) return `${id}:down`;
      const st = sim.status(id);
      return `${id}:${st.state}@t${st.term} lead=${st.lead || '-'}`;
    });
    throw new SimViolation(
      'liveness',
      `seed ${s.seed}: no leader followed by all for ${stableTicks} ticks within ${bound} ticks after the heal (${who.join(' ')})`,
    );
  }
  const leader = streakLeader;
  return { stats: sim.stats, ticksToAgree, livenessBound: bound, leader, trace: sim.trace, doubleLeaders: sim.doubleLeaders };
}

/** Two running leaders of one term that the simulator accepted as a wiped member's double vote. */
function stuckDoubleLeader(sim: Simulation): { term: number; leaders: string[] } | undefined {
  const leaders = sim.leaders();
  for (const l of leaders) {
    const same = leaders.filter((o) => o.term === l.term).map((o) => o.id);
    if (same.length > 1 && sim.doubleLeaders.some((d) => d.term === l.term)) return { term: l.term, leaders: same.sort() };
  }
  return undefined;
}

function apply(sim: Simulation, ids: readonly string[], action: Action): void {
  const pick = (i: number): string => ids[i % ids.length]!;
  const leaders = sim.leaders().sort((a, b) => b.term - a.term);
  const leader = leaders[0]?.id;
  switch (action.kind) {
    case 'partition': {
      const side = ids.filter((_, i) => (action.mask >> i) & 1);
      if (side.length > 0 && side.length < ids.length) sim.partition(side);
      return;
    }
    case 'isolateLeader':
      if (leader) sim.partition([leader]);
      return;
    case 'heal':
      sim.heal();
      return;
    case 'crash':
      sim.crash(pick(action.member), 'idle', action.downTicks);
      return;
    case 'wipe':
      sim.wipe(pick(action.member), action.downTicks);
      return;
    case 'crashLeader':
      if (leader) sim.crash(leader, action.point, action.downTicks);
      return;
    case 'stopLeader':
      if (!leader) return;
      for (const id of sim.upIds()) if (id !== leader) sim.forgetLeader(id);
      sim.crash(leader, 'idle', action.downTicks);
      return;
    case 'transferLeader':
      if (leader) sim.transferLeader(leader, pick(action.member));
      return;
    case 'campaign':
      sim.campaign(pick(action.member));
      return;
  }
}
