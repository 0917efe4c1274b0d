import { describe, expect, it } from 'vitest';
import { Changer, confStateAfter, restoreConfState, type TrackerState } from './confchange.js';
import { seededRandom } from './random.js';
import { confStateOf, describeConfig } from './tracker.js';
import { confStateEqual, None, RaftError, type ConfChangeSingle, type ConfState } from './types.js';
import { confChangeScenarios } from './testdata/confchange-cases.js';

const types = { v: 'AddNode', l: 'AddLearnerNode', r: 'RemoveNode', u: 'UpdateNode' } as const;

function parseChanges(s: string): ConfChangeSingle[] {
  if (s.trim() === '') return [];
  return s
    .trim()
    .split(/\s+/)
    .map((tok) => {
      const type = types[tok[0] as keyof typeof types];
      if (!type) throw new Error(`unknown token ${tok}`);
      const id = tok.slice(1);
      return { type, nodeId: id === '0' ? None : id };
    });
}

/** etcd's datadriven output: the config, then one line per member's progress. */
function describeState(s: TrackerState): string {
  const lines = [describeConfig(s.config)];
  for (const id of [...s.progress.keys()].sort()) {
    const pr = s.progress.get(id)!;
    lines.push(`${id}: State${pr.state} match=${pr.match} next=${pr.next}${pr.isLearner ? ' learner' : ''}`);
  }
  return lines.join('\n');
}

const empty: TrackerState = {
  config: { voters: [[], []], learners: [], learnersNext: [], autoLeave: false },
  progress: new Map(),
};

describe('confchange (etcd confchange/testdata)', () => {
  it.each(confChangeScenarios.map((s) => [s.file, s] as const))('%s', (_file, scenario) => {
    let state = empty;
    scenario.steps.forEach((step, lastIndex) => {
      const changer = new Changer(state, lastIndex);
      const changes = parseChanges(step.changes);
      let got: string;
      try {
        const next =
          step.cmd === 'simple'
            ? changer.simple(changes)
            : step.cmd === 'enter-joint'
              ? changer.enterJoint(step.autoLeave ?? false, changes)
              : changer.leaveJoint();
        state = next;
        got = describeState(next);
      } catch (err) {
        if (!(err instanceof RaftError) || err.code !== 'INVALID_CONF_CHANGE') throw err;
        got = err.message;
      }
      expect(got, `step ${lastIndex + 1}: ${step.cmd} ${step.changes}`).toBe(step.want);
    });
  });

  it('leaves its input untouched when a change is refused or applied', () => {
    const start = new Changer(empty, 0).simple(parseChanges('v1 l2'));
    const before = describeState(start);
    expect(() => new Changer(start, 1).simple(parseChanges('v3 v4'))).toThrow(/more than one voter/);
    new Changer(start, 1).enterJoint(true, parseChanges('v3 v4 r1'));
    expect(describeState(start)).toBe(before);
  });
});

/** A random valid ConfState, as etcd's rndConfChange builds (ids 1..20). */
function randomConfState(rnd: ReturnType<typeof seededRandom>): ConfState {
  const pool = Array.from({ length: 20 }, (_, i) => String(i + 1));
  const pick = (from: string[], n: number): string[] => {
    const left = [...from];
    const out: string[] = [];
    while (out.length < n && left.length > 0) out.push(left.splice(rnd.nextInt(left.length), 1)[0]!);
    return out.sort();
  };
  const voters = pick(pool, 1 + rnd.nextInt(5));
  const learners = pick(pool.filter((id) => !voters.includes(id)), rnd.nextInt(4));
  const joint = rnd.nextInt(2) === 1;
  if (!joint) return { voters, votersOutgoing: [], learners, learnersNext: [], autoLeave: false };
  const votersOutgoing = pick(pool.filter((id) => !learners.includes(id)), 1 + rnd.nextInt(5));
  const learnersNext = pick(votersOutgoing.filter((id) => !voters.includes(id)), rnd.nextInt(3));
  return { voters, votersOutgoing, learners, learnersNext, autoLeave: rnd.nextInt(2) === 1 };
}

describe('restoreConfState (etcd TestRestore)', () => {
  const cases: ConfState[] = [
    { voters: [], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false },
    { voters: ['1', '2', '3'], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false },
    { voters: ['1', '2', '3'], votersOutgoing: [], learners: ['4', '5', '6'], learnersNext: [], autoLeave: false },
    { voters: ['1', '2', '3'], votersOutgoing: ['1', '2', '4', '6'], learners: ['5'], learnersNext: ['4'], autoLeave: false },
  ];
  it.each(cases.map((cs) => [JSON.stringify(cs), cs] as const))('round-trips %s', (_name, cs) => {
    const restored = confStateOf(restoreConfState(cs, 10).config);
    expect(restored).toEqual(cs);
  });

  it('round-trips random ConfStates', () => {
    const seed = Number(process.env.RAFT_SEED ?? 20261201);
    console.log(`restoreConfState property: seed ${seed} (replay: RAFT_SEED=${seed} npx vitest run raft/confchange.test.ts)`);
    const rnd = seededRandom(seed);
    for (let i = 0; i < 1000; i++) {
      const cs = randomConfState(rnd);
      const state = restoreConfState(cs, 10);
      const got = confStateOf(state.config);
      expect(confStateEqual(got, cs), `case ${i}: ${JSON.stringify(cs)} restored as ${JSON.stringify(got)}`).toBe(true);
      for (const id of [...cs.voters, ...cs.votersOutgoing, ...cs.learners]) expect(state.progress.has(id)).toBe(true);
    }
  });
});

describe('confStateAfter', () => {
  const cs = { voters: ['a', 'b', 'c'], votersOutgoing: [], learners: ['d'], learnersNext: [], autoLeave: false };
  it('gives the configuration a change would produce, leaving the input untouched', () => {
    expect(confStateAfter(cs, { transition: 'Auto', changes: [{ type: 'AddNode', nodeId: 'd' }] }).voters).toEqual(['a', 'b', 'c', 'd']);
    const joint = confStateAfter(cs, { transition: 'JointImplicit', changes: [{ type: 'RemoveNode', nodeId: 'c' }, { type: 'AddNode', nodeId: 'd' }] });
    expect(joint).toMatchObject({ voters: ['a', 'b', 'd'], votersOutgoing: ['a', 'b', 'c'], autoLeave: true });
    expect(cs.voters).toEqual(['a', 'b', 'c']);
  });
  it('refuses what applying would refuse', () => {
    expect(() => confStateAfter(cs, { transition: 'Auto', changes: [] })).toThrow("can't leave a non-joint config");
  });
});
