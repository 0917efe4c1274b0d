/**
 * What the membership e2e files judge, as a user would see it: the leader's configuration equals
 * the live pods (with the learners promoted), every pod runs its own incarnation, one pod carries
 * raft-role=leader, and while a step ran no two members claimed isLeader at once. Each step prints
 * one line with its sample count, the overlaps and the longest time without any isLeader.
 */
import { expect } from 'vitest';
import { waitFor, type LeaderAnswer } from '../integration/harness.js';
import type { Group } from './group.js';
import { LeaderSampler, type Sample } from './leader-sampler.js';

export interface Converged {
  leader: LeaderAnswer;
  /** `<pod>@<uid>` of the live pods, sorted. */
  ids: string[];
  voters: number;
}

/** The voter count the reconciler settles on: odd, up to --max-voters (5). */
export function wantedVoters(pods: number, maxVoters = 5): number {
  const capped = Math.min(pods, maxVoters);
  return capped % 2 === 0 ? capped - 1 : capped;
}

export class MembershipChecks {
  readonly sampler: LeaderSampler;

  constructor(
    private readonly group: Group,
    private readonly label: string,
  ) {
    this.sampler = new LeaderSampler(() =>
      group.incarnations.filter((m) => m.process.running).map((m) => ({ key: `${m.name}@${m.uid}`, url: `http://${m.ip}:${group.httpPort}/leader` })),
    );
  }

  /** Runs a test body; a failure carries the members' logs and the kubelet's actions. */
  async step<T>(body: () => Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${this.group.logs()}\n${this.group.kubeletReport()}`, { cause: error });
    }
  }

  /** Waits until the membership equals the `pods` live pods and the voters are promoted. */
  converged(pods: number, deadlineMs = 90_000): Promise<Converged> {
    const group = this.group;
    return waitFor(`the raft membership to equal the ${pods} pods`, deadlineMs, async () => {
      const live = await group.livePods();
      if (live.length !== pods) return undefined;
      if (!live.every((p) => group.incarnations.some((i) => i.uid === p.metadata.uid && i.process.running))) return undefined;
      const ids = live.map((p) => `${p.metadata.name}@${p.metadata.uid}`).sort();
      const answers = await Promise.all(live.map((p) => group.ask(p.metadata.name).catch(() => undefined)));
      const leader = answers.find((a) => a?.isLeader);
      if (!leader || !answers.every((a) => a?.leaderId === leader.selfId)) return undefined;
      const members = leader.members.filter((m) => m.membership === 'voter' || m.membership === 'learner').map((m) => m.id).sort();
      if (JSON.stringify(members) !== JSON.stringify(ids)) return undefined;
      const labelled = live.filter((p) => p.metadata.labels?.['raft-role'] === 'leader').map((p) => p.metadata.name);
      if (labelled.length !== 1 || labelled[0] !== leader.self) return undefined;
      const voters = leader.members.filter((m) => m.membership === 'voter').length;
      return voters === wantedVoters(pods) ? { leader, ids, voters } : undefined;
    }, 200);
  }

  /** Waits until `pods` pods converged and none of `gone` is a member any more. */
  replaced(pods: number, gone: readonly string[], what: string, deadlineMs = 180_000): Promise<Converged> {
    return waitFor(what, deadlineMs, async () => {
      const c = await this.converged(pods, 5_000).catch(() => undefined);
      return c && gone.every((id) => !c.ids.includes(id)) ? c : undefined;
    }, 500);
  }

  /** Prints the step's line and asserts that no two members claimed isLeader at once (among the samples `keep` keeps). */
  report(what: string, fromMs: number, keep?: (s: Sample) => boolean): void {
    const overlaps = this.sampler.overlaps(keep);
    const gap = this.sampler.longestGapMs(fromMs);
    const samples = this.sampler.samples.filter((s) => s.sentAt >= fromMs).length;
    console.log(`e2e membership (${this.label}): ${what}: ${samples} samples, ${overlaps.length} overlapping isLeader, longest time without isLeader ${gap.toFixed(0)} ms`);
    expect(overlaps).toEqual([]);
  }
}
