import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { ConfState } from '../raft/index.js';
import type { KubeClient } from './kube-client.js';
import { MemberAnnotation } from './member-annotation.js';

const cs = (voters: string[], learners: string[] = []): ConfState => ({ voters, votersOutgoing: [], learners, learnersNext: [], autoLeave: false });

describe('MemberAnnotation', () => {
  it('patches its own pod once, when a configuration containing itself is applied, retrying an API failure', async () => {
    const patches: unknown[] = [];
    let failures = 1;
    const client = {
      core: {
        patchNamespacedPod: (req: unknown) => {
          if (failures-- > 0) return Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
          patches.push(req);
          return Promise.resolve({});
        },
      },
    } as unknown as Pick<KubeClient, 'core'>;
    let listener: (c: ConfState) => void = () => {};
    const a = new MemberAnnotation({
      client,
      namespace: 'prod',
      podName: 'web-x',
      selfId: 'web-x@u1',
      confState: () => cs([]),
      onMembershipChange: (l) => ((listener = l), () => {}),
      backoff: { initialMs: 1, maxMs: 2 },
      logger: pino({ level: 'silent' }),
    });
    a.start();
    listener(cs(['web-a@u0']));
    expect(a.written).toBe(false);
    listener(cs(['web-a@u0'], ['web-x@u1']));
    listener(cs(['web-a@u0', 'web-x@u1']));
    await a.settled();
    expect(a.written).toBe(true);
    expect(patches).toEqual([{ name: 'web-x', namespace: 'prod', body: { metadata: { annotations: { 'raft-elector.io/member': 'true' } } } }]);
    await a.stop();
  });
});
