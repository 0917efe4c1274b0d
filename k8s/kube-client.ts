/**
 * The Kubernetes API client in in-cluster mode, loaded explicitly.
 *
 * client-node's `loadFromDefault` falls back to `http://localhost:8080` when it
 * finds no configuration, so a pod without a mounted token would talk to
 * nothing and log confusing connection errors forever. Here the in-cluster
 * files and environment are required and checked up front, with one typed
 * error naming what is missing.
 *
 * The generated API client has no request timeout (a request to a hung API
 * server never settles), so requests go through a small HTTP library that
 * destroys the request after `requestTimeoutMs` and bounds the response size.
 *
 * Every request, the watch included, says `User-Agent: raft-elector/<version>`, so audit
 * logs tell the sidecar apart from the app sharing its pod's token.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isIPv6 } from 'node:net';
import {
  CoordinationV1Api,
  CoreV1Api,
  KubeConfig,
  ResponseContext,
  ServerConfiguration,
  Watch,
  createConfiguration,
  wrapHttpLibrary,
  type RequestContext,
} from '@kubernetes/client-node';
import { fetch } from 'undici';
import { KubeRequestTimeoutError } from './api-errors.js';

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
  kubeConfig: KubeConfig;
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
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromClusterAndUser(
    // client-node refuses an http:// server unless skipTLSVerify is set; there is no TLS to verify then.
    { name: 'inCluster', server, skipTLSVerify: scheme === 'http', ...(caFile ? { caFile } : {}) },
    // client-node's FileAuth re-reads the token file every 60 s, as client-go does for projected tokens.
    { name: 'inClusterUser', authProvider: { name: 'tokenFile', config: { tokenFile } } },
  );
  return { kubeConfig, server, tokenFile, caFile };
}

export interface KubeClientOptions {
  /** Every API request (not the watch stream) is abandoned after this long. Default 10 000. */
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
 * Sets the User-Agent where client-node applies authentication to a request: the generated
 * API calls and (client-node 2.x) the watch go through applySecurityAuthentication, the
 * 1.x watch through applyToHTTPSOptions. Doing it on the KubeConfig keeps it independent
 * of the HTTP library underneath (node-fetch in 1.x, undici in 2.x).
 */
function applyUserAgent(kubeConfig: KubeConfig, userAgent: string): void {
  const tagged = kubeConfig as KubeConfig & { raftElectorUserAgent?: string };
  if (tagged.raftElectorUserAgent !== undefined) {
    tagged.raftElectorUserAgent = userAgent;
    return;
  }
  tagged.raftElectorUserAgent = userAgent;
  const applySecurityAuthentication = kubeConfig.applySecurityAuthentication.bind(kubeConfig);
  kubeConfig.applySecurityAuthentication = async (context) => {
    await applySecurityAuthentication(context);
    context.setHeaderParam('User-Agent', tagged.raftElectorUserAgent!);
  };
  const applyToHTTPSOptions = kubeConfig.applyToHTTPSOptions.bind(kubeConfig);
  kubeConfig.applyToHTTPSOptions = async (opts) => {
    await applyToHTTPSOptions(opts);
    opts.headers = { ...opts.headers, 'User-Agent': tagged.raftElectorUserAgent! };
  };
}

export interface KubeClient {
  readonly kubeConfig: KubeConfig;
  readonly server: string;
  readonly core: CoreV1Api;
  readonly coordination: CoordinationV1Api;
  readonly watch: Watch;
  readonly requestTimeoutMs: number;
}

class ResponseTooLargeError extends Error {
  readonly code = 'KUBE_RESPONSE_TOO_LARGE';
}

async function sendWithTimeout(request: RequestContext, timeoutMs: number, maxResponseBytes: number): Promise<ResponseContext> {
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(new KubeRequestTimeoutError(timeoutMs)), timeoutMs);
  const callerSignal = request.getSignal();
  const signal = callerSignal ? AbortSignal.any([callerSignal, timeout.signal]) : timeout.signal;
  try {
    const body = request.getBody();
    // client-node puts the cluster CA and client certificates on an undici Dispatcher,
    // which only undici's own fetch accepts (not Node's built-in one).
    const response = await fetch(request.getUrl(), {
      method: request.getHttpMethod().toString(),
      headers: request.getHeaders(),
      body: body === undefined ? undefined : typeof body === 'string' ? body : String(body),
      signal,
      dispatcher: request.getDispatcher(),
    });
    const chunks: Uint8Array[] = [];
    let size = 0;
    if (response.body) {
      for await (const chunk of response.body) {
        size += chunk.length;
        if (size > maxResponseBytes) {
          timeout.abort(new ResponseTooLargeError(`response larger than ${maxResponseBytes} bytes`));
          throw new ResponseTooLargeError(`response larger than ${maxResponseBytes} bytes`);
        }
        chunks.push(chunk);
      }
    }
    const buffer = Buffer.concat(chunks);
    const headers: Record<string, string> = {};
    response.headers.forEach((value, name) => {
      headers[name] = value;
    });
    return new ResponseContext(response.status, headers, {
      text: async () => buffer.toString('utf8'),
      binary: async () => buffer,
      stream: () => null,
    });
  } catch (error) {
    // An abort surfaces as a DOMException; report the reason we aborted for.
    if (timeout.signal.aborted && timeout.signal.reason instanceof Error) throw timeout.signal.reason;
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

export function createKubeClient(config: Pick<InClusterConfig, 'kubeConfig' | 'server'>, options: KubeClientOptions = {}): KubeClient {
  const requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
  const maxResponseBytes = options.maxResponseBytes ?? 16 * 1024 * 1024;
  if (!(requestTimeoutMs > 0)) throw new KubeConfigError('KUBE_CLIENT_OPTIONS_INVALID', `requestTimeoutMs must be > 0, got ${requestTimeoutMs}`);
  if (!(maxResponseBytes > 0)) throw new KubeConfigError('KUBE_CLIENT_OPTIONS_INVALID', `maxResponseBytes must be > 0, got ${maxResponseBytes}`);
  applyUserAgent(config.kubeConfig, options.userAgent ?? DEFAULT_USER_AGENT);
  const configuration = createConfiguration({
    baseServer: new ServerConfiguration(config.server, {}),
    authMethods: { default: config.kubeConfig },
    httpApi: wrapHttpLibrary({ send: (request) => sendWithTimeout(request, requestTimeoutMs, maxResponseBytes) }),
  });
  return {
    kubeConfig: config.kubeConfig,
    server: config.server,
    core: new CoreV1Api(configuration),
    coordination: new CoordinationV1Api(configuration),
    watch: new Watch(config.kubeConfig),
    requestTimeoutMs,
  };
}
