/**
 * The Service's DNS as the address source while the API server is unreachable (issue 11: "while
 * the API server is unreachable nothing changes, and the election goes on"). A member whose
 * container restarts during an outage has no pod list, and it is the one that must dial its
 * peers (the smaller id dials), so without another address source it would stay cut off.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from './harness.js';
import { KubeCluster, Pods } from './kube-cluster.js';

let cluster: KubeCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

describe('in-cluster mode with the API server unreachable', () => {
  it('a member restarted during the outage finds its peers through the Service DNS and follows the same leader', async () => {
    cluster = await KubeCluster.start();
    const c = cluster;
    await waitFor('all three pods to be voters', 30_000, async () => {
      const leader = await c.agreedLeader(Pods).catch(() => undefined);
      return leader && leader.members.filter((m) => m.membership === 'voter').length === 3 ? leader : undefined;
    }, 100);

    // The outage: every request fails and the open watches are cut.
    c.api.failNext({ status: 503, count: 1_000_000, message: 'the API server is down (test)' });
    c.api.dropWatchConnections();
    // elector-0 has the smallest incarnation id, so it dials both peers and neither dials it.
    const restarted = c.pod(Pods[0]!);
    const exited = new Promise((r) => restarted.child!.once('exit', r));
    restarted.child!.kill('SIGKILL');
    await exited;
    restarted.lines.length = 0;
    c.spawn(restarted);

    const after = await c.agreedLeader(Pods, 20_000);
    expect(after.members.filter((m) => m.membership === 'voter').map((m) => m.id.split('@')[0]).sort()).toEqual([...Pods].sort());
    const fromDns = restarted.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'peer address from DNS').map((l) => String(l.peer).split('@')[0]);
    expect(fromDns.sort()).toEqual(Pods.slice(1));
    c.api.clearFaults();
  }, 90_000);
});
