import { describe, expect, it } from 'vitest';
import {
  inClusterIdentityFromEnv,
  parseStatefulSetPodName,
  quorumOf,
  resolveInClusterIdentity,
  VoterConfigError,
  type VoterConfigErrorCode,
} from './voters.js';

describe('resolveInClusterIdentity', () => {
  it('derives the StatefulSet and the fixed voters from the pod name and --replicas', () => {
    expect(resolveInClusterIdentity({ podName: 'web-1', namespace: 'shop', replicas: 3 })).toEqual({
      id: 'web-1',
      namespace: 'shop',
      statefulSet: 'web',
      ordinal: 1,
      replicas: 3,
      voters: ['web-0', 'web-1', 'web-2'],
      warnings: [],
    });
  });

  it('keeps dashes inside the StatefulSet name', () => {
    const identity = resolveInClusterIdentity({ podName: 'my-app-elector-10', namespace: 'ns', replicas: 11 });
    expect(identity.statefulSet).toBe('my-app-elector');
    expect(identity.voters[10]).toBe('my-app-elector-10');
    expect(identity.voters).toHaveLength(11);
  });

  it('accepts a single voter without a warning', () => {
    const identity = resolveInClusterIdentity({ podName: 'solo-0', namespace: 'ns', replicas: 1 });
    expect(identity.voters).toEqual(['solo-0']);
    expect(identity.warnings).toEqual([]);
  });

  it.each([
    [2, 'a group of 2 needs 2 votes and tolerates 0 failure(s), no more than a group of 1 (0)'],
    [4, 'a group of 4 needs 3 votes and tolerates 1 failure(s), no more than a group of 3 (1)'],
    [6, 'a group of 6 needs 4 votes and tolerates 2 failure(s), no more than a group of 5 (2)'],
  ])('warns that %i replicas tolerate no more failures than one fewer', (replicas, text) => {
    const identity = resolveInClusterIdentity({ podName: 'web-0', namespace: 'ns', replicas });
    expect(identity.warnings).toHaveLength(1);
    expect(identity.warnings[0]).toContain(`--replicas ${replicas} is even`);
    expect(identity.warnings[0]).toContain(text);
  });

  const broken: [string, { podName: string | undefined; namespace: string | undefined; replicas: number }, VoterConfigErrorCode, string][] = [
    ['no POD_NAME', { podName: undefined, namespace: 'ns', replicas: 3 }, 'POD_NAME_MISSING', 'POD_NAME is not set'],
    ['empty POD_NAME', { podName: '', namespace: 'ns', replicas: 3 }, 'POD_NAME_MISSING', 'downward API'],
    ['no POD_NAMESPACE', { podName: 'web-0', namespace: undefined, replicas: 3 }, 'POD_NAMESPACE_MISSING', 'POD_NAMESPACE is not set'],
    ['blank POD_NAMESPACE', { podName: 'web-0', namespace: ' ', replicas: 3 }, 'POD_NAMESPACE_MISSING', 'metadata.namespace'],
    ['zero replicas', { podName: 'web-0', namespace: 'ns', replicas: 0 }, 'REPLICAS_INVALID', 'got 0'],
    ['fractional replicas', { podName: 'web-0', namespace: 'ns', replicas: 2.5 }, 'REPLICAS_INVALID', 'integer >= 1'],
    ['NaN replicas', { podName: 'web-0', namespace: 'ns', replicas: Number.NaN }, 'REPLICAS_INVALID', '--replicas'],
    ['uppercase pod name', { podName: 'Web-0', namespace: 'ns', replicas: 3 }, 'POD_NAME_INVALID', 'not a DNS label'],
    ['pod name with a dot', { podName: 'web.x-0', namespace: 'ns', replicas: 3 }, 'POD_NAME_INVALID', '"web.x-0"'],
    ['pod name with whitespace', { podName: ' web-0', namespace: 'ns', replicas: 3 }, 'POD_NAME_INVALID', 'DNS label'],
    ['pod name over 63 characters', { podName: `${'a'.repeat(62)}-0`, namespace: 'ns', replicas: 3 }, 'POD_NAME_INVALID', 'at most 63'],
    ['no ordinal', { podName: 'web', namespace: 'ns', replicas: 3 }, 'POD_NAME_NOT_STATEFULSET', 'does not end in -<ordinal>'],
    ['a Deployment-style name', { podName: 'web-7d9f8c-x2k4q', namespace: 'ns', replicas: 3 }, 'POD_NAME_NOT_STATEFULSET', 'StatefulSet'],
    ['an ordinal with a leading zero', { podName: 'web-01', namespace: 'ns', replicas: 3 }, 'POD_NAME_NOT_STATEFULSET', '"web-01"'],
    ['ordinal equal to replicas', { podName: 'web-3', namespace: 'ns', replicas: 3 }, 'ORDINAL_OUT_OF_RANGE', 'pod web-3 has ordinal 3 but --replicas is 3, so the voters are web-0 … web-2'],
    ['ordinal far above replicas', { podName: 'web-12', namespace: 'ns', replicas: 1 }, 'ORDINAL_OUT_OF_RANGE', 'voters are web-0 … web-0'],
  ];
  it.each(broken)('rejects %s with a typed error naming the relation', (_case, input, code, text) => {
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
  it('reads POD_NAME and POD_NAMESPACE', () => {
    const identity = inClusterIdentityFromEnv({ POD_NAME: 'elector-2', POD_NAMESPACE: 'prod' }, 3);
    expect(identity.id).toBe('elector-2');
    expect(identity.namespace).toBe('prod');
    expect(identity.voters).toEqual(['elector-0', 'elector-1', 'elector-2']);
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
