import { afterEach, describe, expect, it } from 'vitest';
import { captureLog, ScriptedMember, startApiFixture, waitFor, type ApiFixture } from '../test/k8s/harness.js';
import { PodLabelConfigError, PodLabeler } from './pod-label.js';

const group = { 'app.kubernetes.io/instance': 'shop-elector' };
const groupSelector = 'app.kubernetes.io/instance=shop-elector';
const fastBackoff = { initialMs: 20, maxMs: 100, jitter: 0 };

let fixture: ApiFixture | undefined;
const labelers: PodLabeler[] = [];

afterEach(async () => {
  for (const labeler of labelers.splice(0)) await labeler.stop();
  await fixture?.close();
  fixture = undefined;
});

async function setup(pods: Array<{ name: string; labels?: Record<string, string>; annotations?: Record<string, string> }>): Promise<ApiFixture> {
  fixture = await startApiFixture({ namespace: 'shop' });
  for (const pod of pods) fixture.server.createPod({ namespace: 'shop', name: pod.name, labels: { ...group, ...pod.labels }, ...(pod.annotations ? { annotations: pod.annotations } : {}) });
  return fixture;
}

function labeler(f: ApiFixture, member: ScriptedMember, logger = captureLog().logger): PodLabeler {
  const instance = new PodLabeler({ client: f.client, member, namespace: 'shop', groupSelector, logger, backoff: fastBackoff });
  labelers.push(instance);
  return instance;
}

function role(f: ApiFixture, name: string): string | undefined {
  return f.server.getPod(name, 'shop')?.metadata.labels?.['raft-role'];
}

describe('PodLabeler', () => {
  it('labels its own pod follower, then leader when the view says isLeader, then follower again', async () => {
    const f = await setup([{ name: 'shop-0' }, { name: 'shop-1' }]);
    const member = new ScriptedMember('shop-0');
    const instance = labeler(f, member);
    instance.start();
    await waitFor('follower label', () => role(f, 'shop-0') === 'follower');

    // A raft leader without the lease is not labelled leader.
    member.set({ leader: 'shop-0', role: 'Leader', isLeader: false, term: 2 });
    await instance.settled();
    expect(role(f, 'shop-0')).toBe('follower');

    member.set({ isLeader: true });
    await waitFor('leader label', () => role(f, 'shop-0') === 'leader');
    expect(f.server.getPod('shop-0', 'shop')?.metadata.annotations?.['raft-elector.io/leader-term']).toBe('2');

    member.follow('shop-1', 3);
    await waitFor('follower label again', () => role(f, 'shop-0') === 'follower');
    expect(role(f, 'shop-1')).toBeUndefined(); // a follower touches no other pod
  });

  it('sends merge patches with the Content-Type set explicitly', async () => {
    const f = await setup([{ name: 'shop-0' }]);
    const member = new ScriptedMember('shop-0');
    labeler(f, member).start();
    await waitFor('follower label', () => role(f, 'shop-0') === 'follower');
    const patches = f.server.requestsFor({ verb: 'patch', resource: 'pods' });
    expect(patches.length).toBeGreaterThan(0);
    for (const patch of patches) expect(patch.contentType).toBe('application/merge-patch+json');
    expect(JSON.parse(patches[0]?.body ?? '{}')).toEqual({ metadata: { labels: { 'raft-role': 'follower' } } });
  });

  it('the new leader demotes a stale leader label left by a crashed leader, but not one from a newer term', async () => {
    const f = await setup([
      { name: 'shop-0' },
      { name: 'shop-1', labels: { 'raft-role': 'leader' }, annotations: { 'raft-elector.io/leader-term': '4' } },
      { name: 'shop-2', labels: { 'raft-role': 'leader' } },
      { name: 'other-app', labels: { 'raft-role': 'leader', 'app.kubernetes.io/instance': 'other' } },
    ]);
    const member = new ScriptedMember('shop-0');
    member.follow('shop-0', 5);
    const instance = labeler(f, member);
    instance.start();
    await instance.settled();
    expect(role(f, 'shop-0')).toBe('leader');
    expect(role(f, 'shop-1')).toBe('follower');
    expect(role(f, 'shop-2')).toBe('follower');
    expect(role(f, 'other-app')).toBe('leader'); // outside the group selector

    // A label written by a leader of a newer term is not ours to remove.
    f.server.updatePod('shop-2', (pod) => {
      pod.metadata.labels = { ...pod.metadata.labels, 'raft-role': 'leader' };
      pod.metadata.annotations = { 'raft-elector.io/leader-term': '9' };
    }, 'shop');
    member.set({ isLeader: false });
    member.set({ isLeader: true, term: 6 });
    await instance.settled();
    expect(role(f, 'shop-2')).toBe('leader');
  });

  it('coalesces many flips into few requests and writes the final state', async () => {
    const f = await setup([{ name: 'shop-0' }]);
    const member = new ScriptedMember('shop-0');
    const instance = labeler(f, member);
    instance.start();
    for (let term = 2; term < 202; term += 1) {
      member.follow(term % 2 === 0 ? 'shop-0' : 'shop-1', term);
    }
    member.follow('shop-0', 300);
    await instance.settled();
    expect(role(f, 'shop-0')).toBe('leader');
    expect(f.server.getPod('shop-0', 'shop')?.metadata.annotations?.['raft-elector.io/leader-term']).toBe('300');
    const requests = f.server.requestsFor({ resource: 'pods' }).length;
    expect(requests).toBeLessThanOrEqual(6); // 201 view changes; at most a few writes (first state, final state, one clean-up list)
  });

  it('on 403 logs one line naming the missing permission, keeps retrying, and converges once allowed', async () => {
    const f = await setup([{ name: 'shop-0' }]);
    const log = captureLog();
    const member = new ScriptedMember('shop-0');
    f.server.forbid({ verb: 'patch', resource: 'pods' });
    const instance = labeler(f, member, log.logger);
    instance.start();
    member.follow('shop-0', 2);
    await waitFor('several refused patches', () => f.server.requestsFor({ verb: 'patch', resource: 'pods' }).length >= 4);
    const warnings = log.lines().filter((line) => line.level === 40);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.msg).toContain('cannot patch pods "shop-0" in namespace "shop"');
    expect(warnings[0]?.msg).toContain('grant "patch" on "pods"');
    expect(warnings[0]?.msg).toContain('ServiceAccount default/raft-elector');
    expect(warnings[0]).toMatchObject({ verb: 'patch', resource: 'pods', object: 'shop-0', code: 'KUBE_FORBIDDEN', status: 403, missingPermission: 'patch pods' });
    expect(member.view().isLeader).toBe(true); // the election view is untouched

    f.server.allow();
    await instance.settled();
    expect(role(f, 'shop-0')).toBe('leader');
    expect(log.lines().filter((line) => line.level === 30 && String(line.msg).includes('works again'))).toHaveLength(1);
  });

  it('retries through 5xx, a hung request and a dropped connection', async () => {
    const f = await setup([{ name: 'shop-0' }]);
    const member = new ScriptedMember('shop-0');
    f.server.failNext({ verb: 'patch', resource: 'pods', status: 503 });
    f.server.hangNext({ verb: 'patch', resource: 'pods' });
    f.server.dropNext({ verb: 'patch', resource: 'pods' });
    const log = captureLog();
    const instance = new PodLabeler({ client: f.client, member, namespace: 'shop', groupSelector, logger: log.logger, backoff: fastBackoff });
    labelers.push(instance);
    instance.start();
    await waitFor('label after faults', () => role(f, 'shop-0') === 'follower', 10_000);
    const codes = log.lines().filter((line) => line.level === 40).map((line) => line.code);
    expect(codes).toEqual(['KUBE_SERVER_ERROR', 'KUBE_TIMEOUT', 'KUBE_UNREACHABLE']);
  });

  it('refuses a configuration that could relabel other apps or write invalid labels', () => {
    const member = new ScriptedMember('shop-0');
    const base = { client: {} as never, member, namespace: 'shop', logger: captureLog().logger };
    expect(() => new PodLabeler({ ...base, groupSelector: '' })).toThrow(PodLabelConfigError);
    expect(() => new PodLabeler({ ...base, groupSelector, labelKey: 'bad key' })).toThrow(/label key/);
    expect(() => new PodLabeler({ ...base, groupSelector, leaderValue: 'x', followerValue: 'x' })).toThrow(/must differ/);
  });
});
