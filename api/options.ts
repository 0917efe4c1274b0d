/**
 * Settings of the HTTP API, validated once when the server is built: a broken
 * value fails construction with an `ApiConfigError` naming the setting and the
 * relation it breaks, never a surprise at request time.
 */
import { CidrError, DEFAULT_LOCAL_CIDRS, parseCidr } from './local-networks.js';

/** Options that may be 0 (no reservation); every other number must be at least 1. */
const MAY_BE_ZERO: ReadonlySet<keyof ApiOptions> = new Set(['localReservedWatchStreams', 'localReservedLongPollWaiters', 'localReservedConnections']);

export interface ApiOptions {
  /** Interval of the `: heartbeat` comment on /leader/watch streams; below the idle timeout of proxies (60 s for nginx). */
  watchHeartbeatMs: number;
  /** Open /leader/watch streams at most; one more gets 503. */
  maxWatchStreams: number;
  /** Of `maxWatchStreams`, the streams strangers can never take: local clients (`localCidrs`) always find these free. */
  localReservedWatchStreams: number;
  /** Bytes a slow watch client may leave unread before its stream is closed (bounds the per-stream buffer). */
  maxWatchBufferBytes: number;
  /** Largest `timeoutMs` a long-poll accepts; larger values get 400. */
  maxLongPollTimeoutMs: number;
  /** `timeoutMs` of a long-poll that names none. */
  defaultLongPollTimeoutMs: number;
  /** Long-polls waiting at once at most; one more gets 503. */
  maxLongPollWaiters: number;
  /** Of `maxLongPollWaiters`, the waiters reserved for local clients. */
  localReservedLongPollWaiters: number;
  /** Open connections at most (each is a file descriptor); one more is closed at once. */
  maxConnections: number;
  /** Of `maxConnections`, the connections reserved for local clients. */
  localReservedConnections: number;
  /** Open connections from one stranger address at most, so one pod cannot take the stranger share alone. */
  maxConnectionsPerStranger: number;
  /** A connection that has not sent a complete request header this long after it opened is closed. */
  idleConnectionTimeoutMs: number;
  /** Refusals (503, closed connections) are logged at most once per this interval per route and client class. */
  refusalLogIntervalMs: number;
  /** CIDRs whose clients are local (the app in the pod); loopback by default. Admin routes stay loopback-only regardless. */
  localCidrs: readonly string[];
  /** /healthz answers 503 when the event loop was late by more than this within the last `eventLoopWindowMs`. */
  maxEventLoopDelayMs: number;
  /** How often the event-loop probe fires. */
  eventLoopProbeIntervalMs: number;
  /** How far back /healthz looks for the worst event-loop delay. */
  eventLoopWindowMs: number;
  /** Idle keep-alive connections close after this. */
  keepAliveTimeoutMs: number;
  /** A client must send its request headers within this; above keepAliveTimeoutMs as Node requires. */
  headersTimeoutMs: number;
  /** A client must send its whole request within this (does not limit a streaming response). */
  requestTimeoutMs: number;
  /** Largest accepted request body (admin POSTs only). */
  maxBodyBytes: number;
}

export const DEFAULT_API_OPTIONS: Readonly<ApiOptions> = Object.freeze({
  watchHeartbeatMs: 15_000,
  maxWatchStreams: 64,
  localReservedWatchStreams: 16,
  maxWatchBufferBytes: 64 * 1024,
  maxLongPollTimeoutMs: 60_000,
  defaultLongPollTimeoutMs: 30_000,
  maxLongPollWaiters: 256,
  localReservedLongPollWaiters: 64,
  maxConnections: 512,
  localReservedConnections: 128,
  maxConnectionsPerStranger: 32,
  idleConnectionTimeoutMs: 5_000,
  refusalLogIntervalMs: 10_000,
  localCidrs: DEFAULT_LOCAL_CIDRS,
  maxEventLoopDelayMs: 1_000,
  eventLoopProbeIntervalMs: 100,
  eventLoopWindowMs: 5_000,
  keepAliveTimeoutMs: 5_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  maxBodyBytes: 4 * 1024,
});

export class ApiConfigError extends Error {
  readonly code = 'API_CONFIG_INVALID';
  constructor(
    readonly setting: keyof ApiOptions,
    message: string,
  ) {
    super(`api option ${setting} ${message}`);
    this.name = 'ApiConfigError';
  }
}

/** Fills defaults and checks every value and relation; throws `ApiConfigError` on the first broken one. */
export function resolveApiOptions(partial: Partial<ApiOptions> = {}): ApiOptions {
  const options: ApiOptions = { ...DEFAULT_API_OPTIONS };
  for (const [key, value] of Object.entries(partial) as [keyof ApiOptions, unknown][]) {
    if (!(key in DEFAULT_API_OPTIONS)) {
      throw new ApiConfigError(key, 'is not a known option');
    }
    if (value === undefined) continue;
    if (key === 'localCidrs') {
      options.localCidrs = resolveCidrs(value);
      continue;
    }
    const min = MAY_BE_ZERO.has(key) ? 0 : 1;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
      throw new ApiConfigError(key, `must be ${min === 0 ? 'a non-negative' : 'a positive'} integer, got ${JSON.stringify(value)}`);
    }
    (options as unknown as Record<string, number>)[key] = value;
  }
  const relation = (ok: boolean, setting: keyof ApiOptions, message: string): void => {
    if (!ok) throw new ApiConfigError(setting, message);
  };
  relation(
    options.defaultLongPollTimeoutMs <= options.maxLongPollTimeoutMs,
    'defaultLongPollTimeoutMs',
    `(${options.defaultLongPollTimeoutMs}) must not exceed maxLongPollTimeoutMs (${options.maxLongPollTimeoutMs})`,
  );
  relation(
    options.headersTimeoutMs > options.keepAliveTimeoutMs,
    'headersTimeoutMs',
    `(${options.headersTimeoutMs}) must exceed keepAliveTimeoutMs (${options.keepAliveTimeoutMs}), or Node may cut a reused connection mid-request`,
  );
  relation(
    options.requestTimeoutMs >= options.headersTimeoutMs,
    'requestTimeoutMs',
    `(${options.requestTimeoutMs}) must be at least headersTimeoutMs (${options.headersTimeoutMs})`,
  );
  relation(
    options.eventLoopWindowMs >= options.eventLoopProbeIntervalMs,
    'eventLoopWindowMs',
    `(${options.eventLoopWindowMs}) must be at least eventLoopProbeIntervalMs (${options.eventLoopProbeIntervalMs}) so the window holds a sample`,
  );
  relation(
    options.maxEventLoopDelayMs >= options.eventLoopProbeIntervalMs / 10,
    'maxEventLoopDelayMs',
    `(${options.maxEventLoopDelayMs}) is below a tenth of eventLoopProbeIntervalMs (${options.eventLoopProbeIntervalMs}); timer jitter alone would fail /healthz`,
  );
  for (const [reserved, max] of [
    ['localReservedWatchStreams', 'maxWatchStreams'],
    ['localReservedLongPollWaiters', 'maxLongPollWaiters'],
    ['localReservedConnections', 'maxConnections'],
  ] as const) {
    relation(options[reserved] <= options[max], reserved, `(${options[reserved]}) must not exceed ${max} (${options[max]})`);
  }
  relation(
    options.maxConnectionsPerStranger <= options.maxConnections - options.localReservedConnections,
    'maxConnectionsPerStranger',
    `(${options.maxConnectionsPerStranger}) must not exceed the stranger share, maxConnections - localReservedConnections (${options.maxConnections - options.localReservedConnections})`,
  );
  // Every stream and waiter holds a connection: the local shares must fit in the local connections.
  relation(
    options.localReservedWatchStreams + options.localReservedLongPollWaiters <= options.localReservedConnections,
    'localReservedConnections',
    `(${options.localReservedConnections}) must hold localReservedWatchStreams + localReservedLongPollWaiters (${options.localReservedWatchStreams} + ${options.localReservedLongPollWaiters})`,
  );
  return options;
}

function resolveCidrs(value: unknown): readonly string[] {
  if (!Array.isArray(value) || value.length === 0 || !value.every((v) => typeof v === 'string')) {
    throw new ApiConfigError('localCidrs', `must be a non-empty list of CIDRs, got ${JSON.stringify(value)}`);
  }
  for (const cidr of value as string[]) {
    try {
      parseCidr(cidr);
    } catch (err) {
      if (err instanceof CidrError) throw new ApiConfigError('localCidrs', `has ${err.message}`);
      throw err;
    }
  }
  return Object.freeze([...(value as string[])]);
}
