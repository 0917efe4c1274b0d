/**
 * The Kubernetes API client in in-cluster mode, loaded explicitly.
 *
 * client-node's `loadFromDefault` falls back to `http://localhost:8080` when it
 * finds no configuration, so a pod without a mounted token would talk to
 * nothing and log confusing connection errors forever. Here the in-cluster
 * files and environment are required and checked up front, with one typed
 * error naming what is missing.
 *
 * The client is our own, on node:https (k8s/kube-http.ts, k8s/kube-watch.ts): the calls a
 * member makes, with the method names and request shapes of client-node's generated
 * CoreV1Api/CoordinationV1Api and the contract of its Watch, whose run-time code costs every
 * pod about 60 MB (docs/benchmarks.md). client-node's models stay the types, through `Wire<T>`:
 * objects as JSON carries them, timestamps as strings. Every request is abandoned after
 * `requestTimeoutMs`, its response bounded by `maxResponseBytes`.
 *
 * Every request, the watch included, says `User-Agent: raft-elector/<version>`, so audit
 * logs tell the sidecar apart from the app sharing its pod's token.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isIPv6 } from 'node:net';
import type { CoreV1Event, V1Lease, V1Pod, V1PodList } from '@kubernetes/client-node';
import { KubeHttp } from './kube-http.js';
import { KubeWatch } from './kube-watch.js';

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export type KubeConfigErrorCode =
  /** KUBERNETES_SERVICE_HOST is unset: not running in a pod (or --kubernetes without the environment). */
  | 'KUBE_SERVICE_HOST_MISSING'
  /** KUBERNETES_SERVICE_PORT is unset or not a port number. */
  | 'KUBE_SERVICE_PORT_INVALID'
  /** The ServiceAccount token file is missing, unreadable or empty (automountServiceAccountToken: false?). */
  | 'KUBE_TOKEN_FILE_UNREADABLE'
  /** The cluster CA file is missing or unreadable. */
  | 'KUBE_CA_FILE_UNREADABLE'
  /** An option is out of range. */
  | 'KUBE_CLIENT_OPTIONS_INVALID';

export class KubeConfigError extends Error {
  readonly code: KubeConfigErrorCode;
  constructor(code: KubeConfigErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KubeConfigError';
    this.code = code;
  }
}

export interface InClusterConfigOptions {
  /** Defaults to process.env. */
  env?: Record<string, string | undefined>;
  /** Defaults to /var/run/secrets/kubernetes.io/serviceaccount/token; re-read every minute (bound tokens rotate). */
  tokenFile?: string;
  /** Defaults to /var/run/secrets/kubernetes.io/serviceaccount/ca.crt. */
  caFile?: string;
  /** Tests only: 'http' talks to a plain-HTTP test server (no CA file needed). */
  scheme?: 'https' | 'http';
}

export interface InClusterConfig {
  /** `https://host:port` */
  server: string;
  tokenFile: string;
  caFile: string | null;
}

function readable(file: string): unknown {
  try {
    accessSync(file, constants.R_OK);
    return readFileSync(file, 'utf8').trim().length > 0 ? null : new Error('the file is empty');
  } catch (error) {
    return error;
  }
}

/** Loads the in-cluster configuration or throws a KubeConfigError naming what is missing. */
export function loadInClusterConfig(options: InClusterConfigOptions = {}): InClusterConfig {
  const env = options.env ?? process.env;
  const host = env.KUBERNETES_SERVICE_HOST?.trim();
  const portText = env.KUBERNETES_SERVICE_PORT?.trim();
  if (!host) {
    throw new KubeConfigError('KUBE_SERVICE_HOST_MISSING', 'in-cluster mode needs KUBERNETES_SERVICE_HOST (set by Kubernetes in every pod); it is unset, so this process is not running in a pod');
  }
  const port = Number(portText);
  if (!portText || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new KubeConfigError('KUBE_SERVICE_PORT_INVALID', `in-cluster mode needs KUBERNETES_SERVICE_PORT to be a port number; got ${portText === undefined ? 'nothing' : JSON.stringify(portText)}`);
  }
  const scheme = options.scheme ?? 'https';
  const tokenFile = options.tokenFile ?? `${SERVICE_ACCOUNT_DIR}/token`;
  const tokenProblem = readable(tokenFile);
  if (tokenProblem) {
    throw new KubeConfigError(
      'KUBE_TOKEN_FILE_UNREADABLE',
      `in-cluster mode needs the ServiceAccount token at ${tokenFile} (${(tokenProblem as Error).message}); is automountServiceAccountToken false on the pod or its ServiceAccount?`,
      { cause: tokenProblem },
    );
  }
  let caFile: string | null = null;
  if (scheme === 'https') {
    caFile = options.caFile ?? `${SERVICE_ACCOUNT_DIR}/ca.crt`;
    const caProblem = readable(caFile);
    if (caProblem) {
      throw new KubeConfigError('KUBE_CA_FILE_UNREADABLE', `in-cluster mode needs the cluster CA at ${caFile} (${(caProblem as Error).message})`, { cause: caProblem });
    }
  }
  const server = `${scheme}://${isIPv6(host) ? `[${host}]` : host}:${port}`;
  return { server, tokenFile, caFile };
}

export interface KubeClientOptions {
  /** Every API request is abandoned after this long, and so is a watch whose answer has not begun by then. Default 10 000. */
  requestTimeoutMs?: number;
  /** Responses above this are refused (a bound on what one list can cost). Default 16 MiB. */
  maxResponseBytes?: number;
  /** Default `raft-elector/<package version>`. */
  userAgent?: string;
}

function packageVersion(): string {
  const require = createRequire(import.meta.url);
  for (const candidate of ['../package.json', '../../package.json']) {
    try {
      return (require(candidate) as { version: string }).version;
    } catch {
      // k8s/ and dist/k8s/ sit at different depths; the image's bundle has no package.json.
    }
  }
  return 'unknown';
}

export const DEFAULT_USER_AGENT = `raft-elector/${packageVersion()}`;

/**
 * An API object as JSON carries it: client-node's models say `Date` where the API server sends
 * an RFC 3339 string (Time, MicroTime), and this client does not convert them. A field written
 * as a string is sent as it is, so a Lease's MicroTime keeps its six fractional digits.
 */
export type Wire<T> = T extends Date ? string : T extends Array<infer U> ? Array<Wire<U>> : T extends object ? { [K in keyof T]: Wire<T[K]> } : T;

/** Kubernetes patch types, named as client-node's PatchStrategy. */
export const PatchContentType = {
  JsonPatch: 'application/json-patch+json',
  MergePatch: 'application/merge-patch+json',
  StrategicMergePatch: 'application/strategic-merge-patch+json',
} as const;

export interface PatchOptions {
  /** Default JSON Patch, as client-node's generated patch methods send (pass MergePatch for a merge patch). */
  contentType?: (typeof PatchContentType)[keyof typeof PatchContentType];
}

/** The core/v1 calls a member makes, named and shaped as client-node's CoreV1Api. */
export interface CoreApi {
  listNamespacedPod(request: { namespace: string; labelSelector?: string; fieldSelector?: string; resourceVersion?: string; limit?: number }): Promise<Wire<V1PodList>>;
  patchNamespacedPod(request: { name: string; namespace: string; body: object }, options?: PatchOptions): Promise<Wire<V1Pod>>;
  createNamespacedEvent(request: { namespace: string; body: Wire<CoreV1Event> }): Promise<Wire<CoreV1Event>>;
}

/** The coordination.k8s.io/v1 calls (the Lease mirror's), as client-node's CoordinationV1Api. */
export interface CoordinationApi {
  readNamespacedLease(request: { name: string; namespace: string }): Promise<Wire<V1Lease>>;
  replaceNamespacedLease(request: { name: string; namespace: string; body: Wire<V1Lease> }): Promise<Wire<V1Lease>>;
}

export interface KubeClient {
  readonly server: string;
  readonly core: CoreApi;
  readonly coordination: CoordinationApi;
  readonly watch: Pick<KubeWatch, 'watch'>;
  readonly requestTimeoutMs: number;
  /** Closes kept-alive connections. */
  close(): void;
}

const pathPart = encodeURIComponent;

export function createKubeClient(config: Pick<InClusterConfig, 'server' | 'tokenFile' | 'caFile'>, options: KubeClientOptions = {}): KubeClient {
  const requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
  const maxResponseBytes = options.maxResponseBytes ?? 16 * 1024 * 1024;
  if (!(requestTimeoutMs > 0)) throw new KubeConfigError('KUBE_CLIENT_OPTIONS_INVALID', `requestTimeoutMs must be > 0, got ${requestTimeoutMs}`);
  if (!(maxResponseBytes > 0)) throw new KubeConfigError('KUBE_CLIENT_OPTIONS_INVALID', `maxResponseBytes must be > 0, got ${maxResponseBytes}`);
  const api = new KubeHttp({ server: config.server, tokenFile: config.tokenFile, caFile: config.caFile, userAgent: options.userAgent ?? DEFAULT_USER_AGENT, requestTimeoutMs, maxResponseBytes });
  const pods = (namespace: string) => `/api/v1/namespaces/${pathPart(namespace)}/pods`;
  const leases = (namespace: string) => `/apis/coordination.k8s.io/v1/namespaces/${pathPart(namespace)}/leases`;
  const core: CoreApi = {
    listNamespacedPod: ({ namespace, ...query }) => api.request('GET', pods(namespace), { query }),
    patchNamespacedPod: ({ name, namespace, body }, patch) =>
      api.request('PATCH', `${pods(namespace)}/${pathPart(name)}`, { body, contentType: patch?.contentType ?? PatchContentType.JsonPatch }),
    createNamespacedEvent: ({ namespace, body }) => api.request('POST', `/api/v1/namespaces/${pathPart(namespace)}/events`, { body }),
  };
  const coordination: CoordinationApi = {
    readNamespacedLease: ({ name, namespace }) => api.request('GET', `${leases(namespace)}/${pathPart(name)}`),
    replaceNamespacedLease: ({ name, namespace, body }) => api.request('PUT', `${leases(namespace)}/${pathPart(name)}`, { body }),
  };
  return { server: api.server, core, coordination, watch: new KubeWatch(api), requestTimeoutMs, close: () => api.close() };
}
