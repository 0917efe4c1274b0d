/**
 * The upgrade from the fixed voter set (issue 11 §6), on a real control plane with real
 * processes: the previous version (built from git history, test/integration/upgrade-build.ts)
 * runs the chart of its day, a StatefulSet on PVCs whose members are `<sts>-<ordinal>` with
 * `--replicas=3`. Then, as docs/membership.md says:
 *  - a plain `helm upgrade` (here: `kubectl apply` of the new chart) rolls the highest ordinal
 *    first; its new member moves the old state file aside, is not the oldest pod, so waits as a
 *    joiner nobody adds (old and new members refuse each other's ids): it never becomes Ready and
 *    the rollout stops there, while the old members keep their one leader;
 *  - `kubectl scale --replicas=0`, waiting until every pod is gone, and back to 3 finishes it:
 *    ordinal 0 bootstraps a new group of pod incarnations and the others join.
 * isLeader is sampled on every member, old and new, all along: never two claims at once.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../integration/harness.js';
import { oldBuild, type OldBuild } from '../integration/upgrade-build.js';
import { ElectorBin } from './group.js';
import type { Sample } from './leader-sampler.js';
import { MembershipE2e } from './membership-setup.js';

const e2e = new MembershipE2e('membership upgrade');
const Namespace = 'upgrade';
const Release = 'up';

describe.skipIf(e2e.skipReason !== '')('an upgrade from the fixed voter set to membership, on a real control plane', () => {
  let old: OldBuild;

  e2e.hooks({
    runDir: 'membership-upgrade',
    label: 'upgrade',
    prepare: () => {
      const built = oldBuild();
      if (typeof built === 'string') throw new Error(`cannot build the previous version: ${built}`);
      old = built;
    },
    install: () => ({
      namespace: Namespace, release: Release, workload: 'StatefulSet', persistence: 'pvc', gateReady: true, chartDir: old.chartDir, electorBin: old.bin,
    }),
    hookTimeoutMs: 600_000,
  });

  const step = <T>(body: () => Promise<T>) => e2e.step(body);
  const sts = () => e2e.group.sts.metadata.name;
  const dataDir = () => e2e.group.container.args?.find((a) => a.startsWith('--data-dir='))?.slice('--data-dir='.length) ?? '/var/lib/raft-elector';
  const stateFile = (pod: string) => join(e2e.group.dir, pod, 'fs', dataDir(), 'raft-state.json');
  const statefulSet = () => e2e.cp.admin.json<{ status: { updatedReplicas?: number; readyReplicas?: number; currentRevision?: string; updateRevision?: string } }>(
    'GET', `/apis/apps/v1/namespaces/${Namespace}/statefulsets/${sts()}`);

  it('the previous version runs the fixed voter set: --replicas, members named by ordinal, one leader', () => step(async () => {
    expect(e2e.group.container.args).toContain('--replicas=3');
    const leader = await e2e.group.agreedLeader(e2e.group.podNames, 90_000);
    expect(e2e.group.podNames).toContain(leader.self);
    expect(leader.leader).toMatch(new RegExp(`^${sts()}-[0-2]$`));
    await e2e.group.labelsConverge(leader.self, 30_000);
    for (const pod of e2e.group.podNames) await waitFor(`${pod}'s state file`, 10_000, () => (existsSync(stateFile(pod)) ? true : undefined), 100);
    e2e.checks.report('fixed voter set of 3 (previous version)', 0);
  }), 180_000);

  it('a plain helm upgrade stops at the highest ordinal: its new member waits as a joiner, the old group keeps one leader', () => step(async () => {
    const oldUids = new Map(e2e.group.podNames.map((p) => [p, e2e.group.member(p).uid]));
    const from = performance.now();
    await e2e.group.upgrade(e2e.helm, { namespace: Namespace, release: Release, workload: 'StatefulSet', persistence: 'pvc' }, ElectorBin);
    const last = `${sts()}-2`;
    const joiner = await waitFor(`${last} to come back on the new build and decide not to bootstrap`, 90_000, () => {
      const m = e2e.group.member(last);
      if (m.uid === oldUids.get(last) || !m.process.running) return undefined;
      return e2e.group.logLines(last).some((l) => l.reason === 'not_oldest') ? m : undefined;
    }, 100);
    // The old incarnation's file (plain pod-name id) is never reused under the new id.
    expect(existsSync(`${stateFile(last)}.stale-legacy`)).toBe(true);
    // Nothing changes from here: watch a while (10 election timeouts) that it stays so.
    const watchFrom = performance.now();
    await new Promise((r) => setTimeout(r, 10_000));
    const answer = await e2e.group.ask(last);
    expect(answer.selfId).toBe(`${last}@${joiner.uid}`);
    expect(answer.isLeader).toBe(false);
    const ready = await fetch(`http://${joiner.ip}:${e2e.group.httpPort}/readyz`, { signal: AbortSignal.timeout(2_000) });
    expect(ready.status).toBe(503);
    const status = (await statefulSet()).status;
    expect(status.updatedReplicas ?? 0).toBe(1);
    expect(status.currentRevision).not.toBe(status.updateRevision);
    // Ordinals 0 and 1 still run the previous version and elect among themselves (2 of 3 voters).
    const oldPods = [`${sts()}-0`, `${sts()}-1`];
    for (const p of oldPods) expect(e2e.group.member(p).uid).toBe(oldUids.get(p));
    const leader = await e2e.group.agreedLeader(oldPods, 10_000);
    expect(oldPods).toContain(leader.self);
    expect(e2e.checks.sampler.longestGapMs(watchFrom)).toBeLessThan(3_000);
    e2e.checks.report('plain helm upgrade (stalls at the highest ordinal)', from);
  }), 180_000);

  it('scale to 0, every pod gone, and back to 3: ordinal 0 bootstraps a group of pod incarnations, one leader', () => step(async () => {
    const from = performance.now();
    await e2e.cp.kubectl(['scale', 'statefulset', sts(), '--replicas=0', '--namespace', Namespace]);
    await waitFor('every pod of the StatefulSet to be gone', 90_000, async () => ((await e2e.group.pods()).length === 0 ? true : undefined), 200);
    expect(e2e.group.incarnations.filter((m) => m.process.running)).toEqual([]);
    const gone = performance.now();
    const oldKeys = new Set(e2e.group.incarnations.map((m) => `${m.name}@${m.uid}`));
    await e2e.cp.kubectl(['scale', 'statefulset', sts(), '--replicas=3', '--namespace', Namespace]);
    const c = await e2e.checks.converged(3, 120_000);
    const newKeys = new Set(c.ids.filter((id) => !oldKeys.has(id)));
    expect(newKeys.size).toBe(3);
    expect(c.voters).toBe(3);
    for (const id of c.ids) expect(id).toMatch(new RegExp(`^${sts()}-[0-2]@[0-9a-f-]{36}$`));
    const running = (pod: string) => e2e.group.logLines(pod).filter((l) => l.msg === 'raft-elector running').at(-1);
    expect([0, 1, 2].map((i) => running(`${sts()}-${i}`)?.bootstrapped)).toEqual([true, false, false]);
    for (const pod of e2e.group.podNames) expect(e2e.group.member(pod).process.running).toBe(true);
    await waitFor('the StatefulSet to report the rollout done', 30_000, async () => {
      const status = (await statefulSet()).status;
      return status.currentRevision === status.updateRevision && status.readyReplicas === 3 ? true : undefined;
    }, 200);
    // Two groups, each judged on its own (terms restart at 1): every claim of the old group was
    // answered before the new group's first claim was sent.
    const isNew = (s: Sample) => newKeys.has(s.key);
    const claims = e2e.checks.sampler.samples.filter((s) => s.isLeader);
    const lastOld = claims.filter((s) => !isNew(s)).reduce((t, s) => Math.max(t, s.receivedAt), -Infinity);
    const firstNew = claims.filter(isNew).reduce((t, s) => Math.min(t, s.sentAt), Infinity);
    expect(e2e.checks.sampler.overlaps((s) => !isNew(s))).toEqual([]);
    expect(lastOld).toBeLessThan(firstNew);
    console.log(`e2e membership (upgrade): no leader from the old group's last isLeader to the new group's first: ${(firstNew - lastOld).toFixed(0)} ms (${(firstNew - gone).toFixed(0)} ms after the last old pod was gone)`);
    e2e.checks.report('scale to 0 and back on the new version', from, isNew);
  }), 240_000);
});
