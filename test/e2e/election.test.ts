/**
 * The chart's example group on a real control plane: labels, /leader, Events, failover
 * through ForgetLeader when `kubectl delete pod` hits a paused leader, a graceful handover,
 * and a kube-apiserver restart in the middle. The tests run in order on one group, as a
 * user's cluster lives: each starts from whatever the previous one left (always healed).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { only, type Helm } from '../chart/helm.js';
import { waitFor, type LeaderAnswer } from '../integration/harness.js';
import { auditedUserAgents, auditedWatches } from './audit.js';
import { ControlPlane } from './control-plane.js';
import { Group } from './group.js';
import { registerNode } from './kubelet.js';

const helm = Group.helm();
const skipReason = inject('e2eSkipReason') || (typeof helm === 'string' ? helm : '');
if (skipReason) console.log(`[e2e election skipped] ${skipReason}`);
const long = process.env.E2E_LONG === '1';
const Namespace = 'shop';

describe.skipIf(skipReason !== '')('the example group on a real control plane', () => {
  let cp: ControlPlane;
  let group: Group;

  beforeAll(async () => {
    cp = await ControlPlane.start(join(inject('e2eRunDir'), 'election'));
    await registerNode(cp.admin);
    group = await Group.install(cp, helm as Helm, { namespace: Namespace, release: 'demo' });
  });

  afterAll(async () => {
    await group?.stop();
    await cp?.stop();
  });

  /** Wraps a step so a failure shows the members' and the control plane's last lines. */
  async function step<T>(body: () => Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${group?.logs() ?? ''}\n${cp?.logs() ?? ''}\n${group?.kubeletReport() ?? ''}`, { cause: error });
    }
  }

  /** Three members of the current pods agree, and the labels show it. */
  async function healed(deadlineMs = 90_000): Promise<LeaderAnswer> {
    const leader = await group.agreedLeader(group.podNames, deadlineMs);
    const live = await waitFor('every pod of the StatefulSet to run a member of its current incarnation', deadlineMs, async () => {
      const pods = await group.pods();
      return group.podNames.every((n) => pods.some((p) => p.metadata.name === n && !p.metadata.deletionTimestamp && group.member(n).uid === p.metadata.uid && group.member(n).process.running)) ? true : undefined;
    }, 200);
    expect(live).toBe(true);
    await group.labelsConverge(leader.self, 30_000);
    // A new group starts with one voter and grows through the reconciler: the failover steps below
    // need every pod to be a voter (with 2 of 3 voters, losing the leader loses the quorum).
    await waitFor('every pod to be a voter', deadlineMs, async () => {
      const answer = await group.ask(leader.self);
      return answer.members.filter((m) => m.membership === 'voter').length === group.podNames.length ? true : undefined;
    }, 100);
    return group.agreedLeader(group.podNames, deadlineMs);
  }

  function forbiddenLines(): Record<string, unknown>[] {
    return group.logLines().filter((l) => l.code === 'KUBE_FORBIDDEN' || l.status === 403);
  }

  it('the StatefulSet controller creates the pods under Pod Security "restricted"; one leader, labelled, named by every /leader; LeaderElected', () => step(async () => {
    const leader = await group.agreedLeader(group.podNames, 120_000);
    await group.labelsConverge(leader.self);
    const pods = await group.pods();
    expect(pods.map((p) => p.metadata.name).sort()).toEqual(group.podNames);
    expect(pods.every((p) => p.metadata.ownerReferences?.some((o) => o.kind === 'StatefulSet'))).toBe(true);
    const answers = await Promise.all(group.podNames.map((n) => group.ask(n)));
    expect(answers.map((a) => a.leader)).toEqual(group.podNames.map(() => leader.self));
    expect(answers.filter((a) => a.isLeader).map((a) => a.self)).toEqual([leader.self]);
    expect((await cp.kubectl(['get', 'pods', '-n', Namespace, '-l', 'raft-role=leader', '-o', 'name'])).trim()).toBe(`pod/${leader.self}`);
    const event = await waitFor('a LeaderElected Event on the leader pod', 15_000, async () =>
      (await group.events()).find((e) => e.reason === 'LeaderElected' && e.involvedObject.name === leader.self), 200);
    expect(event.involvedObject.uid).toBe(group.member(leader.self).uid);
    expect(forbiddenLines()).toEqual([]);
  }));

  it('kubectl delete pod on a paused leader: the survivors forget it at once (ForgetLeader) and elect another; the new leader demotes its stale label', () => step(async () => {
    const old = await healed();
    const oldMember = group.member(old.self);
    const survivors = group.podNames.filter((n) => n !== old.self);
    oldMember.process.signal('SIGSTOP'); // hung, not crashed: its sockets stay open, no transfer
    const started = performance.now();
    await cp.kubectl(['delete', 'pod', old.self, '-n', Namespace, '--wait=false']);
    const kubectlMs = performance.now() - started;
    const agreedMs = await waitFor('the survivors to name one new leader', 15_000, async () => {
      const answers = await Promise.all(survivors.map((n) => group.ask(n)));
      const named = answers[0]?.leader;
      return named && named !== old.self && answers.every((a) => a.leader === named) ? performance.now() - started : undefined;
    }, 5);
    const next = await group.agreedLeader(survivors, 15_000);
    const claimedMs = performance.now() - started;
    console.log(
      `e2e: ForgetLeader failover on kube-apiserver ${'v1.34.4'}: kubectl delete pod ${old.self} (paused leader) -> survivors agree on ${next.self} ` +
        `in ${agreedMs.toFixed(0)} ms, it claims isLeader after ${claimedMs.toFixed(0)} ms (kubectl itself took ${kubectlMs.toFixed(0)} ms)`,
    );
    expect(next.term).toBeGreaterThan(old.term);
    // Both survivors forgot the leader because the API server reported its pod deleting.
    const forgot = survivors.map((n) => group.logLines(n).find((l) => l.leader === old.self && l.reason === 'deleting' && l.term === old.term));
    expect(forgot.every((l) => l !== undefined)).toBe(true);
    // The paused pod still carries the leader label; the new leader's patch demotes it (and the policy lets it).
    await waitFor('the new leader to demote the stale leader label', 15_000, () =>
      group.logLines(next.self).find((l) => l.msg === 'demoted a stale leader label' && l.pod === old.self), 100);
    // The fake kubelet SIGKILLs the paused member after the grace period; the StatefulSet recreates the pod.
    const after = await healed();
    expect(group.member(old.self).uid).not.toBe(oldMember.uid);
    expect(after.term).toBeGreaterThanOrEqual(next.term);
    expect(forbiddenLines()).toEqual([]);
  }));

  it('a graceful delete of the leader pod: it hands over, records LeadershipLost, and the label follows', () => step(async () => {
    const old = await healed();
    const uid = group.member(old.self).uid;
    const survivors = group.podNames.filter((n) => n !== old.self);
    await cp.kubectl(['delete', 'pod', old.self, '-n', Namespace, '--wait=false']);
    const next = await group.agreedLeader(survivors, 15_000);
    expect(next.self).not.toBe(old.self);
    const lost = await waitFor('a LeadershipLost Event on the old leader pod', 20_000, async () =>
      (await group.events()).find((e) => e.reason === 'LeadershipLost' && e.involvedObject.name === old.self && e.involvedObject.uid === uid), 200);
    expect(lost.message).toContain(old.self);
    await waitFor('a LeaderElected Event for the successor', 20_000, async () =>
      (await group.events()).find((e) => e.reason === 'LeaderElected' && e.involvedObject.name === next.self && e.involvedObject.uid === group.member(next.self).uid), 200);
    // The Lease mirror, as kubectl get lease shows it: the successor holds it, one more transition.
    const leaseName = only(group.objects, 'Lease').metadata.name;
    const lease = await waitFor('the Lease to name the successor', 20_000, async () => {
      const l = JSON.parse(await cp.kubectl(['get', 'lease', leaseName, '-n', Namespace, '-o', 'json'])) as {
        metadata: { annotations?: Record<string, string> };
        spec: { holderIdentity?: string; leaseTransitions?: number };
      };
      return l.spec.holderIdentity === next.self ? l : undefined;
    }, 200);
    expect(lease.spec.leaseTransitions).toBeGreaterThanOrEqual(1);
    expect(Number(lease.metadata.annotations?.['raft-elector.io/term'])).toBe(next.term);
    await healed();
    expect(forbiddenLines()).toEqual([]);
  }));

  it('a kube-apiserver restart in the middle: no member loses the leader; the pod watch resumes or relists; labels are right afterwards', () => step(async () => {
    const before = await healed();
    const changes: string[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const answers = await Promise.all(group.podNames.map((n) => group.ask(n).catch((e: unknown) => ({ error: String(e) }))));
        for (const a of answers) {
          if ('error' in a) changes.push(a.error);
          else if (a.leader !== before.self || a.term !== before.term) changes.push(`${a.self}: leader ${a.leader} term ${a.term}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const watchesBefore = group.logLines().length;
    const restartedAt = Date.now();
    const { downMs, exitMs } = await cp.restartApiServer();
    const readyAt = Date.now();
    sampling = false;
    await sampler;
    console.log(`e2e: kube-apiserver restart took ${downMs.toFixed(0)} ms (graceful exit ${exitMs.toFixed(0)} ms); the leader stayed ${before.self} at term ${before.term}`);
    expect(changes).toEqual([]);

    // The pod watch is back on the new API server, as its audit log records: resumed from a
    // resourceVersion, or started afresh after a relist.
    const sa = `system:serviceaccount:${Namespace}:${group.serviceAccount}`;
    const rewatched = await waitFor('every member to watch pods again on the restarted API server', 60_000, () => {
      const watches = auditedWatches(cp.auditLog, sa, readyAt - 30_000).filter((w) => w.startedAt > restartedAt + exitMs);
      return group.podNames.every((n) => watches.some((w) => w.pod === n)) ? watches : undefined;
    }, 200);
    for (const n of group.podNames) {
      const w = rewatched.find((x) => x.pod === n)!;
      console.log(`e2e: ${n} watches pods again at /readyz ${(w.startedAt - readyAt) >= 0 ? '+' : ''}${(w.startedAt - readyAt).toFixed(0)} ms, ${w.resourceVersion ? `resumed from resourceVersion ${w.resourceVersion}` : 'after a relist'}`);
    }
    const resumed = group.logLines().slice(watchesBefore).filter((l) => l.component === 'pod-watch');
    console.log(`e2e: after the restart the pod watch logged: ${[...new Set(resumed.map((l) => String(l.msg)))].join(' | ') || '(nothing)'}`);

    // And it delivers: a paused leader's deletion reaches the survivors (or, if the fresh
    // server is slow to deliver, the election timeout elects anyway; which one is printed).
    const survivors = group.podNames.filter((n) => n !== before.self);
    group.member(before.self).process.signal('SIGSTOP');
    const deletedAt = performance.now();
    await cp.kubectl(['delete', 'pod', before.self, '-n', Namespace, '--wait=false']);
    const next = await group.agreedLeader(survivors, 15_000);
    const electedMs = performance.now() - deletedAt;
    expect(next.self).not.toBe(before.self);
    const forgot = survivors.filter((n) => group.logLines(n).some((l) => l.leader === before.self && l.reason === 'deleting' && l.term === before.term));
    console.log(`e2e: after the restart, a paused leader's deletion -> ${next.self} leads after ${electedMs.toFixed(0)} ms; forgotten through the pod watch by ${forgot.length ? forgot.join(', ') : 'nobody (the election timeout elected first)'}`);
    await healed();
    // A starting kube-apiserver answers 403 until its RBAC caches fill (it serves before /readyz);
    // the sidecar retries. Outside that window nothing may be forbidden.
    const forbidden = forbiddenLines();
    const early = forbidden.filter((l) => typeof l.time === 'number' && l.time >= restartedAt && l.time <= readyAt + 2_000);
    if (early.length > 0) console.log(`e2e: while kube-apiserver started, the sidecars saw ${early.length} 403(s), e.g. ${String(early[0]!.msg).slice(0, 160)}`);
    expect(forbidden.filter((l) => !early.includes(l))).toEqual([]);
  }));

  it('every request the sidecars made carried User-Agent raft-elector/<version> (the API server audit log)', () => step(async () => {
    const agents = auditedUserAgents(cp.auditLog, `system:serviceaccount:${Namespace}:${group.serviceAccount}`);
    expect([...agents.keys()].sort()).toEqual(expect.arrayContaining(['create events', 'list pods', 'patch pods', 'watch pods']));
    for (const [verb, seen] of agents) expect([verb, [...seen]]).toEqual([verb, [expect.stringMatching(/^raft-elector\/\d+\.\d+\.\d+$/)]]);
  }));

  it.skipIf(!long)('soak (E2E_LONG=1): 5 minutes of at most one isLeader per sample, a steady leader and steady labels', () => step(async () => {
    const start = await healed();
    const forbiddenBefore = forbiddenLines().length;
    const until = Date.now() + 5 * 60_000;
    let samples = 0;
    while (Date.now() < until) {
      const answers = await Promise.all(group.podNames.map((n) => group.ask(n)));
      expect(answers.filter((a) => a.isLeader).length).toBeLessThanOrEqual(1);
      expect(answers.map((a) => `${a.leader}@${a.term}`)).toEqual(group.podNames.map(() => `${start.self}@${start.term}`));
      if (++samples % 100 === 0) expect((await group.labels())[start.self]).toBe('leader');
      await new Promise((r) => setTimeout(r, 100));
    }
    console.log(`e2e soak: ${samples} samples over 5 minutes, leader ${start.self} at term ${start.term} throughout`);
    expect(forbiddenLines().slice(forbiddenBefore)).toEqual([]);
  }), 6 * 60_000);
});
