import { jointVoteResult } from '../../raft/quorum.js';
import { None, RaftError, type ConfChangeSingle, type ConfChangeV2, type ConfState, type Message, type RandomSource } from '../../raft/index.js';

/**
 * The membership invariants of the simulator, kept apart from simulator.ts:
 * - configurations never diverge: every member that applies the entry at index i applies
 *   the same change and ends in the same ConfState;
 * - no vote is counted from a non-member: the votes a leader was granted (as delivered) plus
 *   its own win a quorum of every configuration in force when it wins.
 */
export class MembershipInvariants {
  /** ConfState after the entry at each index, as the first member applied it. */
  private readonly byIndex = new Map<number, { id: string; confState: string }>();
  /** Granted votes delivered to a candidate, by "candidate@term". */
  private readonly granted = new Map<string, Set<string>>();
  applied = 0;
  leadersChecked = 0;

  constructor(private readonly violation: (invariant: string, text: string) => Error) {}

  onApplied(id: string, index: number, cs: ConfState): void {
    this.applied++;
    const text = JSON.stringify(cs);
    const first = this.byIndex.get(index);
    if (!first) this.byIndex.set(index, { id, confState: text });
    else if (first.confState !== text) {
      throw this.violation('config-diverged', `${id} applied ${text} at index ${index}, ${first.id} applied ${first.confState}`);
    }
  }

  onDelivered(m: Message): void {
    if (m.type !== 'MsgVoteResp' || m.reject) return;
    const key = `${m.to}@${m.term}`;
    let set = this.granted.get(key);
    if (!set) this.granted.set(key, (set = new Set()));
    set.add(m.from);
  }

  onLeader(id: string, term: number, cs: ConfState): void {
    this.leadersChecked++;
    const votes = new Map<string, boolean>([[id, true]]);
    for (const from of this.granted.get(`${id}@${term}`) ?? []) votes.set(from, true);
    if (jointVoteResult([cs.voters, cs.votersOutgoing], votes) !== 'VoteWon') {
      throw this.violation(
        'vote-from-non-member',
        `${id} leads term ${term} with votes from ${[...votes.keys()].sort().join(', ')}, not a quorum of voters ${JSON.stringify(cs.voters)} / outgoing ${JSON.stringify(cs.votersOutgoing)}`,
      );
    }
  }
}

/** Counts of what the random configuration driver proposed, for the report. */
export interface ConfChangeCounts {
  proposed: number;
  refused: number;
  addLearner: number;
  promote: number;
  remove: number;
  swap: number;
  leaveJoint: number;
  /** A leader handed over first, then the new leader proposed the old one's removal. */
  selfRemove: number;
}

export function newConfChangeCounts(): ConfChangeCounts {
  return { proposed: 0, refused: 0, addLearner: 0, promote: 0, remove: 0, swap: 0, leaveJoint: 0, selfRemove: 0 };
}

const MaxVoters = 5;

/**
 * One random change a leader could propose from its configuration: add a learner, promote
 * a learner, remove a member, swap a voter for a learner (joint, left automatically or
 * explicitly), or leave an explicit joint configuration. Undefined when nothing fits.
 */
export function randomConfChange(
  rnd: RandomSource,
  pool: readonly string[],
  cs: ConfState,
  counts: ConfChangeCounts,
): ConfChangeV2 | undefined {
  if (cs.votersOutgoing.length > 0) {
    if (cs.autoLeave) return undefined;
    counts.leaveJoint++;
    return { transition: 'Auto', changes: [] };
  }
  const members = new Set([...cs.voters, ...cs.learners]);
  const outside = pool.filter((id) => !members.has(id));
  const pick = (ids: readonly string[]): string => ids[rnd.nextInt(ids.length)] ?? None;
  const one = (change: ConfChangeSingle): ConfChangeV2 => ({ transition: 'Auto', changes: [change] });
  switch (rnd.nextInt(4)) {
    case 0:
      if (outside.length === 0) return undefined;
      counts.addLearner++;
      return one({ type: 'AddLearnerNode', nodeId: pick(outside) });
    case 1:
      if (cs.learners.length === 0 || cs.voters.length >= MaxVoters) return undefined;
      counts.promote++;
      return one({ type: 'AddNode', nodeId: pick(cs.learners) });
    case 2: {
      const removable = cs.voters.length > 1 ? [...cs.voters, ...cs.learners] : [...cs.learners];
      if (removable.length === 0) return undefined;
      counts.remove++;
      return one({ type: 'RemoveNode', nodeId: pick(removable) });
    }
    default: {
      if (cs.learners.length === 0) return undefined;
      counts.swap++;
      const transition = rnd.nextInt(2) === 0 ? 'Auto' : 'JointExplicit';
      return {
        transition,
        changes: [
          { type: 'AddNode', nodeId: pick(cs.learners) },
          { type: 'RemoveNode', nodeId: pick(cs.voters) },
        ],
      };
    }
  }
}

/** Proposes on the leader; a refusal (a change still pending, a transfer) is expected and counted. */
export function tryPropose(propose: () => void, counts: ConfChangeCounts): void {
  try {
    propose();
    counts.proposed++;
  } catch (err) {
    if (!(err instanceof RaftError) || err.code !== 'PROPOSAL_DROPPED') throw err;
    counts.refused++;
  }
}
