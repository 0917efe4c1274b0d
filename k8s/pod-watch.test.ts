import { afterEach, describe, expect, it } from 'vitest';
import { captureLog, ScriptedMember, startApiFixture, waitFor, type ApiFixture } from '../test/k8s/harness.js';
import { chooseCampaigner, ForgetLeaderOnPodExit, groupPodOf, podExitReason, PodWatch } from './pod-watch.js';

const groupSelector = 'app.kubernetes.io/instance=shop-elector';
const voters = ['shop-0', 'shop-1', 'shop-2'];
const fastBackoff = { initialMs: 20, maxMs: 100, jitter: 0 };

interface Node {
  member: ScriptedMember;
  watch: PodWatch;
  reaction: ForgetLeaderOnPodExit;
}

let fixture: ApiFixture | undefined;
let nodes: Node[] = [];

afterEach(async () => {
  for (const node of nodes) {
    node.reaction.stop();
    await node.watch.stop();
  }
  nodes = [];
  await fixture?.close();
  fixture = undefined;
});

/** Three members (shop-0 leads at term 3), each with its own pod watch, as three sidecars would run. */
async function cluster(): Promise<{ f: ApiFixture; nodes: Node[]; log: ReturnType<typeof captureLog> }> {
  const f = await startApiFixture({ namespace: 'shop' });
  fixture = f;
  for (const name of voters) f.server.createPod({ namespace: 'shop', name, labels: { 'app.kubernetes.io/instance': 'shop-elector' } });
  f.server.createPod({ namespace: 'shop', name: 'unrelated', labels: { app: 'other' } });
  const log = captureLog();
  nodes = voters.map((id) => {
    const member = new ScriptedMember(id);
    member.follow('shop-0', 3);
    const watch = new PodWatch({ client: f.client, namespace: 'shop', groupSelector, logger: log.logger, backoff: fastBackoff });
    const reaction = new ForgetLeaderOnPodExit({ member, podWatch: watch, voters, logger: log.logger, campaignDelayMs: 0 });
    reaction.start();
    watch.start();
    return { member, watch, reaction };
  });
  await waitFor('all watches open', () => nodes.every((node) => node.watch.synced) && f.server.openWatchCount() === 3);
  return { f, nodes, log };
}

function forgets(): number[] {
  return nodes.map((node) => node.member.forgetLeaderCalls);
}

function campaigns(): number[] {
  return nodes.map((node) => node.member.campaignCalls);
}

async function expectFailoverSignal(): Promise<void> {
  await waitFor('followers forget the leader', () => forgets()[1] === 1 && forgets()[2] === 1);
  await waitFor('the chosen follower campaigns', () => campaigns()[1] === 1);
  expect(forgets()).toEqual([0, 1, 1]); // the leader itself ignores its own pod (it transfers on SIGTERM)
  expect(campaigns()).toEqual([0, 1, 0]); // exactly one campaigns: the lowest running non-leader voter
}

describe('pod watch → forgetLeader', () => {
  it('graceful delete (deletionTimestamp) of the leader pod', async () => {
    const { f } = await cluster();
    f.server.deletePod('shop-0', { namespace: 'shop', gracePeriodSeconds: 30 });
    await expectFailoverSignal();
    // The later removal of the same pod is the same exit: no second forget.
    f.server.finalizeDeletion('shop-0', 'shop');
    await waitFor('DELETED seen', () => nodes.every((node) => node.watch.exitReason('shop-0') === null && !node.watch.isRunning('shop-0')));
    expect(forgets()).toEqual([0, 1, 1]);
  });

  it('immediate delete of the leader pod', async () => {
    const { f } = await cluster();
    f.server.deletePod('shop-0', { namespace: 'shop', gracePeriodSeconds: 0 });
    await expectFailoverSignal();
  });

  it('leader pod phase Failed', async () => {
    const { f } = await cluster();
    f.server.setPodPhase('shop-0', 'Failed', 'shop');
    await expectFailoverSignal();
  });

  it('leader pod phase Succeeded', async () => {
    const { f } = await cluster();
    f.server.setPodPhase('shop-0', 'Succeeded', 'shop');
    await expectFailoverSignal();
  });

  it('the leader pod\'s raft-elector container terminated (the app container does not count)', async () => {
    const { f } = await cluster();
    f.server.setContainerState('shop-0', 'app', { terminated: { exitCode: 1, finishedAt: new Date().toISOString() } }, 'shop');
    const rv = String(f.server.currentResourceVersion);
    await waitFor('the app change reached every watch', () => nodes.every((node) => node.watch.lastResourceVersion === rv));
    expect(forgets()).toEqual([0, 0, 0]);
    f.server.setContainerState('shop-0', 'raft-elector', { terminated: { exitCode: 0, reason: 'Completed', finishedAt: new Date().toISOString() } }, 'shop');
    await expectFailoverSignal();
  });

  it('a follower pod going away is not a leader change', async () => {
    const { f } = await cluster();
    f.server.deletePod('shop-2', { namespace: 'shop', gracePeriodSeconds: 0 });
    await waitFor('every watch saw it', () => nodes.every((node) => !node.watch.isRunning('shop-2')));
    expect(forgets()).toEqual([0, 0, 0]);
    // Then the leader goes: shop-1 is still the lowest running follower.
    f.server.deletePod('shop-0', { namespace: 'shop' });
    await expectFailoverSignal();
  });

  it('skips a campaigner whose own pod is going away', async () => {
    const { f } = await cluster();
    f.server.setPodPhase('shop-1', 'Failed', 'shop');
    await waitFor('every watch saw shop-1 fail', () => nodes.every((node) => node.watch.exitReason('shop-1') === 'failed'));
    f.server.deletePod('shop-0', { namespace: 'shop' });
    await waitFor('shop-2 campaigns', () => campaigns()[2] === 1);
    expect(campaigns()).toEqual([0, 0, 1]);
  });

  it('410 Gone while disconnected: relists and still signals the deletion it missed', async () => {
    const { f } = await cluster();
    f.server.dropWatchConnections();
    // While no watch is open: the leader pod vanishes and the history it was in is compacted away.
    f.server.deletePod('shop-0', { namespace: 'shop', gracePeriodSeconds: 0 });
    f.server.expireHistory();
    await expectFailoverSignal();
    for (const node of nodes) expect(node.watch.counts.expired + node.watch.counts.relists).toBeGreaterThanOrEqual(1);
    const expiredWatches = f.server.requests.filter((r) => r.verb === 'watch' && r.query.resourceVersion !== undefined && Number(r.query.resourceVersion) < f.server.currentResourceVersion);
    expect(expiredWatches.length).toBeGreaterThanOrEqual(3);
  });

  it('a leader pod recreated under the same name while the watches were away is not forgotten', async () => {
    const { f } = await cluster();
    f.server.dropWatchConnections();
    // The old shop-0 is deleted and a new shop-0 (a new uid) runs and still leads; the
    // watches only see the end result when they relist.
    f.server.deletePod('shop-0', { namespace: 'shop', gracePeriodSeconds: 0 });
    f.server.createPod({ namespace: 'shop', name: 'shop-0', labels: { 'app.kubernetes.io/instance': 'shop-elector' } });
    f.server.expireHistory();
    await waitFor('every watch to relist', () => nodes.every((node) => node.watch.counts.relists + node.watch.counts.expired >= 1));
    await waitFor('every watch to be open again', () => nodes.every((node) => node.watch.synced) && f.server.openWatchCount() === 3);
    expect(forgets()).toEqual([0, 0, 0]);
    expect(campaigns()).toEqual([0, 0, 0]);
  });

  it('410 as an ERROR event on an open watch: relists and keeps watching', async () => {
    const { f } = await cluster();
    const lists = f.server.requestsFor({ verb: 'list', resource: 'pods' }).length;
    f.server.expireHistory();
    await waitFor('every member relisted', () => f.server.requestsFor({ verb: 'list', resource: 'pods' }).length === lists + 3);
    for (const node of nodes) expect(node.watch.counts).toMatchObject({ expired: 1, relists: 1 });
    await waitFor('watches reopened', () => f.server.openWatchCount() === 3);
    f.server.setPodPhase('shop-0', 'Failed', 'shop');
    await expectFailoverSignal();
  });

  it('a dropped watch connection reconnects from the last resourceVersion', async () => {
    const { f, log } = await cluster();
    const watchesBefore = f.server.requestsFor({ verb: 'watch' }).length;
    expect(f.server.dropWatchConnections()).toBe(3);
    await waitFor('watches reopened', () => f.server.openWatchCount() === 3);
    const resumed = f.server.requestsFor({ verb: 'watch' }).slice(watchesBefore);
    expect(resumed.every((r) => r.query.resourceVersion !== undefined)).toBe(true);
    expect(f.server.requestsFor({ verb: 'list' }).length).toBe(3); // resumed, not relisted
    f.server.deletePod('shop-0', { namespace: 'shop' });
    await expectFailoverSignal();
    expect(log.lines().filter((line) => (line.level as number) >= 50)).toEqual([]);
  });

  it('a watch refused with 403 or 500 is retried with backoff and logged once', async () => {
    const f = await startApiFixture({ namespace: 'shop' });
    fixture = f;
    f.server.createPod({ namespace: 'shop', name: 'shop-0', labels: { 'app.kubernetes.io/instance': 'shop-elector' } });
    f.server.forbid({ verb: 'watch', resource: 'pods' });
    const log = captureLog();
    const watch = new PodWatch({ client: f.client, namespace: 'shop', groupSelector, logger: log.logger, backoff: fastBackoff });
    const member = new ScriptedMember('shop-1');
    const reaction = new ForgetLeaderOnPodExit({ member, podWatch: watch, voters, logger: log.logger });
    nodes.push({ member, watch, reaction });
    watch.start();
    await waitFor('several refused watches', () => f.server.requestsFor({ verb: 'watch' }).length >= 4);
    const warnings = log.lines().filter((line) => line.level === 40);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.msg).toContain('grant "watch" on "pods"');
    f.server.allow();
    await waitFor('watch open', () => f.server.openWatchCount() === 1);
  });
});

describe('pure rules', () => {
  it('podExitReason reads deletionTimestamp, phase and the sidecar container', () => {
    const running = { metadata: { name: 'a' }, status: { phase: 'Running', containerStatuses: [{ name: 'raft-elector', state: { running: {} } }] } };
    expect(podExitReason(running, 'raft-elector')).toBeNull();
    expect(podExitReason({ ...running, metadata: { name: 'a', deletionTimestamp: '2026-01-01T00:00:00Z' } }, 'raft-elector')).toBe('deleting');
    expect(podExitReason({ status: { phase: 'Failed' } }, 'raft-elector')).toBe('failed');
    expect(podExitReason({ status: { phase: 'Succeeded' } }, 'raft-elector')).toBe('succeeded');
    expect(podExitReason({ status: { phase: 'Running', containerStatuses: [{ name: 'raft-elector', state: { terminated: { exitCode: 0 } } }] } }, 'raft-elector')).toBe('container-terminated');
    expect(podExitReason({ status: { phase: 'Running', containerStatuses: [{ name: 'sidecar', state: { terminated: { exitCode: 0 } } }] } }, 'sidecar')).toBe('container-terminated');
    // The chart's default: a native sidecar, whose status is an init container's.
    const native = { status: { phase: 'Running', containerStatuses: [{ name: 'app', state: { running: {} } }], initContainerStatuses: [{ name: 'raft-elector', state: { terminated: { exitCode: 137 } } }] } };
    expect(podExitReason(native, 'raft-elector')).toBe('container-terminated');
    expect(podExitReason({ status: { phase: 'Running', initContainerStatuses: [{ name: 'raft-elector', state: { running: {} } }] } }, 'raft-elector')).toBeNull();
  });

  it('groupPodOf: ready only while the Ready condition is True', () => {
    const pod = (conditions?: { type: string; status: string }[]) => ({ metadata: { name: 'a', uid: 'u1' }, status: { phase: 'Running', podIP: '10.0.0.1', ...(conditions ? { conditions } : {}) } });
    expect(groupPodOf('a', pod([{ type: 'ContainersReady', status: 'True' }, { type: 'Ready', status: 'True' }]), 'raft-elector').ready).toBe(true);
    expect(groupPodOf('a', pod([{ type: 'Ready', status: 'False' }]), 'raft-elector').ready).toBe(false);
    expect(groupPodOf('a', pod(), 'raft-elector').ready).toBe(false);
  });

  it('chooseCampaigner: lowest sorted voter that is not the leader and is running', () => {
    const all = () => true;
    expect(chooseCampaigner(['c', 'a', 'b'], 'a', all)).toBe('b');
    expect(chooseCampaigner(['c', 'a', 'b'], 'b', all)).toBe('a');
    expect(chooseCampaigner(['a', 'b', 'c'], 'a', (id) => id !== 'b')).toBe('c');
    expect(chooseCampaigner(['a', 'b'], 'a', () => false)).toBeNull();
  });
});

describe('PodWatch as the group list (membership)', () => {
  it('keeps every group pod with uid, IP, phase, creation time and member annotation; reports changes; sorted by name', async () => {
    const f = await startApiFixture({ namespace: 'shop' });
    fixture = f;
    const labels = { 'app.kubernetes.io/instance': 'shop-elector' };
    const b = f.server.createPod({ namespace: 'shop', name: 'web-b', labels, podIP: '10.0.0.2', annotations: { 'raft-elector.io/member': 'true' } });
    f.server.createPod({ namespace: 'shop', name: 'web-a', labels, podIP: '10.0.0.1', phase: 'Pending' });
    f.server.createPod({ namespace: 'shop', name: 'other', labels: { app: 'x' } });
    const log = captureLog();
    const watch = new PodWatch({ client: f.client, namespace: 'shop', groupSelector, logger: log.logger, backoff: fastBackoff });
    let changes = 0;
    watch.onPodsChange(() => changes++);
    expect(watch.healthy).toBe(false);
    watch.start();
    nodes.push({ member: new ScriptedMember('x'), watch, reaction: new ForgetLeaderOnPodExit({ member: new ScriptedMember('x'), podWatch: watch, voters: ['x'], logger: log.logger }) });
    await waitFor('synced', () => watch.synced && f.server.openWatchCount() === 1);
    expect(watch.healthy).toBe(true);
    const snap = watch.snapshot();
    expect(snap.map((p) => [p.name, p.phase, p.podIP, p.member])).toEqual([
      ['web-a', 'Pending', '10.0.0.1', false],
      ['web-b', 'Running', '10.0.0.2', true],
    ]);
    expect(snap[1]!.uid).toBe(b.metadata.uid);
    expect(snap[1]!.createdAtMs).toBe(Date.parse(b.metadata.creationTimestamp));
    const before = changes;
    f.server.deletePod('web-b', { namespace: 'shop', gracePeriodSeconds: 30 });
    await waitFor('deleting seen', () => watch.snapshot().find((p) => p.name === 'web-b')?.exit === 'deleting');
    expect(changes).toBeGreaterThan(before);
  });

  it('is bounded by maxPods', async () => {
    const f = await startApiFixture({ namespace: 'shop' });
    fixture = f;
    const labels = { 'app.kubernetes.io/instance': 'shop-elector' };
    for (const name of ['p1', 'p2', 'p3']) f.server.createPod({ namespace: 'shop', name, labels });
    const log = captureLog();
    const watch = new PodWatch({ client: f.client, namespace: 'shop', groupSelector, logger: log.logger, backoff: fastBackoff, maxPods: 2 });
    watch.start();
    nodes.push({ member: new ScriptedMember('x'), watch, reaction: new ForgetLeaderOnPodExit({ member: new ScriptedMember('x'), podWatch: watch, voters: ['x'], logger: log.logger }) });
    await waitFor('synced', () => watch.synced);
    expect(watch.snapshot()).toHaveLength(2);
  });
});
