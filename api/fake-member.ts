/**
 * An in-memory `Member` whose view a test (or a demo of the API alone) sets by
 * hand. It behaves as the interface promises: `onChange` fires on every change
 * of the view, and `leaderChanged()` is reported to the metrics when the leader
 * changes, as the real member does.
 */
import { ClusterError } from '../cluster/errors.js';
import type { LeadershipView, Member, MemberInfo, MemberMetrics, MembershipStatus, TransferResult } from '../cluster/interfaces.js';

export class FakeMember implements Member {
  readonly id: string;
  private current: LeadershipView;
  private memberList: MemberInfo[];
  private readonly listeners = new Set<(view: LeadershipView) => void>();
  /** Every transferLeadership call, with its target (undefined: the best follower). */
  readonly transferCalls: (string | undefined)[] = [];
  /** What transferLeadership does; by default it hands over at once. */
  transferImpl: (to: string | undefined) => Promise<TransferResult> = async (to) => {
    const target = to ?? this.memberList.find((m) => m.id !== this.id)?.id ?? null;
    return { leader: target, transferred: target !== null };
  };
  metrics: MemberMetrics | null = null;
  /** What freshVoteDelayMsLeft() answers; a test sets it. */
  freshVoteDelayMs = 0;

  constructor(id: string, peers: MemberInfo[] = []) {
    this.id = id;
    this.current = {
      self: id,
      leader: null,
      term: 0,
      role: 'Follower',
      isLeader: false,
      leaseExpiresInMs: null,
      since: null,
    };
    this.memberList = [{ id, address: null, connected: true, role: 'unknown' }, ...peers];
  }

  view(): LeadershipView {
    return { ...this.current };
  }

  membership(): MembershipStatus {
    return { confState: { voters: [], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false }, pendingConfChange: false, appliedIndex: 0, lastIndex: 0, progress: {} };
  }

  proposeConfChange(): void {
    throw new ClusterError('NOT_LEADER', 'this test member changes no configuration');
  }

  onMembershipChange(): () => void {
    return () => undefined;
  }

  freshVoteDelayMsLeft(): number {
    return this.freshVoteDelayMs;
  }

  members(): MemberInfo[] {
    return this.memberList.map((m) => ({ ...m }));
  }

  /** Changes the view and notifies listeners, as the member does after each Ready. */
  update(patch: Partial<Omit<LeadershipView, 'self'>>): void {
    const before = this.current;
    this.current = { ...before, ...patch };
    if (this.current.leader !== before.leader && this.current.leader !== null) this.metrics?.leaderChanged();
    for (const listener of [...this.listeners]) listener(this.view());
  }

  setMembers(members: MemberInfo[]): void {
    this.memberList = members.map((m) => ({ ...m }));
  }

  listenerCount(): number {
    return this.listeners.size;
  }

  onChange(listener: (view: LeadershipView) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  forgetLeader(): void {
    this.update({ leader: null, isLeader: false, leaseExpiresInMs: null, since: null });
  }

  campaign(): void {}

  transferLeadership(to?: string): Promise<TransferResult> {
    this.transferCalls.push(to);
    return this.transferImpl(to);
  }

  lastLogId(): { index: number; term: number } {
    return { index: 0, term: this.current.term };
  }

  worstTickLatenessMs(): number {
    return 0;
  }
}
