/**
 * The leader's handover (the transfer gate): one transfer at a time whoever asks (reconciler,
 * SIGTERM, admin route), each waiter's deadline, the member's own retries to the next-best
 * follower when raft gave a transfer up, and the term a transfer marks as never claimed again.
 * Separate from RaftMember because it is policy on top of raft's transferLeader: the member
 * tells it what raft and the view say, and it acts through the member's withNode.
 */
import type { Logger } from 'pino';
import { None, type BasicStatus, type RawNode, type Status } from '../raft/index.js';
import { ClusterError } from './errors.js';
import type { LeadershipView, TransferResult } from './interfaces.js';
import { bestFollower } from './transfer-target.js';

interface PendingTransfer {
  resolve(result: TransferResult): void;
  deadlineMs: number;
  target: string;
}

/** What the gate reads from, and does through, its member. */
export interface TransferHost {
  readonly self: string;
  /** A getter: tests swap the member's logger after construction. */
  log(): Logger;
  nowMs(): number;
  running(): boolean;
  /** The member's term (the one on disk). */
  term(): number;
  leader(): string | null;
  /** Ids of the peers linked now: only those can take over at once. */
  connected(): ReadonlySet<string>;
  /** Acts on the node, then runs the Ready cycle; throws MEMBER_STOPPED once stopped. */
  withNode(what: string, action: (n: RawNode) => void): void;
  readonly electionTimeoutMs: number;
  readonly tickMs: number;
  /** How long a wait must be to outlast any other leader's lease (MemberTiming). */
  otherLeaseCoverMs(): number;
}

export class TransferGate {
  private readonly pending = new Set<PendingTransfer>();
  /** The term in which this member started a transfer: it never claims leadership again in it. */
  private startedInTerm = -1;
  private lastAttemptMs = -Infinity;
  private readonly targetsTried = new Set<string>();

  constructor(private readonly host: TransferHost) {}

  /** A transfer has a waiter: shutdown joins it even once this member is no longer the leader. */
  get underWay(): boolean {
    return this.pending.size > 0;
  }

  /** The term of the last transfer this member started, or -1 (vetConfChange reads it). */
  get transferredInTerm(): number {
    return this.startedInTerm;
  }

  /** RaftMember.transferLeadership: checks, then starts a transfer or joins the one under way. */
  request(node: RawNode, to?: string): Promise<TransferResult> {
    const h = this.host;
    // A stopped member runs no ticks: a transfer registered now would never resolve.
    if (!h.running()) return Promise.reject(new ClusterError('MEMBER_STOPPED', `member ${h.self} is stopped; cannot transfer leadership`));
    // One transfer at a time, whoever asks (reconciler, SIGTERM, admin route): a second one to
    // another target aborts the first, whose target may already campaign, and wakes a rival.
    // Checked before the role: a leader that gave its vote with MsgTimeoutNow is already a follower.
    const current = [...this.pending].at(-1);
    if (current !== undefined) {
      if (to === undefined || to === current.target) return this.join(current);
      return Promise.reject(new ClusterError('TRANSFER_IN_PROGRESS', `a leadership transfer to ${current.target} is under way; not starting one to ${to}`));
    }
    const status = node.status();
    if (status.state !== 'Leader') {
      return Promise.reject(
        new ClusterError('NOT_LEADER', `only the leader can transfer leadership; the leader is ${h.leader() ?? 'unknown'}`),
      );
    }
    const target = to ?? this.bestFollower(status);
    if (target === undefined) {
      return Promise.reject(new ClusterError('INVALID_TRANSFER_TARGET', 'no connected follower to transfer leadership to'));
    }
    if (target === h.self || !status.confState.voters.includes(target)) {
      return Promise.reject(
        new ClusterError('INVALID_TRANSFER_TARGET', `transfer target ${target} must be another voter of this group`),
      );
    }
    return new Promise<TransferResult>((resolve) => {
      // The target campaigns on its own timing: wait for the longest election any member may run.
      const electionMs = Math.max(h.electionTimeoutMs, h.otherLeaseCoverMs());
      this.pending.add({ resolve, deadlineMs: h.nowMs() + electionMs + h.tickMs, target });
      this.startTransfer(target);
    });
  }

  /** After every Ready: a transfer raft runs, whoever started it, marks the term. */
  noteStatus(status: BasicStatus): void {
    if (status.state === 'Leader' && status.leadTransferee !== None) this.startedInTerm = status.term;
  }

  /**
   * A MsgTimeoutNow of `term` is about to leave: its target may be elected at once, skipping every
   * lease, so this member stops claiming in that term now. With its write off the event loop, the
   * step-down of the same Ready shows only once that write is done.
   */
  timeoutNowSent(term: number): void {
    this.startedInTerm = Math.max(this.startedInTerm, term);
  }

  /** A published view that changed: a waiter's transfer is done once another member leads. */
  viewChanged(view: LeadershipView): void {
    for (const p of this.pending) {
      if (view.leader !== null && view.leader !== this.host.self) {
        this.pending.delete(p);
        p.resolve({ leader: view.leader, transferred: true });
      }
    }
  }

  /** The member stopped: every waiter hears that no transfer happened. */
  abandonAll(): void {
    for (const p of this.pending) p.resolve({ leader: this.host.leader(), transferred: false });
    this.pending.clear();
  }

  /** After every tick: waiters past their deadline give up; a leader's transfer is retried or its term given up. */
  afterTick(now: number, node: RawNode): void {
    const h = this.host;
    for (const p of this.pending) {
      if (now >= p.deadlineMs) {
        this.pending.delete(p);
        p.resolve({ leader: h.leader(), transferred: false });
      }
    }
    // A leader that began a transfer never claims this term again (a delayed MsgTimeoutNow can
    // still elect the target, whose voters skip their lease). If the core gave the transfer up,
    // try again so the group moves to a term with a claimable leader.
    const status = node.basicStatus();
    if (
      status.state === 'Leader' &&
      this.startedInTerm !== status.term &&
      status.confState.votersOutgoing.length > 0 &&
      !status.confState.voters.includes(h.self)
    ) {
      // Leading a joint configuration that leaves this member out (elected by both halves):
      // hand over before the auto-leave applies, rather than step down with no successor.
      const target = this.bestFollower(node.status());
      if (target !== undefined) this.startTransfer(target);
      return;
    }
    if (
      status.state === 'Leader' &&
      this.startedInTerm === status.term &&
      status.leadTransferee === None &&
      now - this.lastAttemptMs >= h.electionTimeoutMs
    ) {
      // The next-best follower this time; once every one was tried, start over.
      const full = node.status();
      const target = this.bestFollower(full, this.targetsTried) ?? this.bestFollower(full);
      if (target !== undefined) {
        if (this.targetsTried.has(target)) this.targetsTried.clear();
        this.startTransfer(target);
      } else {
        // No voter to hand over to (removed, or none connected): this term can never be claimed
        // again, so give it up; the next election, a new term, can be.
        h.log().info({ term: status.term }, 'no voter to hand leadership to; stepping down for a new term');
        this.lastAttemptMs = now;
        h.withNode('step down', (n) => n.stepDown());
      }
    }
  }

  /** Waits with the transfer under way, to its deadline. */
  private join(current: PendingTransfer): Promise<TransferResult> {
    return new Promise<TransferResult>((resolve) => this.pending.add({ resolve, deadlineMs: current.deadlineMs, target: current.target }));
  }

  private startTransfer(target: string): void {
    const h = this.host;
    // The member's own retries (afterTick) move the transfer on: the gate must name its target.
    for (const p of this.pending) p.target = target;
    this.lastAttemptMs = h.nowMs();
    const term = h.term();
    if (this.startedInTerm !== term) this.targetsTried.clear();
    this.targetsTried.add(target);
    this.startedInTerm = term;
    h.log().info({ term, to: target }, 'transferring leadership');
    h.withNode('transfer leadership', (n) => n.transferLeader(target));
  }

  private bestFollower(status: Status, exclude?: ReadonlySet<string>): string | undefined {
    return bestFollower(status, this.host.self, this.host.connected(), exclude);
  }
}
