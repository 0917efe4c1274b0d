import { afterEach, describe, expect, it } from 'vitest';
import { captureLog, ScriptedMember, startApiFixture, waitFor, type ApiFixture } from '../test/k8s/harness.js';
import { LeadershipEvents } from './events.js';

let fixture: ApiFixture | undefined;
const recorders: LeadershipEvents[] = [];

afterEach(async () => {
  for (const recorder of recorders.splice(0)) await recorder.stop();
  await fixture?.close();
  fixture = undefined;
});

async function setup(options: { burst?: number; refillMs?: number; nowMs?: () => number } = {}) {
  const f = await startApiFixture({ namespace: 'shop' });
  fixture = f;
  const pod = f.server.createPod({ namespace: 'shop', name: 'shop-0' });
  const member = new ScriptedMember('shop-0');
  const log = captureLog();
  const recorder = new LeadershipEvents({
    client: f.client,
    member,
    namespace: 'shop',
    podUid: pod.metadata.uid,
    logger: log.logger,
    backoff: { initialMs: 20, maxMs: 100, jitter: 0 },
    ...options,
  });
  recorders.push(recorder);
  recorder.start();
  return { f, member, recorder, log, uid: pod.metadata.uid };
}

describe('LeadershipEvents', () => {
  it('records LeaderElected and LeadershipLost on the pod, with the term', async () => {
    const { f, member, recorder, uid } = await setup();
    member.follow('shop-0', 4);
    member.follow('shop-2', 5);
    await recorder.drained();
    const events = f.server.listEvents('shop');
    expect(events.map((event) => [event.reason, event.message])).toEqual([
      ['LeaderElected', 'shop-0 became leader at term 4'],
      ['LeadershipLost', 'shop-0 stopped being leader of term 4; shop-2 leads at term 5'],
    ]);
    expect(events[0]).toMatchObject({ type: 'Normal', involvedObject: { kind: 'Pod', name: 'shop-0', namespace: 'shop', uid }, source: { component: 'raft-elector' }, count: 1 });
  });

  it('does not record a raft leader that has no lease yet', async () => {
    const { f, member, recorder } = await setup();
    member.set({ leader: 'shop-0', role: 'Leader', isLeader: false, term: 2 });
    await recorder.drained();
    expect(f.server.listEvents('shop')).toEqual([]);
  });

  it('rate limits a flapping leader: burst, then one per refill interval', async () => {
    let now = 0;
    const { f, member, recorder } = await setup({ burst: 3, refillMs: 10_000, nowMs: () => now });
    for (let term = 2; term < 22; term += 1) member.follow(term % 2 === 0 ? 'shop-0' : 'shop-1', term);
    await recorder.drained();
    expect(f.server.listEvents('shop')).toHaveLength(3);
    expect(recorder.counts.rateLimited).toBe(17);
    now += 10_000;
    member.follow('shop-0', 30);
    await recorder.drained();
    expect(f.server.listEvents('shop')).toHaveLength(4);
  });

  it('logs a refused create once and catches up when the API server allows it again', async () => {
    const { f, member, recorder, log } = await setup();
    f.server.forbid({ verb: 'create', resource: 'events' });
    member.follow('shop-0', 7);
    member.follow('shop-1', 8);
    await waitFor('several refused creates', () => f.server.requestsFor({ verb: 'create', resource: 'events' }).length >= 4);
    const warnings = log.lines().filter((line) => line.level === 40);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.msg).toContain('grant "create" on "events"');
    f.server.allow();
    await recorder.drained();
    expect(f.server.listEvents('shop').map((event) => event.reason)).toEqual(['LeaderElected', 'LeadershipLost']);
  });

  it('a 504 on create is retried and the event recorded once', async () => {
    const { f, member, recorder } = await setup();
    f.server.failNext({ verb: 'create', resource: 'events', status: 504 });
    member.follow('shop-0', 3);
    await recorder.drained();
    expect(f.server.listEvents('shop')).toHaveLength(1);
  });
});
