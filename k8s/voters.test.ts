import { describe, expect, it } from 'vitest';
import {
  inClusterIdentityFromEnv,
  parseStatefulSetPodName,
  quorumOf,
  resolveInClusterIdentity,
  VoterConfigError,
  type VoterConfigErrorCode,
} from './voters.js';

const UID = '3f2a1c5e-8b7d-4e6f-9a0b-1c2d3e4f5a6b';

describe('resolveInClusterIdentity', () => {
  it('makes the id <pod name>@<pod UID> and notes a StatefulSet-shaped name', () => {
    expect(resolveInClusterIdentity({ podName: 'web-1', podUid: UID, namespace: 'shop' })).toEqual({
      id: `web-1@${UID}`,
      podName: 'web-1',
      podUid: UID,
      namespace: 'shop',
      statefulSet: { name: 'web', ordinal: 1 },
    });
  });

  it('takes a Deployment pod name as it is', () => {
    const identity = resolveInClusterIdentity({ podName: 'web-7d9f8c-x2k4q', podUid: UID, namespace: 'ns' });
    expect(identity.id).toBe(`web-7d9f8c-x2k4q@${UID}`);
    expect(identity.statefulSet).toBeNull();
  });

  const broken: [string, { podName: string | undefined; podUid: string | undefined; namespace: string | undefined }, VoterConfigErrorCode, string][] = [
    ['no POD_NAME', { podName: undefined, podUid: UID, namespace: 'ns' }, 'POD_NAME_MISSING', 'POD_NAME is not set'],
    ['empty POD_NAME', { podName: '', podUid: UID, namespace: 'ns' }, 'POD_NAME_MISSING', 'downward API'],
    ['no POD_NAMESPACE', { podName: 'web-0', podUid: UID, namespace: undefined }, 'POD_NAMESPACE_MISSING', 'POD_NAMESPACE is not set'],
    ['blank POD_NAMESPACE', { podName: 'web-0', podUid: UID, namespace: ' ' }, 'POD_NAMESPACE_MISSING', 'metadata.namespace'],
    ['no POD_UID', { podName: 'web-0', podUid: undefined, namespace: 'ns' }, 'POD_UID_MISSING', 'POD_UID is not set'],
    ['a POD_UID with a space', { podName: 'web-0', podUid: 'a b', namespace: 'ns' }, 'POD_NAME_INVALID', 'pod UID "a b"'],
    ['uppercase pod name', { podName: 'Web-0', podUid: UID, namespace: 'ns' }, 'POD_NAME_INVALID', 'not a DNS label'],
    ['pod name with a dot', { podName: 'web.x-0', podUid: UID, namespace: 'ns' }, 'POD_NAME_INVALID', '"web.x-0"'],
    ['pod name over 63 characters', { podName: `${'a'.repeat(62)}-0`, podUid: UID, namespace: 'ns' }, 'POD_NAME_INVALID', 'at most 63'],
  ];
  it.each(broken)('rejects %s with a typed error naming the variable', (_case, input, code, text) => {
    let thrown: unknown;
    try {
      resolveInClusterIdentity(input);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(VoterConfigError);
    expect((thrown as VoterConfigError).code).toBe(code);
    expect((thrown as VoterConfigError).message).toContain(text);
  });
});

describe('inClusterIdentityFromEnv', () => {
  it('reads POD_NAME, POD_UID and POD_NAMESPACE', () => {
    const identity = inClusterIdentityFromEnv({ POD_NAME: 'elector-2', POD_UID: UID, POD_NAMESPACE: 'prod' });
    expect(identity.id).toBe(`elector-2@${UID}`);
    expect(identity.namespace).toBe('prod');
  });
});

describe('parseStatefulSetPodName and quorumOf', () => {
  it('splits on the last dash only', () => {
    expect(parseStatefulSetPodName('a-b-c-4')).toEqual({ statefulSet: 'a-b-c', ordinal: 4 });
    expect(parseStatefulSetPodName('-4')).toBeNull();
    expect(parseStatefulSetPodName('web-')).toBeNull();
  });

  it('gives the majority and the failures it survives', () => {
    expect([1, 2, 3, 4, 5].map(quorumOf)).toEqual([
      { quorum: 1, toleratedFailures: 0 },
      { quorum: 2, toleratedFailures: 0 },
      { quorum: 2, toleratedFailures: 1 },
      { quorum: 3, toleratedFailures: 1 },
      { quorum: 3, toleratedFailures: 2 },
    ]);
  });
});
