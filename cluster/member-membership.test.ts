import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { seededRandom, type ConfState } from '../raft/index.js';
import { Bus, MemoryStore } from '../test/harness/member-bus.js';
import { isClusterError } from './errors.js';
import type { MemberMetrics } from './interfaces.js';
import { RaftMember } from './member.js';

const All = ['a', 'b', 'c', 'd'];
const Bootstrap = ['a', 'b', 'c'];
const silent = pino({ level: 'silent' });

function recordingMetrics(): MemberMetrics & { counts: { voters: number; learners: number }[]; applied: string[] } {
  const noop = () => undefined;
  const counts: { voters: number; learners: number }[] = [];
  const applied: string[] = [];
  return {
    counts,
    applied,
    messageSent: noop,
    messageReceived: noop,
    messageDropped: noop,
    electionStarted: noop,
    electionDuration: noop,
    leaderChanged: noop,
    statePersistDuration: noop,
    peerConnected: noop,
    membershipChanged: (c) => counts.push(c),
    confChangeApplied: (t) => applied.push(t),
  };
}

/** a, b, c bootstrap a group; d starts with no configuration (a joiner). */
function makeGroup(seed: number) {
  const bus = new Bus();
  const members = new Map<string, RaftMember>();
  const linkSets = new Map<string, (readonly string[])[]>();
  const metrics = new Map<string, ReturnType<typeof recordingMetrics>>();
  All.forEach((id, i) => {
    const m = recordingMetrics();
    metrics.set(id, m);
    linkSets.set(id, []);
    members.set(
      id,
      new RaftMember({
        id,
        ...(Bootstrap.includes(id) ? { bootstrap: { voters: Bootstrap } } : {}),
        tickMs: 100,
        electionTicks: 10,
        heartbeatTicks: 1,
        maxClockDriftMs: 100,
        store: new MemoryStore(id, bus),
        logger: silent,
        metrics: m,
        random: seededRandom(seed * 100 + i),
        monotonicNowMs: () => Date.now(),
        createTransport: (events) => ({
          ...bus.transport(id, All.filter((p) => p !== id), events),
          setMembers: (ids) => linkSets.get(id)!.push([...ids]),
        }),
      }),
    );
  });
  return { bus, members, linkSets, metrics };
}

async function runUntil(done: () => boolean, limitMs: number, check: () => void = () => undefined): Promise<void> {
  for (let elapsed = 0; !done(); elapsed += 10) {
    if (elapsed >= limitMs) throw new Error(`condition not reached within ${limitMs} ms of simulated time`);
    await vi.advanceTimersByTimeAsync(10);
    check();
  }
}

function leaderOf(members: Map<string, RaftMember>): RaftMember | undefined {
  return [...members.values()].find((m) => m.view().isLeader);
}

function assertAtMostOneClaims(members: Map<string, RaftMember>): void {
  const claiming = [...members.values()].filter((m) => m.view().isLeader).map((m) => m.id);
  expect(claiming.length, `two members claim isLeader at once: ${claiming.join(', ')}`).toBeLessThanOrEqual(1);
}

function codeOf(action: () => void): string | undefined {
  try {
    action();
  } catch (err) {
    if (isClusterError(err)) return err.code;
    throw err;
  }
  return undefined;
}

const applied = (m: RaftMember) => !m.membership().pendingConfChange;

describe('RaftMember with a changing configuration', () => {
  const seed = Number(process.env.MEMBER_TEST_SEED ?? 11);
  beforeEach(() => {
    console.log(`member membership test seed ${seed}`);
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('a joiner is listed as joining, learns the configuration as a learner, is promoted, and all hear of it', async () => {
    const { members, linkSets, metrics } = makeGroup(seed);
    for (const m of members.values()) await m.start();
    await runUntil(() => leaderOf(members) !== undefined, 5_000);
    const leader = leaderOf(members)!;
    expect(leader.members().map((i) => [i.id, i.membership])).toEqual([
      ['a', 'voter'],
      ['b', 'voter'],
      ['c', 'voter'],
      ['d', 'joining'],
    ]);
    const d = members.get('d')!;
    const seen: ConfState[] = [];
    d.onMembershipChange((cs) => seen.push(cs));

    leader.proposeConfChange({ transition: 'Auto', changes: [{ type: 'AddLearnerNode', nodeId: 'd' }] });
    expect(codeOf(() => leader.proposeConfChange({ transition: 'Auto', changes: [{ type: 'AddNode', nodeId: 'd' }] }))).toBe(
      'CONF_CHANGE_PENDING',
    );
    await runUntil(() => d.membership().confState.learners.includes('d') && applied(leader), 5_000, () => assertAtMostOneClaims(members));
    expect(seen.at(-1)?.learners).toEqual(['d']);
    expect(leader.members().find((i) => i.id === 'd')?.membership).toBe('learner');
    expect(d.view().isLeader).toBe(false);
    // The leader's progress shows the learner catching up, sorted by id.
    const progress = leader.membership().progress;
    expect(Object.keys(progress)).toEqual(['a', 'b', 'c', 'd']);
    expect(progress.d?.isLearner).toBe(true);
    expect(linkSets.get('a')!.at(-1)).toEqual(['b', 'c', 'd']);

    leader.proposeConfChange({ transition: 'Auto', changes: [{ type: 'AddNode', nodeId: 'd' }] });
    await runUntil(() => d.membership().confState.voters.includes('d') && applied(leader), 5_000, () => assertAtMostOneClaims(members));
    expect(leader.members().find((i) => i.id === 'd')?.membership).toBe('voter');
    expect(metrics.get('d')!.counts.at(-1)).toEqual({ voters: 4, learners: 0 });
    expect(metrics.get('a')!.applied).toEqual(['add_learner', 'add_voter']);
    await runUntil(() => leaderOf(members) !== undefined, 5_000);
    for (const m of members.values()) await m.stop();
  });

  it('refuses with typed codes: on a follower, a change removing the leader, an invalid change', async () => {
    const { members } = makeGroup(seed);
    for (const m of members.values()) await m.start();
    await runUntil(() => leaderOf(members) !== undefined, 5_000);
    const leader = leaderOf(members)!;
    const follower = [...members.values()].find((m) => m !== leader && Bootstrap.includes(m.id))!;
    expect(codeOf(() => follower.proposeConfChange({ transition: 'Auto', changes: [{ type: 'AddLearnerNode', nodeId: 'd' }] }))).toBe(
      'NOT_LEADER',
    );
    expect(codeOf(() => leader.proposeConfChange({ transition: 'Auto', changes: [{ type: 'RemoveNode', nodeId: leader.id }] }))).toBe(
      'CONF_CHANGE_REMOVES_LEADER',
    );
    expect(
      codeOf(() => leader.proposeConfChange({ transition: 'Auto', changes: [{ type: 'AddLearnerNode', nodeId: leader.id }] })),
    ).toBe('CONF_CHANGE_REMOVES_LEADER');
    // A joint change that leaves the leader only in the outgoing half removes it too.
    expect(
      codeOf(() =>
        leader.proposeConfChange({
          transition: 'JointImplicit',
          changes: [
            { type: 'RemoveNode', nodeId: leader.id },
            { type: 'AddNode', nodeId: 'd' },
          ],
        }),
      ),
    ).toBe('CONF_CHANGE_REMOVES_LEADER');
    // The empty change leaves a joint configuration; there is none to leave.
    expect(codeOf(() => leader.proposeConfChange({ transition: 'Auto', changes: [] }))).toBe('CONF_CHANGE_INVALID');
    expect(leader.membership().pendingConfChange).toBe(false);
    for (const m of members.values()) await m.stop();
  });

  it('a removed follower is listed as removed and never claims; a leader that applies its own removal stops claiming at once', async () => {
    const { members } = makeGroup(seed);
    for (const m of members.values()) await m.start();
    await runUntil(() => leaderOf(members) !== undefined, 5_000);
    const leader = leaderOf(members)!;
    const [gone] = Bootstrap.filter((id) => id !== leader.id) as [string];
    leader.proposeConfChange({ transition: 'Auto', changes: [{ type: 'RemoveNode', nodeId: gone }] });
    await runUntil(() => applied(leader) && !leader.membership().confState.voters.includes(gone), 5_000, () => assertAtMostOneClaims(members));
    expect(leader.members().find((i) => i.id === gone)?.membership).toBe('removed');
    await runUntil(() => leaderOf(members) !== undefined, 5_000);

    // The core's safety net, reached past the member's refusal: the leader removes itself.
    const current = leaderOf(members)!;
    const node = (current as unknown as { node: { proposeConfChange(cc: unknown): void } }).node;
    const claims: boolean[] = [];
    current.onMembershipChange(() => claims.push(current.view().isLeader));
    node.proposeConfChange({ transition: 'Auto', changes: [{ type: 'RemoveNode', nodeId: current.id }] });
    (current as unknown as { processReady(): void }).processReady();
    await runUntil(() => claims.length > 0, 5_000, () => assertAtMostOneClaims(members));
    expect(claims).toEqual([false]);
    expect(current.view().isLeader).toBe(false);
    // The one voter left leads alone.
    await runUntil(() => leaderOf(members) !== undefined, 10_000, () => assertAtMostOneClaims(members));
    expect(leaderOf(members)?.id).not.toBe(current.id);
    expect(leaderOf(members)?.members().find((i) => i.id === current.id)?.membership).toBe('removed');
    for (const m of members.values()) await m.stop();
  });
});
