/**
 * Membership that follows a Deployment on a real control plane (issue 11): the chart's example
 * as a Deployment on emptyDir elects one leader; `kubectl scale` 3→5→3, `kubectl rollout
 * restart` of 3 and of 5 replicas, deleting the leader pod, deleting two followers at once (of 5, and both of 3 with SIGTERM at once) and
 * SIGKILL of the leader mid conf change move the raft configuration to the pods that exist,
 * while isLeader is sampled on every member every few ms: never two claims at once, and the
 * longest time without one is printed. The StatefulSet path is membership-statefulset.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { waitFor } from '../integration/harness.js';
import { MembershipE2e } from './membership-setup.js';

const e2e = new MembershipE2e('membership');
const Namespace = 'deploy';

describe.skipIf(e2e.skipReason !== '')('a Deployment whose members follow its pods, on a real control plane', () => {
  e2e.hooks({ runDir: 'membership', label: 'deployment', install: () => ({ namespace: Namespace, release: 'dep', workload: 'Deployment' }) });

  const step = <T>(body: () => Promise<T>) => e2e.step(body);
  const deployment = () => e2e.group.sts.metadata.name;
  const scale = (replicas: number) => e2e.cp.kubectl(['scale', 'deployment', deployment(), `--replicas=${replicas}`, '--namespace', Namespace]);

  it('a Deployment of 3 elects one leader; the membership is its 3 pods', () => step(async () => {
    const c = await e2e.checks.converged(3);
    expect(c.voters).toBe(3);
    expect(c.leader.selfId).toMatch(/@[0-9a-f-]{36}$/);
    e2e.checks.report('install of 3', 0);
  }), 180_000);

  it('kubectl scale 3→5→3: the membership follows, never two leaders', () => step(async () => {
    const from = performance.now();
    await scale(5);
    const five = await e2e.checks.converged(5);
    expect(five.voters).toBe(5);
    await scale(3);
    const three = await e2e.checks.converged(3);
    expect(three.voters).toBe(3);
    e2e.checks.report('scale 3→5→3', from);
  }), 240_000);

  it('kubectl rollout restart of the 3 replicas: every pod replaced, the membership follows, never two leaders', () => step(async () => {
    const before = (await e2e.checks.converged(3)).ids;
    const from = performance.now();
    await e2e.cp.kubectl(['rollout', 'restart', `deployment/${deployment()}`, '--namespace', Namespace]);
    const after = await e2e.checks.replaced(3, before, 'every pod to be replaced and the membership to follow');
    expect(after.voters).toBe(3);
    e2e.checks.report('rollout restart of 3', from);
  }), 240_000);

  it('kubectl rollout restart of 5 replicas: every pod replaced, 5 voters again, never two leaders', () => step(async () => {
    await scale(5);
    const before = (await e2e.checks.converged(5)).ids;
    const from = performance.now();
    await e2e.cp.kubectl(['rollout', 'restart', `deployment/${deployment()}`, '--namespace', Namespace]);
    const after = await e2e.checks.replaced(5, before, 'all 5 pods to be replaced and the membership to follow', 240_000);
    expect(after.voters).toBe(5);
    e2e.checks.report('rollout restart of 5', from);
    await scale(3);
    await e2e.checks.converged(3);
  }), 360_000);

  it('kubectl delete pod of the leader (emptyDir): its replacement is a new member, the old incarnation is removed', () => step(async () => {
    const before = await e2e.checks.converged(3);
    const from = performance.now();
    await e2e.cp.kubectl(['delete', 'pod', before.leader.self, '--namespace', Namespace, '--wait=false']);
    const after = await e2e.checks.replaced(3, [before.leader.selfId], 'the leader pod to be replaced and the membership to follow', 120_000);
    expect(after.leader.selfId).not.toBe(before.leader.selfId);
    expect(after.voters).toBe(3);
    e2e.checks.report('delete pod of the leader', from);
  }), 180_000);

  it('kubectl delete pod of two followers at once (5 replicas): both replaced, the leader stays', () => step(async () => {
    await scale(5);
    const before = await e2e.checks.converged(5);
    const followers = before.ids.filter((id) => id !== before.leader.selfId).slice(0, 2);
    const from = performance.now();
    await e2e.cp.kubectl(['delete', 'pod', ...followers.map((id) => id.split('@')[0]!), '--namespace', Namespace, '--wait=false']);
    const after = await e2e.checks.replaced(5, followers, 'both followers to be replaced and the membership to follow', 120_000);
    // 3 of 5 voters stay up, so the leader keeps its quorum and its lease.
    expect(after.leader.selfId).toBe(before.leader.selfId);
    expect(after.voters).toBe(5);
    e2e.checks.report('delete pod of two followers at once (of 5)', from);
    await scale(3);
    await e2e.checks.converged(3);
  }), 240_000);

  it('kubectl delete pod of both followers of 3 at once, both SIGTERMed before the leader sees it: the leaving voters stay until removed, the quorum survives', () => step(async () => {
    const before = await e2e.checks.converged(3);
    const followers = before.ids.filter((id) => id !== before.leader.selfId);
    const leader = e2e.group.incarnations.find((i) => `${i.name}@${i.uid}` === before.leader.selfId)!;
    const from = performance.now();
    // The kubelet is faster than the leader's pod watch: the leader is paused while both pods are
    // deleted, until both sidecars have their SIGTERM (leaving at once would take the quorum along).
    const names = followers.map((id) => id.split('@')[0]!);
    leader.process.signal('SIGSTOP');
    try {
      await e2e.cp.kubectl(['delete', 'pod', ...names, '--namespace', Namespace, '--wait=false']);
      await waitFor('both followers to get SIGTERM from the kubelet', 5_000, () =>
        names.every((n) => e2e.group.logLines(n).some((l) => l.signal === 'SIGTERM')) ? true : undefined, 10);
    } finally {
      leader.process.signal('SIGCONT');
    }
    const after = await e2e.checks.replaced(3, followers, 'both followers to be replaced and the membership to follow', 120_000);
    expect(after.leader.selfId).toBe(before.leader.selfId);
    expect(after.voters).toBe(3);
    const left = followers.flatMap((id) => e2e.group.logLines(id.split('@')[0]!)).filter((l) => l.component === 'leave-wait' && l.outcome !== undefined).map((l) => l.outcome);
    expect(left).toEqual(['removed', 'removed']);
    e2e.checks.report('delete pod of both followers of 3 at once', from);
  }), 180_000);

  it('SIGKILL of the leader in the middle of a configuration change (scale 3→4), then its pod is deleted', () => step(async () => {
    const before = await e2e.checks.converged(3);
    const from = performance.now();
    await scale(4);
    // The reconciler adds the new pod as a learner: kill the leader once the new pod's member runs.
    await waitFor('the fourth pod to run a member', 60_000, () => (e2e.group.incarnations.filter((m) => m.process.running).length >= 4 ? true : undefined), 20);
    const victim = e2e.group.incarnations.find((m) => `${m.name}@${m.uid}` === before.leader.selfId)!;
    victim.process.signal('SIGKILL');
    await e2e.cp.kubectl(['delete', 'pod', victim.name, '--namespace', Namespace, '--wait=false']);
    const after = await e2e.checks.replaced(4, [before.leader.selfId], 'the membership to equal the 4 pods without the killed leader', 120_000);
    expect(after.leader.selfId).not.toBe(before.leader.selfId);
    e2e.checks.report('SIGKILL of the leader mid conf change', from);
    await scale(3);
    await e2e.checks.converged(3);
  }), 240_000);
});
