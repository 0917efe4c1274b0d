/**
 * Membership that follows a StatefulSet on a real control plane (issue 11): the chart's
 * StatefulSet example on emptyDir (the default) runs in membership mode: the members are
 * `<pod>@<uid>` incarnations, not the fixed `<sts>-<ordinal>` voter set; ordinal 0 (the oldest
 * pod, then the first name) bootstraps a one-voter group and the others join through the
 * reconciler; `kubectl scale` 3→5→3 and deleting the leader pod (it comes back under its name on
 * an empty dir, a new member) move the configuration to the pods that exist, while isLeader is
 * sampled on every member every few ms.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Helm } from '../chart/helm.js';
import { ControlPlane } from './control-plane.js';
import { Group } from './group.js';
import { registerNode } from './kubelet.js';
import { MembershipChecks } from './membership-checks.js';

const helm = Group.helm();
const skipReason = inject('e2eSkipReason') || (typeof helm === 'string' ? helm : '');
if (skipReason) console.log(`[e2e membership statefulset skipped] ${skipReason}`);
const Namespace = 'sts';

describe.skipIf(skipReason !== '')('a StatefulSet on emptyDir whose members follow its pods, on a real control plane', () => {
  let cp: ControlPlane;
  let group: Group;
  let checks: MembershipChecks;

  beforeAll(async () => {
    cp = await ControlPlane.start(join(inject('e2eRunDir'), 'membership-sts'));
    await registerNode(cp.admin);
    group = await Group.install(cp, helm as Helm, { namespace: Namespace, release: 'sts', workload: 'StatefulSet', persistence: 'emptyDir', gateReady: true });
    checks = new MembershipChecks(group, 'statefulset');
    checks.sampler.start();
  });

  afterAll(async () => {
    await checks?.sampler.stop();
    await group?.stop();
    await cp?.stop();
  });

  const step = <T>(body: () => Promise<T>) => checks.step(body);
  const sts = () => group.sts.metadata.name;
  const scale = (replicas: number) => cp.kubectl(['scale', 'statefulset', sts(), `--replicas=${replicas}`, '--namespace', Namespace]);
  /** What the first incarnation of a pod decided at start ('raft-elector running' logs it). */
  const bootstrapped = (pod: string) => group.logLines(pod).find((l) => l.msg === 'raft-elector running')?.bootstrapped;

  it('the chart renders the StatefulSet in membership mode: emptyDir data, no --replicas', () => {
    const spec = group.sts.spec;
    expect(spec.volumeClaimTemplates).toBeUndefined();
    expect(spec.template.spec.volumes?.some((v) => 'emptyDir' in v)).toBe(true);
    expect(group.container.args).toContain('--kubernetes');
    expect(group.container.args?.some((a) => a.startsWith('--replicas'))).toBe(false);
  });

  it('a StatefulSet of 3 elects one leader; the members are pod incarnations and ordinal 0 bootstrapped', () => step(async () => {
    const c = await checks.converged(3);
    expect(c.voters).toBe(3);
    for (const id of c.ids) expect(id).toMatch(new RegExp(`^${sts()}-[0-2]@[0-9a-f-]{36}$`));
    expect(c.leader.selfId).toMatch(/@[0-9a-f-]{36}$/);
    // Bootstrap exactly once: ordinal 0 formed the one-voter group, 1 and 2 joined.
    expect([0, 1, 2].map((i) => bootstrapped(`${sts()}-${i}`))).toEqual([true, false, false]);
    checks.report('install of 3', 0);
  }), 180_000);

  it('kubectl scale 3→5→3: the membership follows, never two leaders', () => step(async () => {
    const from = performance.now();
    await scale(5);
    const five = await checks.converged(5);
    expect(five.voters).toBe(5);
    expect([3, 4].map((i) => bootstrapped(`${sts()}-${i}`))).toEqual([false, false]);
    await scale(3);
    const three = await checks.converged(3);
    expect(three.voters).toBe(3);
    expect(three.ids.map((id) => id.split('@')[0])).toEqual([0, 1, 2].map((i) => `${sts()}-${i}`));
    checks.report('scale 3→5→3', from);
  }), 240_000);

  it('kubectl delete pod of the leader: the pod comes back under its name on an empty dir as a new member', () => step(async () => {
    const before = await checks.converged(3);
    const from = performance.now();
    await cp.kubectl(['delete', 'pod', before.leader.self, '--namespace', Namespace, '--wait=false']);
    const after = await checks.replaced(3, [before.leader.selfId], 'the leader pod to come back as a new incarnation', 120_000);
    const back = after.ids.find((id) => id.startsWith(`${before.leader.self}@`));
    expect(back).toBeDefined();
    expect(back).not.toBe(before.leader.selfId);
    expect(after.voters).toBe(3);
    checks.report('delete pod of the leader', from);
  }), 180_000);
});
