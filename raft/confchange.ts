import { confStateOf, newProgress, type Progress, type TrackerConfig } from './tracker.js';
import { confChangeEntersJoint, confChangeLeavesJoint, None, RaftError, type ConfChangeSingle, type ConfChangeV2, type ConfState } from './types.js';

/**
 * Configuration changes (etcd's confchange package). Each operation works on a copy of
 * the tracker's configuration and progress and returns the result, or throws
 * INVALID_CONF_CHANGE leaving the input untouched. The raft node switches to the
 * result; nothing here knows about terms, logs or messages.
 */
export interface TrackerState {
  readonly config: TrackerConfig;
  readonly progress: ReadonlyMap<string, Progress>;
}

/** The mutable copy an operation builds. Sets, so repeated changes are idempotent. */
interface Work {
  incoming: Set<string>;
  outgoing: Set<string>;
  learners: Set<string>;
  learnersNext: Set<string>;
  autoLeave: boolean;
  progress: Map<string, Progress>;
}

function fail(message: string): never {
  throw new RaftError('INVALID_CONF_CHANGE', message);
}

export class Changer {
  /** @param lastIndex the log's last index: new members' progress starts probing there. */
  constructor(
    private readonly tracker: TrackerState,
    private readonly lastIndex: number,
  ) {}

  /**
   * Enters a joint configuration: the current voters become the outgoing half, the
   * changes apply to the incoming half, and decisions need a majority of both.
   */
  enterJoint(autoLeave: boolean, changes: readonly ConfChangeSingle[]): TrackerState {
    const w = this.checkAndCopy();
    if (w.outgoing.size > 0) fail('config is already joint');
    if (w.incoming.size === 0) fail("can't make a zero-voter config joint");
    w.outgoing = new Set(w.incoming);
    this.apply(w, changes);
    w.autoLeave = autoLeave;
    return finish(w);
  }

  /**
   * Leaves a joint configuration: the outgoing half goes, demoted voters become
   * learners, and members in neither the incoming half nor the learners are dropped.
   */
  leaveJoint(): TrackerState {
    const w = this.checkAndCopy();
    if (w.outgoing.size === 0) fail("can't leave a non-joint config");
    for (const id of w.learnersNext) {
      w.learners.add(id);
      // The demoted voter keeps its replication progress, now as a learner.
      setLearner(w, id, true);
    }
    w.learnersNext.clear();
    for (const id of w.outgoing) {
      if (!w.incoming.has(id) && !w.learners.has(id)) w.progress.delete(id);
    }
    w.outgoing.clear();
    w.autoLeave = false;
    return finish(w);
  }

  /**
   * Applies changes that alter at most one voter, outside a joint configuration: with
   * one voter changed, any old majority and any new majority share a member (Raft §4.1).
   */
  simple(changes: readonly ConfChangeSingle[]): TrackerState {
    const w = this.checkAndCopy();
    if (w.outgoing.size > 0) fail("can't apply simple config change in joint config");
    this.apply(w, changes);
    const before = new Set(this.tracker.config.voters[0]);
    let changed = 0;
    for (const id of before) if (!w.incoming.has(id)) changed++;
    for (const id of w.incoming) if (!before.has(id)) changed++;
    if (changed > 1) fail('more than one voter changed without entering joint config');
    return finish(w);
  }

  private apply(w: Work, changes: readonly ConfChangeSingle[]): void {
    for (const cc of changes) {
      // etcd ignores node id 0; our empty id is the same None.
      if (cc.nodeId === None) continue;
      switch (cc.type) {
        case 'AddNode':
          this.makeVoter(w, cc.nodeId);
          break;
        case 'AddLearnerNode':
          this.makeLearner(w, cc.nodeId);
          break;
        case 'RemoveNode':
          remove(w, cc.nodeId);
          break;
        case 'UpdateNode':
          break;
        default:
          fail(`unexpected conf change type ${String((cc as { type: unknown }).type)}`);
      }
    }
    if (w.incoming.size === 0) fail('removed all voters');
  }

  private makeVoter(w: Work, id: string): void {
    if (!w.progress.has(id)) {
      this.initProgress(w, id, false);
      return;
    }
    setLearner(w, id, false);
    w.learners.delete(id);
    w.learnersNext.delete(id);
    w.incoming.add(id);
  }

  private makeLearner(w: Work, id: string): void {
    const pr = w.progress.get(id);
    if (!pr) {
      this.initProgress(w, id, true);
      return;
    }
    if (pr.isLearner) return;
    // Demoting: drop the voter from the incoming half, but keep its progress.
    remove(w, id);
    w.progress.set(id, pr);
    if (w.outgoing.has(id)) {
      // Still a voter of the outgoing half: it becomes a learner when the joint config is left.
      w.learnersNext.add(id);
    } else {
      setLearner(w, id, true);
      w.learners.add(id);
    }
  }

  private initProgress(w: Work, id: string, isLearner: boolean): void {
    if (isLearner) w.learners.add(id);
    else w.incoming.add(id);
    // Match 0 < Next; a new member counts as active so CheckQuorum does not depose the leader at once.
    const pr = newProgress(0, Math.max(this.lastIndex, 1), isLearner);
    pr.recentActive = true;
    w.progress.set(id, pr);
  }

  private checkAndCopy(): Work {
    const c = this.tracker.config;
    const progress = new Map<string, Progress>();
    for (const [id, pr] of this.tracker.progress) progress.set(id, { ...pr });
    const w: Work = {
      incoming: new Set(c.voters[0]),
      outgoing: new Set(c.voters[1]),
      learners: new Set(c.learners),
      learnersNext: new Set(c.learnersNext),
      autoLeave: c.autoLeave,
      progress,
    };
    checkInvariants(w);
    return w;
  }
}

function setLearner(w: Work, id: string, isLearner: boolean): void {
  const pr = w.progress.get(id);
  if (pr) w.progress.set(id, { ...pr, isLearner });
}

function remove(w: Work, id: string): void {
  if (!w.progress.has(id)) return;
  w.incoming.delete(id);
  w.learners.delete(id);
  w.learnersNext.delete(id);
  // A voter of the outgoing half keeps its progress until the joint config is left.
  if (!w.outgoing.has(id)) w.progress.delete(id);
}

function checkInvariants(w: Work): void {
  for (const set of [w.incoming, w.outgoing, w.learners, w.learnersNext]) {
    for (const id of set) if (!w.progress.has(id)) fail(`no progress for ${id}`);
  }
  for (const id of w.learnersNext) {
    if (!w.outgoing.has(id)) fail(`${id} is in LearnersNext, but not Voters[1]`);
    if (w.progress.get(id)?.isLearner) fail(`${id} is in LearnersNext, but is already marked as learner`);
  }
  for (const id of w.learners) {
    if (w.outgoing.has(id)) fail(`${id} is in Learners and Voters[1]`);
    if (w.incoming.has(id)) fail(`${id} is in Learners and Voters[0]`);
    if (!w.progress.get(id)?.isLearner) fail(`${id} is in Learners, but is not marked as learner`);
  }
  if (w.outgoing.size === 0) {
    if (w.learnersNext.size > 0) fail('LearnersNext must be empty when not joint');
    if (w.autoLeave) fail('AutoLeave must be false when not joint');
  }
}

function finish(w: Work): TrackerState {
  checkInvariants(w);
  const config: TrackerConfig = {
    voters: [[...w.incoming].sort(), [...w.outgoing].sort()],
    learners: [...w.learners].sort(),
    learnersNext: [...w.learnersNext].sort(),
    autoLeave: w.autoLeave,
  };
  return { config, progress: w.progress };
}

/**
 * Builds the tracker state a ConfState describes, from nothing (etcd's confchange.Restore):
 * the outgoing voters one by one, then the joint step into the incoming configuration, so
 * the result passes the same checks as the changes that produced it.
 */
export function restoreConfState(cs: ConfState, lastIndex: number): TrackerState {
  let state: TrackerState = {
    config: { voters: [[], []], learners: [], learnersNext: [], autoLeave: false },
    progress: new Map(),
  };
  const add = (type: ConfChangeSingle['type']) => (nodeId: string) => ({ type, nodeId });
  const incoming: ConfChangeSingle[] = [
    ...cs.votersOutgoing.map(add('RemoveNode')),
    ...cs.voters.map(add('AddNode')),
    ...cs.learners.map(add('AddLearnerNode')),
    ...cs.learnersNext.map(add('AddLearnerNode')),
  ];
  if (cs.votersOutgoing.length === 0) {
    // A learner-only or empty ConfState fails here as it does in etcd: it has no voters.
    for (const cc of incoming) state = new Changer(state, lastIndex).simple([cc]);
    if (incoming.length === 0) return state;
  } else {
    for (const id of cs.votersOutgoing) state = new Changer(state, lastIndex).simple([{ type: 'AddNode', nodeId: id }]);
    state = new Changer(state, lastIndex).enterJoint(cs.autoLeave, incoming);
  }
  return state;
}


/**
 * The configuration `cc` would produce from `cs`, as applying it would (same checks, same
 * INVALID_CONF_CHANGE refusals); for a driver that vets a change before proposing it.
 */
export function confStateAfter(cs: ConfState, cc: ConfChangeV2): ConfState {
  const changer = new Changer(restoreConfState(cs, 0), 0);
  let next: TrackerState;
  if (confChangeLeavesJoint(cc)) next = changer.leaveJoint();
  else {
    const { joint, autoLeave } = confChangeEntersJoint(cc);
    next = joint ? changer.enterJoint(autoLeave, cc.changes) : changer.simple(cc.changes);
  }
  return confStateOf(next.config);
}
