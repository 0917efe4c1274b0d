/**
 * Kubernetes API failures, classified once and reported once.
 *
 * The election never depends on the API server: a failed label patch, event
 * or watch is retried with capped backoff, and a run of identical failures of
 * one operation is one log line (warn), not one per retry; the line names the
 * verb, resource and object and, for 403, the RBAC grant that is missing. The
 * recovery is one more line (info).
 */
import type { Logger } from 'pino';

export type KubeApiErrorCode =
  /** 401: the token is missing, expired or not accepted. */
  | 'KUBE_UNAUTHORIZED'
  /** 403: RBAC denies the verb on the resource. */
  | 'KUBE_FORBIDDEN'
  /** 404: the object (usually our own pod) does not exist. */
  | 'KUBE_NOT_FOUND'
  /** 409: a resourceVersion precondition failed or the object already exists. */
  | 'KUBE_CONFLICT'
  /** 410: the watch's resourceVersion is older than the server's history: relist. */
  | 'KUBE_GONE'
  /** 429: the API server's priority and fairness throttled us. */
  | 'KUBE_THROTTLED'
  /** 5xx: the API server (or its etcd) failed. */
  | 'KUBE_SERVER_ERROR'
  /** Any other 4xx: a request this code should not have sent. */
  | 'KUBE_BAD_REQUEST'
  /** No answer within the request timeout. */
  | 'KUBE_TIMEOUT'
  /** Connection refused, reset, DNS or TLS failure: the API server is unreachable. */
  | 'KUBE_UNREACHABLE';

/** What was attempted, for the log line: `patch pods "web-0" in namespace "shop"`. */
export interface ApiOperation {
  verb: 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete';
  resource: string;
  /** The API group: "" for core (pods, v1 events). */
  group: string;
  namespace: string;
  name?: string;
}

export function describeOperation(operation: ApiOperation): string {
  const object = operation.name !== undefined ? ` "${operation.name}"` : '';
  return `${operation.verb} ${operation.resource}${object} in namespace "${operation.namespace}"`;
}

export class KubeApiError extends Error {
  readonly code: KubeApiErrorCode;
  /** The HTTP status, or null when no response arrived. */
  readonly status: number | null;
  readonly operation: ApiOperation;
  /** What an operator should do, in one sentence. */
  readonly hint: string;
  /** The API server's Status message, when it sent one. */
  readonly serverMessage: string | null;

  constructor(code: KubeApiErrorCode, status: number | null, operation: ApiOperation, hint: string, serverMessage: string | null, options?: { cause?: unknown }) {
    const detail = serverMessage ?? (status !== null ? `HTTP ${status}` : code);
    super(`cannot ${describeOperation(operation)}: ${detail}${hint ? `; ${hint}` : ''}`, options);
    this.name = 'KubeApiError';
    this.code = code;
    this.status = status;
    this.operation = operation;
    this.hint = hint;
    this.serverMessage = serverMessage;
  }
}

export function isKubeApiError(err: unknown, code?: KubeApiErrorCode): err is KubeApiError {
  return err instanceof KubeApiError && (code === undefined || err.code === code);
}

/** Thrown by our request layer when no answer came within the timeout. */
export class KubeRequestTimeoutError extends Error {
  readonly code = 'KUBE_REQUEST_TIMEOUT';
  constructor(readonly timeoutMs: number) {
    super(`no answer within ${timeoutMs} ms`);
    this.name = 'KubeRequestTimeoutError';
  }
}

interface StatusLike {
  kind?: unknown;
  message?: unknown;
  reason?: unknown;
  code?: unknown;
}

function parseStatus(body: unknown): StatusLike | null {
  let value = body;
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch {
      return null;
    }
  }
  return typeof value === 'object' && value !== null ? (value as StatusLike) : null;
}

function statusOf(err: unknown): { status: number | null; body: unknown } {
  if (typeof err !== 'object' || err === null) return { status: null, body: undefined };
  const candidate = err as { code?: unknown; statusCode?: unknown; body?: unknown };
  // KubeHttpError (kube-http.ts) carries `code` (HTTP status) and `body`, as client-node's ApiException did; `statusCode` as its Watch errors did.
  if (typeof candidate.code === 'number') return { status: candidate.code, body: candidate.body };
  if (typeof candidate.statusCode === 'number') return { status: candidate.statusCode, body: candidate.body };
  return { status: null, body: undefined };
}

const networkCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'ECONNABORTED', 'ERR_SOCKET_CLOSED']);

function networkCode(err: unknown): string | null {
  let current: unknown = err;
  for (let depth = 0; depth < 4 && typeof current === 'object' && current !== null; depth += 1) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return null;
}

/** The ServiceAccount named in a 403 message (`User "system:serviceaccount:ns:sa"`), if any. */
function serviceAccountIn(message: string | null): string | null {
  const match = message ? /User "system:serviceaccount:([^:"]+):([^"]+)"/.exec(message) : null;
  return match ? `${match[1]}/${match[2]}` : null;
}

/** Turns whatever the client or the socket threw into one typed error with an operator hint. */
export function classifyApiError(err: unknown, operation: ApiOperation): KubeApiError {
  if (err instanceof KubeApiError) return err;
  if (err instanceof KubeRequestTimeoutError) {
    return new KubeApiError('KUBE_TIMEOUT', null, operation, `no answer within ${err.timeoutMs} ms; retrying with backoff`, null, { cause: err });
  }
  const { status, body } = statusOf(err);
  const parsed = parseStatus(body);
  const serverMessage = typeof parsed?.message === 'string' ? parsed.message : null;
  if (status === null) {
    const code = networkCode(err);
    const name = (err as { name?: unknown } | null)?.name;
    const fetchType = (err as { type?: unknown } | null)?.type; // node-fetch (used by client-node's Watch) marks its timeouts so
    if (name === 'AbortError' || fetchType === 'request-timeout' || code === 'ETIMEDOUT' || code === 'ESOCKETTIMEDOUT') {
      return new KubeApiError('KUBE_TIMEOUT', null, operation, 'the API server did not answer in time; retrying with backoff', null, { cause: err });
    }
    const reason = code ?? (err instanceof Error ? err.message : String(err));
    const kind = code !== null && networkCodes.has(code) ? 'unreachable' : 'failed';
    return new KubeApiError('KUBE_UNREACHABLE', null, operation, `the API server is ${kind} (${reason}); retrying with backoff`, null, { cause: err });
  }
  const group = operation.group === '' ? 'the core API group ""' : `API group "${operation.group}"`;
  switch (true) {
    case status === 401:
      return new KubeApiError('KUBE_UNAUTHORIZED', status, operation, 'the ServiceAccount token was refused; check automountServiceAccountToken and the token file', serverMessage, { cause: err });
    case status === 403: {
      const account = serviceAccountIn(serverMessage);
      const subject = account ? `the ServiceAccount ${account}` : 'the ServiceAccount';
      const hint = `grant "${operation.verb}" on "${operation.resource}" in ${group} to ${subject} (a Role in namespace "${operation.namespace}" and a RoleBinding)`;
      return new KubeApiError('KUBE_FORBIDDEN', status, operation, hint, serverMessage, { cause: err });
    }
    case status === 404:
      return new KubeApiError('KUBE_NOT_FOUND', status, operation, operation.resource === 'pods' ? 'check POD_NAME and POD_NAMESPACE (downward API)' : 'the object does not exist', serverMessage, { cause: err });
    case status === 409:
      return new KubeApiError('KUBE_CONFLICT', status, operation, 'the object changed meanwhile; re-reading it', serverMessage, { cause: err });
    case status === 410:
      return new KubeApiError('KUBE_GONE', status, operation, 'the resourceVersion is older than the server keeps; relisting', serverMessage, { cause: err });
    case status === 429:
      return new KubeApiError('KUBE_THROTTLED', status, operation, 'the API server throttled the request; retrying with backoff', serverMessage, { cause: err });
    case status >= 500:
      return new KubeApiError('KUBE_SERVER_ERROR', status, operation, 'the API server failed; retrying with backoff', serverMessage, { cause: err });
    default:
      return new KubeApiError('KUBE_BAD_REQUEST', status, operation, 'the request was refused; this is a raft-elector bug, please report it', serverMessage, { cause: err });
  }
}

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** Growth per failure (default 2). */
  factor?: number;
  /** Full jitter share in [0, 1]: the delay is drawn from [(1 - jitter) * d, d] (default 0.2). */
  jitter?: number;
  /** Injected for tests; defaults to Math.random. */
  random?: () => number;
}

export class BackoffConfigError extends Error {
  readonly code = 'BACKOFF_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'BackoffConfigError';
  }
}

/** Capped exponential backoff with jitter (client-go's wait.Backoff shape). */
export class Backoff {
  private failures = 0;
  private readonly factor: number;
  private readonly jitter: number;
  private readonly random: () => number;

  constructor(private readonly options: BackoffOptions) {
    if (!(options.initialMs > 0)) throw new BackoffConfigError(`backoff initialMs must be > 0, got ${options.initialMs}`);
    if (!(options.maxMs >= options.initialMs)) throw new BackoffConfigError(`backoff maxMs (${options.maxMs}) must be >= initialMs (${options.initialMs})`);
    this.factor = options.factor ?? 2;
    this.jitter = options.jitter ?? 0.2;
    this.random = options.random ?? Math.random;
  }

  /** The delay before the next attempt; each call counts one more failure. */
  nextDelayMs(): number {
    const base = Math.min(this.options.maxMs, this.options.initialMs * this.factor ** Math.min(this.failures, 30));
    this.failures += 1;
    return Math.round(base * (1 - this.jitter * this.random()));
  }

  reset(): void {
    this.failures = 0;
  }

  get failureCount(): number {
    return this.failures;
  }
}

/**
 * One warn line when an operation starts failing (or fails differently), debug
 * lines for the repeats, one info line when it works again.
 */
export class ApiFailureReporter {
  private readonly failing = new Map<string, { code: KubeApiErrorCode; status: number | null; count: number }>();

  constructor(private readonly logger: Logger) {}

  failed(err: unknown, operation: ApiOperation, retryInMs: number | null): KubeApiError {
    const error = classifyApiError(err, operation);
    const key = `${operation.verb} ${operation.group}/${operation.resource}`;
    const previous = this.failing.get(key);
    const fields = {
      verb: operation.verb,
      resource: operation.resource,
      group: operation.group,
      namespace: operation.namespace,
      ...(operation.name !== undefined ? { object: operation.name } : {}),
      code: error.code,
      status: error.status,
      ...(error.code === 'KUBE_FORBIDDEN' ? { missingPermission: `${operation.verb} ${operation.resource}${operation.group ? `.${operation.group}` : ''}` } : {}),
      ...(retryInMs !== null ? { retryInMs } : {}),
    };
    if (previous && previous.code === error.code && previous.status === error.status) {
      previous.count += 1;
      this.logger.debug({ ...fields, failures: previous.count }, `still failing: ${error.message}`);
    } else {
      this.failing.set(key, { code: error.code, status: error.status, count: 1 });
      this.logger.warn(fields, error.message);
    }
    return error;
  }

  succeeded(operation: ApiOperation): void {
    const key = `${operation.verb} ${operation.group}/${operation.resource}`;
    const previous = this.failing.get(key);
    if (!previous) return;
    this.failing.delete(key);
    this.logger.info({ verb: operation.verb, resource: operation.resource, namespace: operation.namespace, failures: previous.count }, `${describeOperation(operation)} works again after ${previous.count} failure(s)`);
  }
}
