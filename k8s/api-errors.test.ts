import { describe, expect, it } from 'vitest';
import { captureLog } from '../test/k8s/harness.js';
import { ApiFailureReporter, Backoff, BackoffConfigError, classifyApiError, KubeRequestTimeoutError, type ApiOperation } from './api-errors.js';

const patch: ApiOperation = { verb: 'patch', resource: 'pods', group: '', namespace: 'shop', name: 'shop-0' };

describe('Backoff', () => {
  it('doubles from initialMs up to maxMs and starts over after reset', () => {
    const backoff = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0 });
    expect([1, 2, 3, 4, 5, 6].map(() => backoff.nextDelayMs())).toEqual([100, 200, 400, 800, 1000, 1000]);
    backoff.reset();
    expect(backoff.nextDelayMs()).toBe(100);
  });

  it('jitter only shortens the delay, within the jitter share', () => {
    const backoff = new Backoff({ initialMs: 1000, maxMs: 1000, jitter: 0.2, random: () => 1 });
    expect(backoff.nextDelayMs()).toBe(800);
  });

  it('refuses a backoff that could not work', () => {
    expect(() => new Backoff({ initialMs: 0, maxMs: 10 })).toThrow(BackoffConfigError);
    expect(() => new Backoff({ initialMs: 100, maxMs: 10 })).toThrow(/maxMs \(10\) must be >= initialMs \(100\)/);
  });
});

describe('classifyApiError', () => {
  const apiException = (code: number, body: unknown) => Object.assign(new Error('HTTP-Code'), { code, body: JSON.stringify(body) });

  it('names the missing permission and the ServiceAccount for a 403', () => {
    const error = classifyApiError(
      apiException(403, { kind: 'Status', code: 403, reason: 'Forbidden', message: 'pods "shop-0" is forbidden: User "system:serviceaccount:shop:elector" cannot patch resource "pods" in API group "" in the namespace "shop"' }),
      patch,
    );
    expect(error.code).toBe('KUBE_FORBIDDEN');
    expect(error.message).toMatch(/^cannot patch pods "shop-0" in namespace "shop": pods "shop-0" is forbidden/);
    expect(error.hint).toBe('grant "patch" on "pods" in the core API group "" to the ServiceAccount shop/elector (a Role in namespace "shop" and a RoleBinding)');
  });

  it('maps statuses and transport failures to stable codes', () => {
    expect(classifyApiError(apiException(401, {}), patch).code).toBe('KUBE_UNAUTHORIZED');
    expect(classifyApiError(apiException(404, {}), patch).code).toBe('KUBE_NOT_FOUND');
    expect(classifyApiError(apiException(409, {}), patch).code).toBe('KUBE_CONFLICT');
    expect(classifyApiError(apiException(410, {}), patch).code).toBe('KUBE_GONE');
    expect(classifyApiError(apiException(429, {}), patch).code).toBe('KUBE_THROTTLED');
    expect(classifyApiError(apiException(503, {}), patch).code).toBe('KUBE_SERVER_ERROR');
    expect(classifyApiError(apiException(422, {}), patch).code).toBe('KUBE_BAD_REQUEST');
    expect(classifyApiError(Object.assign(new Error('watch'), { statusCode: 500 }), patch).code).toBe('KUBE_SERVER_ERROR');
    expect(classifyApiError(new KubeRequestTimeoutError(10), patch).code).toBe('KUBE_TIMEOUT');
    expect(classifyApiError(Object.assign(new Error('network timeout'), { name: 'FetchError', type: 'request-timeout' }), patch).code).toBe('KUBE_TIMEOUT');
    expect(classifyApiError(Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }), patch).code).toBe('KUBE_UNREACHABLE');
  });
});

describe('ApiFailureReporter', () => {
  it('one warn per run of the same failure, debug for repeats, info on recovery, warn again for a new failure', () => {
    const log = captureLog();
    const reporter = new ApiFailureReporter(log.logger);
    const forbidden = Object.assign(new Error('x'), { code: 403, body: '{}' });
    for (let i = 0; i < 5; i += 1) reporter.failed(forbidden, patch, 100);
    reporter.failed(Object.assign(new Error('x'), { code: 503, body: '{}' }), patch, 100);
    reporter.succeeded(patch);
    reporter.succeeded(patch);
    const levels = log.lines().map((line) => line.level);
    expect(levels).toEqual([40, 20, 20, 20, 20, 40, 30]);
    expect(log.lines()[6]?.msg).toBe('patch pods "shop-0" in namespace "shop" works again after 1 failure(s)');
  });
});
