/**
 * Membership that follows a Deployment on a real control plane (issue 11): the chart's example
 * as a Deployment on emptyDir elects one leader; `kubectl scale` 3→5→3 and `kubectl rollout
 * restart`, deleting the leader pod and SIGKILL of the leader mid conf change move the raft
 * configuration to the pods that exist, while isLeader is sampled on every member every few ms:
 * never two claims at once, and the longest time without one is printed.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Helm } from '../chart/helm.js';
import { waitFor, type LeaderAnswer } from '../integration/harness.js';
import { ControlPlane } from './control-plane.js';
import { Group } from './group.js';
import { registerNode } from './kubelet.js';
import { LeaderSampler } from './leader-sampler.js';

const helm = Group.helm();
const skipReason = inject('e2eSkipReason') || (typeof helm === 'string' ? helm : '');
if (skipReason) console.log(`[e2e membership skipped] ${skipReason}`);
const Namespace = 'deploy';

interface Converged {
  leader: LeaderAnswer;
  ids: string[];
  voters: number;
}

describe.skipIf(skipReason !== '')('a Deployment whose members follow its pods, on a real control plane', () => {
  let cp: ControlPlane;
  let group: Group;
  let sampler: LeaderSampler;

  beforeAll(async () => {
    cp = await ControlPlane.start(join(inject('e2eRunDir'), 'membership'));
    await registerNode(cp.admin);
    group = await Group.install(cp, helm as Helm, { namespace: Namespace, release: 'dep', workload: 'Deployment' });
    sampler = new LeaderSampler(() =>
      group.incarnations.filter((m) => m.process.running).map((m) => ({ key: `${m.name}@${m.uid}`, url: `http://${m.ip}:${group.httpPort}/leader` })),
    );
    sampler.start();
  });

  afterAll(async () => {
    await sampler?.stop();
    await group?.stop();
    await cp?.stop();
  });

  async function step<T>(body: () => Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${group?.logs() ?? ''}\n${group?.kubeletReport() ?? ''}`, { cause: error });
    }
  }

  /** The leader's configuration equals the live pods (voters promoted), each runs its incarnation, one pod is labelled leader. */
  function converged(pods: number, deadlineMs = 90_000): Promise<Converged> {
    return waitFor(`the raft membership to equal the ${pods} pods of the Deployment`, deadlineMs, async () => {
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
      // Learners are promoted after they join: wait for the odd count up to --max-voters (5).
      const wanted = Math.min(pods, 5) % 2 === 0 ? Math.min(pods, 5) - 1 : Math.min(pods, 5);
      return voters === wanted ? { leader, ids, voters } : undefined;
    }, 200);
  }

  function deployment(): string {
    return group.sts.metadata.name;
  }

  function report(what: string, fromMs: number): void {
    const overlaps = sampler.overlaps();
    const gap = sampler.longestGapMs(fromMs);
    const samples = sampler.samples.filter((s) => s.sentAt >= fromMs).length;
    console.log(`e2e membership: ${what}: ${samples} samples, ${overlaps.length} overlapping isLeader, longest time without isLeader ${gap.toFixed(0)} ms`);
    expect(overlaps).toEqual([]);
  }

  it('a Deployment of 3 elects one leader; the membership is its 3 pods', () => step(async () => {
    const c = await converged(3);
    expect(c.voters).toBe(3);
    expect(c.leader.selfId).toMatch(/@[0-9a-f-]{36}$/);
    report('install of 3', 0);
  }), 180_000);

  it('kubectl scale 3→5→3: the membership follows, never two leaders', () => step(async () => {
    const from = performance.now();
    await cp.kubectl(['scale', 'deployment', deployment(), '--replicas=5', '--namespace', Namespace]);
    const five = await converged(5);
    expect(five.voters).toBe(5);
    await cp.kubectl(['scale', 'deployment', deployment(), '--replicas=3', '--namespace', Namespace]);
    const three = await converged(3);
    expect(three.voters).toBe(3);
    report('scale 3→5→3', from);
  }), 240_000);

  it('kubectl rollout restart of the 3 replicas: every pod replaced, the membership follows, never two leaders', () => step(async () => {
    const before = (await converged(3)).ids;
    const from = performance.now();
    await cp.kubectl(['rollout', 'restart', `deployment/${deployment()}`, '--namespace', Namespace]);
    const after = await waitFor('every pod to be replaced and the membership to follow', 180_000, async () => {
      const c = await converged(3, 5_000).catch(() => undefined);
      return c && c.ids.every((id) => !before.includes(id)) ? c : undefined;
    }, 500);
    expect(after.voters).toBe(3);
    report('rollout restart of 3', from);
  }), 240_000);

  it('kubectl delete pod of the leader (emptyDir): its replacement is a new member, the old incarnation is removed', () => step(async () => {
    const before = await converged(3);
    const from = performance.now();
    await cp.kubectl(['delete', 'pod', before.leader.self, '--namespace', Namespace, '--wait=false']);
    const after = await waitFor('the leader pod to be replaced and the membership to follow', 120_000, async () => {
      const c = await converged(3, 5_000).catch(() => undefined);
      return c && !c.ids.includes(before.leader.selfId) ? c : undefined;
    }, 500);
    expect(after.leader.selfId).not.toBe(before.leader.selfId);
    expect(after.voters).toBe(3);
    report('delete pod of the leader', from);
  }), 180_000);

  it('SIGKILL of the leader in the middle of a configuration change (scale 3→4), then its pod is deleted', () => step(async () => {
    const before = await converged(3);
    const from = performance.now();
    await cp.kubectl(['scale', 'deployment', deployment(), '--replicas=4', '--namespace', Namespace]);
    // The reconciler adds the new pod as a learner: kill the leader once the new pod's member runs.
    await waitFor('the fourth pod to run a member', 60_000, () => (group.incarnations.filter((m) => m.process.running).length >= 4 ? true : undefined), 20);
    const victim = group.incarnations.find((m) => `${m.name}@${m.uid}` === before.leader.selfId)!;
    victim.process.signal('SIGKILL');
    await cp.kubectl(['delete', 'pod', victim.name, '--namespace', Namespace, '--wait=false']);
    const after = await waitFor('the membership to equal the 4 pods without the killed leader', 120_000, async () => {
      const c = await converged(4, 5_000).catch(() => undefined);
      return c && !c.ids.includes(before.leader.selfId) ? c : undefined;
    }, 500);
    expect(after.leader.selfId).not.toBe(before.leader.selfId);
    report('SIGKILL of the leader mid conf change', from);
    await cp.kubectl(['scale', 'deployment', deployment(), '--replicas=3', '--namespace', Namespace]);
    await converged(3);
  }), 240_000);
});
