/**
 * The test API server's switches for what a client must survive: RBAC denial
 * (403 with the real message) and injected faults (an error status, a hung
 * request, a dropped connection), each matched against the parsed request.
 */
import { HttpStatusError, reasonsByCode } from './api-status.js';
import type { RequestInfo, RuleMatch } from './api-types.js';

export type Fault = RuleMatch & { kind: 'fail' | 'hang' | 'drop'; remaining: number; status?: number; message?: string };

export function matches(rule: RuleMatch, info: RequestInfo): boolean {
  return (
    (rule.verb === undefined || rule.verb === info.verb) &&
    (rule.resource === undefined || rule.resource === info.resource) &&
    (rule.group === undefined || rule.group === info.group) &&
    (rule.namespace === undefined || rule.namespace === info.namespace) &&
    (rule.name === undefined || rule.name === info.name)
  );
}

export class RequestRules {
  private forbidden: RuleMatch[] = [];
  /** Injected faults, used in the order they were added. */
  private faults: Fault[] = [];

  /** @param serviceAccount `namespace:name`, shown in 403 messages. */
  constructor(private readonly serviceAccount: string) {}

  forbid(rule: RuleMatch): void {
    this.forbidden.push(rule);
  }

  allow(): void {
    this.forbidden = [];
  }

  failNext(rule: RuleMatch & { status: number; count?: number; message?: string }): void {
    if (rule.status < 400) throw new Error(`failNext needs an error status, got ${rule.status}`);
    this.faults.push({ ...rule, kind: 'fail', remaining: rule.count ?? 1 });
  }

  hangNext(rule: RuleMatch & { count?: number }): void {
    this.faults.push({ ...rule, kind: 'hang', remaining: rule.count ?? 1 });
  }

  dropNext(rule: RuleMatch & { count?: number }): void {
    this.faults.push({ ...rule, kind: 'drop', remaining: rule.count ?? 1 });
  }

  clear(): void {
    this.forbidden = [];
    this.faults = [];
  }

  /** The first fault with uses left that matches the request, with one use taken. */
  takeFault(info: RequestInfo): Fault | undefined {
    const fault = this.faults.find((candidate) => candidate.remaining > 0 && matches(candidate, info));
    if (fault) fault.remaining -= 1;
    return fault;
  }

  failureOf(fault: Fault): HttpStatusError {
    const status = fault.status ?? 500;
    return new HttpStatusError(status, reasonsByCode[status] ?? 'InternalError', fault.message ?? defaultFailureMessage(status));
  }

  /** The 403 the real API server sends when RBAC denies the request, or null when it is allowed. */
  forbiddenError(info: RequestInfo): HttpStatusError | null {
    if (info.verb === null || !this.forbidden.some((rule) => matches(rule, info))) return null;
    const [saNamespace = 'default', saName = 'default'] = this.serviceAccount.split(':');
    const user = `system:serviceaccount:${saNamespace}:${saName}`;
    const subject = info.name !== null ? `${info.resource} "${info.name}"` : `${info.resource}`;
    const scope = info.namespace !== null ? ` in the namespace "${info.namespace}"` : ' at the cluster scope';
    const message = `${subject} is forbidden: User "${user}" cannot ${info.verb} resource "${info.resource}" in API group "${info.group}"${scope}`;
    return new HttpStatusError(403, 'Forbidden', message, { ...(info.name !== null ? { name: info.name } : {}), ...(info.group ? { group: info.group } : {}), kind: info.resource });
  }
}

function defaultFailureMessage(status: number): string {
  if (status === 503) return 'the server is currently unable to handle the request';
  if (status === 504) return 'the server was unable to return a response in the time allotted, but may still be processing the request';
  if (status === 429) return 'too many requests, please try again later';
  if (status === 401) return 'Unauthorized';
  return 'Internal error occurred: injected by the test';
}
