import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from './harness.js';
import { KubeCluster, kubectlAvailable, Namespace, Pods } from './kube-cluster.js';

let cluster: KubeCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const hasKubectl = kubectlAvailable();
if (!hasKubectl) console.log('kubernetes integration: kubectl is not installed; the kubectl checks are skipped (.ci/run installs kubernetes-client)');

describe('in-cluster mode against a test API server and a test DNS server', () => {
  it('three members elect a leader; the leader label follows within 1 s; deleting the paused leader pod elects another', async () => {
    cluster = await KubeCluster.start();
    const c = cluster;
    const leader = await c.agreedLeader(Pods);
    const labelled = await waitFor('the leader pod to be labelled', 5_000, () =>
      c.labelOf(leader.self) === 'leader' ? Date.now() : undefined,
    5);
    expect(labelled - Date.parse(leader.since!)).toBeLessThanOrEqual(1_000);
    await waitFor('every other pod to be labelled follower', 5_000, () =>
      Pods.filter((p) => p !== leader.self).every((p) => c.labelOf(p) === 'follower') ? true : undefined,
    );
    if (hasKubectl) expect(await c.kubectlLeaders()).toEqual([`pod/${leader.self}`]);
    expect(c.api.listEvents(Namespace).some((e) => e.reason === 'LeaderElected')).toBe(true);

    // The leader is paused, so it cannot transfer; Kubernetes marks its pod deleting.
    c.pod(leader.self).child!.kill('SIGSTOP');
    const survivors = Pods.filter((p) => p !== leader.self);
    const deletedAt = performance.now();
    c.api.deletePod(leader.self, { gracePeriodSeconds: 30, namespace: Namespace });
    const agreedAfterMs = await waitFor('the survivors to name one new leader', 15_000, async () => {
      const answers = await Promise.all(survivors.map((n) => c.leader(n)));
      const named = answers[0]?.leader;
      return named && named !== leader.self && answers.every((a) => a.leader === named) ? performance.now() - deletedAt : undefined;
    }, 5);
    const next = await c.agreedLeader(survivors);
    const claimedAfterMs = performance.now() - deletedAt;
    console.log(
      `kubernetes integration: leader pod marked deleting -> survivors agree on ${next.self} in ${agreedAfterMs.toFixed(0)} ms, ` +
        `it claims isLeader after ${claimedAfterMs.toFixed(0)} ms (the handover grace, then one lease window: the old leader's lease was skipped)`,
    );
    expect(next.self).not.toBe(leader.self);
    expect(next.term).toBeGreaterThan(leader.term);
    // Every survivor saw the leader pod deleting and gave it the handover grace (a paused leader
    // cannot hand over). After the grace a survivor still following it forgets it, and at most one
    // campaigns; one whose election timeout came first has a new leader already and forgets nothing.
    const lines = survivors.map((p) => c.pod(p).lines.map((l) => JSON.parse(l) as Record<string, unknown>));
    const graced = lines.map((ls) => ls.find((l) => l.leader === leader.self && l.reason === 'deleting' && l.graceMs !== undefined));
    expect(graced.every((l) => l !== undefined)).toBe(true);
    const forgot = lines.flatMap((ls) => ls.filter((l) => l.leader === leader.self && l.reason === 'deleting' && l.campaigning !== undefined));
    expect(forgot.filter((l) => l.campaigning === true).length).toBeLessThanOrEqual(1);
    await waitFor('the labels to move to the new leader', 10_000, () =>
      c.labelOf(next.self) === 'leader' && c.labelOf(leader.self) !== 'leader' ? true : undefined,
    );
    if (hasKubectl) expect(await c.kubectlLeaders()).toEqual([`pod/${next.self}`]);
  }, 90_000);

  it('with patch forbidden the election still works, the log names the permission, and labels converge once allowed', async () => {
    cluster = await KubeCluster.start((api) => api.forbid({ verb: 'patch', resource: 'pods' }));
    const c = cluster;
    const leader = await c.agreedLeader(Pods);
    const denial = await waitFor('a log line naming the missing permission', 10_000, () =>
      c.pod(leader.self).lines.find((l) => /patch/.test(l) && /pods/.test(l) && /forbidden|403|grant/i.test(l)),
    );
    expect(JSON.parse(denial).level).toBeGreaterThanOrEqual(40);
    for (const p of Pods) expect(c.labelOf(p)).toBeUndefined();
    // /readyz does not depend on the API server.
    expect((await fetch(`http://127.0.0.1:${c.pod(leader.self).httpPort}/readyz`)).status).toBe(200);
    c.api.allow();
    await waitFor('labels to converge', 20_000, () =>
      c.labelOf(leader.self) === 'leader' && Pods.filter((p) => p !== leader.self).every((p) => c.labelOf(p) === 'follower') ? true : undefined,
    );
    if (hasKubectl) expect(await c.kubectlLeaders()).toEqual([`pod/${leader.self}`]);
  }, 90_000);
});
