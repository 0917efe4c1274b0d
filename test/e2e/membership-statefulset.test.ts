/**
 * Membership that follows a StatefulSet on a real control plane (issue 11): the chart's
 * StatefulSet example on emptyDir (the default) runs in membership mode: the members are
 * `<pod>@<uid>` incarnations, not the fixed `<sts>-<ordinal>` voter set; ordinal 0 (the oldest
 * pod, then the first name) bootstraps a one-voter group and the others join through the
 * reconciler; `kubectl scale` 3→5→3 and deleting the leader pod (it comes back under its name on
 * an empty dir, a new member) move the configuration to the pods that exist, while isLeader is
 * sampled on every member every few ms.
 */
import { describe, expect, it } from 'vitest';
import { MembershipE2e } from './membership-setup.js';

const e2e = new MembershipE2e('membership statefulset');
const Namespace = 'sts';

describe.skipIf(e2e.skipReason !== '')('a StatefulSet on emptyDir whose members follow its pods, on a real control plane', () => {
  e2e.hooks({
    runDir: 'membership-sts',
    label: 'statefulset',
    install: () => ({ namespace: Namespace, release: 'sts', workload: 'StatefulSet', persistence: 'emptyDir', gateReady: true }),
  });

  const step = <T>(body: () => Promise<T>) => e2e.step(body);
  const sts = () => e2e.group.sts.metadata.name;
  const scale = (replicas: number) => e2e.cp.kubectl(['scale', 'statefulset', sts(), `--replicas=${replicas}`, '--namespace', Namespace]);
  /** What the first incarnation of a pod decided at start ('raft-elector running' logs it). */
  const bootstrapped = (pod: string) => e2e.group.logLines(pod).find((l) => l.msg === 'raft-elector running')?.bootstrapped;

  it('the chart renders the StatefulSet in membership mode: emptyDir data, no --replicas', () => {
    const spec = e2e.group.sts.spec;
    expect(spec.volumeClaimTemplates).toBeUndefined();
    expect(spec.template.spec.volumes?.some((v) => 'emptyDir' in v)).toBe(true);
    expect(e2e.group.container.args).toContain('--kubernetes');
    expect(e2e.group.container.args?.some((a) => a.startsWith('--replicas'))).toBe(false);
  });

  it('a StatefulSet of 3 elects one leader; the members are pod incarnations and ordinal 0 bootstrapped', () => step(async () => {
    const c = await e2e.checks.converged(3);
    expect(c.voters).toBe(3);
    for (const id of c.ids) expect(id).toMatch(new RegExp(`^${sts()}-[0-2]@[0-9a-f-]{36}$`));
    expect(c.leader.selfId).toMatch(/@[0-9a-f-]{36}$/);
    // Bootstrap exactly once: ordinal 0 formed the one-voter group, 1 and 2 joined.
    expect([0, 1, 2].map((i) => bootstrapped(`${sts()}-${i}`))).toEqual([true, false, false]);
    e2e.checks.report('install of 3', 0);
  }), 180_000);

  it('kubectl scale 3→5→3: the membership follows, never two leaders', () => step(async () => {
    const from = performance.now();
    await scale(5);
    const five = await e2e.checks.converged(5);
    expect(five.voters).toBe(5);
    expect([3, 4].map((i) => bootstrapped(`${sts()}-${i}`))).toEqual([false, false]);
    await scale(3);
    const three = await e2e.checks.converged(3);
    expect(three.voters).toBe(3);
    expect(three.ids.map((id) => id.split('@')[0])).toEqual([0, 1, 2].map((i) => `${sts()}-${i}`));
    e2e.checks.report('scale 3→5→3', from);
  }), 240_000);

  it('kubectl delete pod of the leader: the pod comes back under its name on an empty dir as a new member', () => step(async () => {
    const before = await e2e.checks.converged(3);
    const from = performance.now();
    await e2e.cp.kubectl(['delete', 'pod', before.leader.self, '--namespace', Namespace, '--wait=false']);
    const after = await e2e.checks.replaced(3, [before.leader.selfId], 'the leader pod to come back as a new incarnation', 120_000);
    const back = after.ids.find((id) => id.startsWith(`${before.leader.self}@`));
    expect(back).toBeDefined();
    expect(back).not.toBe(before.leader.selfId);
    expect(after.voters).toBe(3);
    e2e.checks.report('delete pod of the leader', from);
  }), 180_000);
});
