/**
 * A test Kubernetes API server that answers like the real one for everything
 * raft-elector and kubectl use: discovery, pods get/list/watch/patch/delete
 * (graceful), events create/list, Status errors, the Table format of
 * `kubectl get`, bearer-token auth over HTTP or HTTPS, and switches for RBAC
 * denial, 5xx, hung requests, dropped connections and expired watch history.
 *
 * Semantics kept on purpose (apiserver/etcd behaviour a client must survive):
 * one global resourceVersion counter; a watch from a resourceVersion older
 * than the retained history gets an ERROR event carrying a 410 Expired Status
 * on an HTTP 200 stream; a watch without a resourceVersion (or "0") starts
 * with synthetic ADDED events; a label-selector watch sees DELETED when an
 * object stops matching and ADDED when it starts matching; a no-op patch
 * neither bumps the resourceVersion nor emits an event.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestCertificates, type TestCertificates } from './certs.js';
import { applyJsonPatch, applyMergePatch, applyStrategicMergePatch, PatchError } from './patch.js';
import {
  fieldsMatch,
  labelsMatch,
  parseFieldSelector,
  parseLabelSelector,
  SelectorParseError,
  type FieldRequirement,
  type LabelRequirement,
} from './selectors.js';

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'deletecollection';

export interface ContainerState {
  running?: { startedAt: string };
  terminated?: { exitCode: number; reason?: string; startedAt?: string; finishedAt: string };
  waiting?: { reason: string; message?: string };
}

export interface ContainerStatus {
  name: string;
  ready: boolean;
  restartCount: number;
  started?: boolean;
  image: string;
  imageID: string;
  containerID?: string;
  state: ContainerState;
}

export interface Pod {
  apiVersion: 'v1';
  kind: 'Pod';
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    resourceVersion: string;
    creationTimestamp: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    deletionTimestamp?: string;
    deletionGracePeriodSeconds?: number;
    [key: string]: unknown;
  };
  spec: {
    containers: Array<{ name: string; image: string }>;
    terminationGracePeriodSeconds: number;
    nodeName?: string;
    [key: string]: unknown;
  };
  status: {
    phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';
    podIP?: string;
    conditions?: Array<{ type: string; status: string }>;
    containerStatuses?: ContainerStatus[];
    [key: string]: unknown;
  };
}

export interface StoredEventObject {
  metadata: { name: string; namespace: string; uid: string; resourceVersion: string; creationTimestamp: string; [key: string]: unknown };
  [key: string]: unknown;
}

export interface CreatePodInput {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  phase?: Pod['status']['phase'];
  containers?: string[];
  terminationGracePeriodSeconds?: number;
  podIP?: string;
}

export interface RequestLogEntry {
  method: string;
  path: string;
  query: Record<string, string>;
  verb: Verb | null;
  group: string;
  resource: string | null;
  namespace: string | null;
  name: string | null;
  contentType: string | null;
  accept: string | null;
  userAgent: string | null;
  body: string | null;
  /** The HTTP status sent; null while the request is open (a watch) or when it hung / was dropped. */
  status: number | null;
}

export interface RuleMatch {
  verb?: Verb;
  resource?: string;
  group?: string;
  namespace?: string;
  name?: string;
}

export interface TestApiServerOptions {
  tls?: boolean;
  token?: string;
  /** The ServiceAccount the token belongs to, as `namespace:name` (shown in 403 messages). */
  serviceAccount?: string;
  /** Watch events retained for resuming; older resourceVersions get 410. */
  historyLimit?: number;
  /** Remove gracefully deleted pods by themselves after their grace period (default true). */
  autoFinalize?: boolean;
  /** BOOKMARK interval for watches that allow them; 0 disables periodic bookmarks. */
  bookmarkIntervalMs?: number;
  /** Request bodies above this are refused with 413. */
  maxBodyBytes?: number;
  gitVersion?: string;
  /** More IP addresses the server certificate names, for clients that reach it through a forwarder. */
  certificateIps?: string[];
}

export interface InClusterLayout {
  dir: string;
  tokenFile: string;
  caFile: string;
  namespaceFile: string;
  env: { KUBERNETES_SERVICE_HOST: string; KUBERNETES_SERVICE_PORT: string };
}

type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface HistoryEntry {
  resourceVersion: number;
  type: WatchEventType;
  previous: Pod | null;
  object: Pod;
}

interface Watcher {
  response: http.ServerResponse;
  namespace: string | null;
  labels: LabelRequirement[];
  fields: FieldRequirement[];
  table: boolean;
  timers: NodeJS.Timeout[];
  closed: boolean;
}

interface RequestInfo {
  verb: Verb | null;
  group: string;
  version: string;
  resource: string | null;
  subresource: string | null;
  namespace: string | null;
  name: string | null;
}

class HttpStatusError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export function statusObject(code: number, reason: string, message: string, details?: Record<string, unknown>): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code };
}

const reasonsByCode: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  410: 'Expired',
  413: 'RequestEntityTooLarge',
  415: 'UnsupportedMediaType',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

const podResource = {
  name: 'pods',
  singularName: 'pod',
  namespaced: true,
  kind: 'Pod',
  verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'],
  shortNames: ['po'],
  categories: ['all'],
  storageVersionHash: 'xPOwRZ+Yhw8=',
};

const eventResource = {
  name: 'events',
  singularName: 'event',
  namespaced: true,
  kind: 'Event',
  verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'],
  shortNames: ['ev'],
  storageVersionHash: 'r2yiGXH7wu8=',
};

function matches(rule: RuleMatch, info: RequestInfo): boolean {
  return (
    (rule.verb === undefined || rule.verb === info.verb) &&
    (rule.resource === undefined || rule.resource === info.resource) &&
    (rule.group === undefined || rule.group === info.group) &&
    (rule.namespace === undefined || rule.namespace === info.namespace) &&
    (rule.name === undefined || rule.name === info.name)
  );
}

function ageOf(timestamp: string, nowMs: number): string {
  const seconds = Math.max(0, Math.floor((nowMs - Date.parse(timestamp)) / 1000));
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`;
  return `${Math.floor(seconds / 3600)}h`;
}

export class TestApiServer {
  readonly token: string;
  readonly serviceAccount: string;
  readonly tls: boolean;
  readonly dir: string;
  /** Every request, in arrival order. */
  readonly requests: RequestLogEntry[] = [];

  private readonly server: http.Server;
  private readonly sockets = new Set<Socket>();
  private readonly pods = new Map<string, Pod>();
  private readonly events = new Map<string, StoredEventObject>();
  private readonly history: HistoryEntry[] = [];
  private readonly watchers = new Set<Watcher>();
  private readonly finalizeTimers = new Map<string, NodeJS.Timeout>();
  private readonly hungResponses = new Set<http.ServerResponse>();
  private forbidden: RuleMatch[] = [];
  /** Injected faults, used in the order they were added. */
  private faults: Array<RuleMatch & { kind: 'fail' | 'hang' | 'drop'; remaining: number; status?: number; message?: string }> = [];
  private resourceVersion = 1;
  /** Watches from a resourceVersion below this get 410: the events after it are no longer all retained. */
  private oldestResumableVersion = 1;
  private readonly historyLimit: number;
  private readonly autoFinalize: boolean;
  private readonly bookmarkIntervalMs: number;
  private readonly maxBodyBytes: number;
  private readonly gitVersion: string;
  private port = 0;
  readonly certificates: TestCertificates | null;

  private constructor(options: TestApiServerOptions) {
    this.tls = options.tls ?? true;
    this.token = options.token ?? randomBytes(24).toString('base64url');
    this.serviceAccount = options.serviceAccount ?? 'default:raft-elector';
    this.historyLimit = options.historyLimit ?? 1000;
    this.autoFinalize = options.autoFinalize ?? true;
    this.bookmarkIntervalMs = options.bookmarkIntervalMs ?? 0;
    this.maxBodyBytes = options.maxBodyBytes ?? 3 * 1024 * 1024;
    this.gitVersion = options.gitVersion ?? 'v1.32.4';
    this.dir = mkdtempSync(join(tmpdir(), 'raft-elector-apiserver-'));
    const handler = (request: http.IncomingMessage, response: http.ServerResponse): void => {
      this.handle(request, response);
    };
    if (this.tls) {
      this.certificates = makeTestCertificates(this.dir, options.certificateIps ?? []);
      this.server = https.createServer({ cert: this.certificates.cert, key: this.certificates.key }, handler);
    } else {
      this.certificates = null;
      this.server = http.createServer(handler);
    }
    this.server.on(this.tls ? 'secureConnection' : 'connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  static async start(options: TestApiServerOptions = {}): Promise<TestApiServer> {
    const server = new TestApiServer(options);
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject);
      server.server.listen(0, '127.0.0.1', () => resolve());
    });
    server.port = (server.server.address() as AddressInfo).port;
    return server;
  }

  get host(): string {
    return '127.0.0.1';
  }

  get portNumber(): number {
    return this.port;
  }

  get url(): string {
    return `${this.tls ? 'https' : 'http'}://127.0.0.1:${this.port}`;
  }

  get currentResourceVersion(): number {
    return this.resourceVersion;
  }

  /** The token, CA and namespace files as a pod sees them under /var/run/secrets/kubernetes.io/serviceaccount. */
  writeInClusterLayout(namespace = 'default'): InClusterLayout {
    const dir = join(this.dir, 'serviceaccount');
    mkdirSync(dir, { recursive: true });
    const tokenFile = join(dir, 'token');
    const caFile = join(dir, 'ca.crt');
    const namespaceFile = join(dir, 'namespace');
    writeFileSync(tokenFile, this.token);
    writeFileSync(caFile, this.certificates?.ca ?? '');
    writeFileSync(namespaceFile, namespace);
    return {
      dir,
      tokenFile,
      caFile,
      namespaceFile,
      env: { KUBERNETES_SERVICE_HOST: this.host, KUBERNETES_SERVICE_PORT: String(this.port) },
    };
  }

  /** A kubeconfig for kubectl (JSON is valid YAML). */
  writeKubeconfig(namespace = 'default'): string {
    const file = join(this.dir, 'kubeconfig');
    const cluster: Record<string, unknown> = { server: this.url };
    if (this.certificates) cluster['certificate-authority'] = this.certificates.caFile;
    const config = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'test', cluster }],
      users: [{ name: 'test', user: { token: this.token } }],
      contexts: [{ name: 'test', context: { cluster: 'test', user: 'test', namespace } }],
      'current-context': 'test',
    };
    writeFileSync(file, JSON.stringify(config, null, 2));
    return file;
  }

  // ---- test helpers: state ------------------------------------------------

  createPod(input: CreatePodInput): Pod {
    const namespace = input.namespace ?? 'default';
    const key = `${namespace}/${input.name}`;
    if (this.pods.has(key)) throw new Error(`pod ${key} already exists`);
    const now = new Date().toISOString();
    const containers = (input.containers ?? ['app', 'raft-elector']).map((name) => ({ name, image: `example/${name}:test` }));
    const phase = input.phase ?? 'Running';
    const pod: Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: input.name,
        namespace,
        uid: randomUUID(),
        resourceVersion: '',
        creationTimestamp: now,
        ...(input.labels ? { labels: { ...input.labels } } : {}),
        ...(input.annotations ? { annotations: { ...input.annotations } } : {}),
      },
      spec: { containers, terminationGracePeriodSeconds: input.terminationGracePeriodSeconds ?? 30, nodeName: 'node-1' },
      status: {
        phase,
        podIP: input.podIP ?? '10.0.0.1',
        conditions: [{ type: 'Ready', status: phase === 'Running' ? 'True' : 'False' }],
        containerStatuses: containers.map((container, index) => ({
          name: container.name,
          ready: phase === 'Running',
          restartCount: 0,
          started: phase === 'Running',
          image: container.image,
          imageID: '',
          containerID: `containerd://${index}${randomBytes(8).toString('hex')}`,
          state: phase === 'Running' ? { running: { startedAt: now } } : { waiting: { reason: 'ContainerCreating' } },
        })),
      },
    };
    this.store('ADDED', null, pod);
    return structuredClone(pod);
  }

  getPod(name: string, namespace = 'default'): Pod | undefined {
    const pod = this.pods.get(`${namespace}/${name}`);
    return pod ? structuredClone(pod) : undefined;
  }

  listPods(namespace = 'default'): Pod[] {
    return [...this.pods.values()].filter((pod) => pod.metadata.namespace === namespace).map((pod) => structuredClone(pod));
  }

  /** Changes a pod as the kubelet or a controller would: MODIFIED with a new resourceVersion. */
  updatePod(name: string, mutate: (pod: Pod) => void, namespace = 'default'): Pod {
    const current = this.pods.get(`${namespace}/${name}`);
    if (!current) throw new Error(`pod ${namespace}/${name} not found`);
    const next = structuredClone(current);
    mutate(next);
    this.store('MODIFIED', current, next);
    return structuredClone(next);
  }

  setPodPhase(name: string, phase: Pod['status']['phase'], namespace = 'default'): Pod {
    return this.updatePod(
      name,
      (pod) => {
        pod.status.phase = phase;
        pod.status.conditions = [{ type: 'Ready', status: phase === 'Running' ? 'True' : 'False' }];
      },
      namespace,
    );
  }

  setContainerState(name: string, container: string, state: ContainerState, namespace = 'default'): Pod {
    return this.updatePod(
      name,
      (pod) => {
        const status = pod.status.containerStatuses?.find((candidate) => candidate.name === container);
        if (!status) throw new Error(`pod ${namespace}/${name} has no container ${container}`);
        status.state = state;
        status.ready = state.running !== undefined;
      },
      namespace,
    );
  }

  /** A graceful delete as `kubectl delete pod` does it (deletionTimestamp, MODIFIED, removal after the grace period). */
  deletePod(name: string, options: { gracePeriodSeconds?: number; namespace?: string } = {}): Pod {
    return structuredClone(this.deletePodInternal(options.namespace ?? 'default', name, options.gracePeriodSeconds, undefined));
  }

  /** Ends a graceful deletion now (what the kubelet does once the containers stopped): DELETED. */
  finalizeDeletion(name: string, namespace = 'default'): void {
    const key = `${namespace}/${name}`;
    const pod = this.pods.get(key);
    if (!pod) throw new Error(`pod ${key} not found`);
    this.removePod(key, pod);
  }

  listEvents(namespace = 'default'): StoredEventObject[] {
    return [...this.events.values()].filter((event) => event.metadata.namespace === namespace).map((event) => structuredClone(event));
  }

  // ---- test helpers: faults -------------------------------------------------

  /** Answers 403 Forbidden, with the real message, for every request matching the rule until `allow()`. */
  forbid(rule: RuleMatch): void {
    this.forbidden.push(rule);
  }

  allow(): void {
    this.forbidden = [];
  }

  /** The next `count` matching requests get `status` (500, 503, 504, 429, 401...) as a Status object. */
  failNext(rule: RuleMatch & { status: number; count?: number; message?: string }): void {
    if (rule.status < 400) throw new Error(`failNext needs an error status, got ${rule.status}`);
    this.faults.push({ ...rule, kind: 'fail', remaining: rule.count ?? 1 });
  }

  /** The next `count` matching requests never get an answer (a client must time out). */
  hangNext(rule: RuleMatch & { count?: number }): void {
    this.faults.push({ ...rule, kind: 'hang', remaining: rule.count ?? 1 });
  }

  /** The next `count` matching requests have their connection destroyed without an answer. */
  dropNext(rule: RuleMatch & { count?: number }): void {
    this.faults.push({ ...rule, kind: 'drop', remaining: rule.count ?? 1 });
  }

  clearFaults(): void {
    this.forbidden = [];
    this.faults = [];
  }

  /** Destroys the connections of all open watches (no final chunk, as when a node or load balancer fails). */
  dropWatchConnections(): number {
    const count = this.watchers.size;
    for (const watcher of [...this.watchers]) {
      this.closeWatcher(watcher);
      watcher.response.socket?.destroy();
    }
    return count;
  }

  /**
   * Forgets the retained history (as etcd compaction does): every resourceVersion
   * before now is too old to resume from, and each open watch gets an ERROR 410 and ends.
   */
  expireHistory(): void {
    this.history.length = 0;
    this.oldestResumableVersion = this.resourceVersion;
    for (const watcher of [...this.watchers]) {
      this.writeEvent(watcher, 'ERROR', this.expiredStatus(0));
      this.closeWatcher(watcher);
      watcher.response.end();
    }
  }

  /** Sends a BOOKMARK to every open watch that allowed them. */
  sendBookmarks(): void {
    for (const watcher of this.watchers) this.writeBookmark(watcher);
  }

  openWatchCount(): number {
    return this.watchers.size;
  }

  requestsFor(rule: RuleMatch): RequestLogEntry[] {
    return this.requests.filter((entry) => matches(rule, { ...entry, version: '', subresource: null }));
  }

  async close(): Promise<void> {
    for (const timer of this.finalizeTimers.values()) clearTimeout(timer);
    this.finalizeTimers.clear();
    for (const watcher of [...this.watchers]) this.closeWatcher(watcher);
    for (const socket of this.sockets) socket.destroy();
    this.hungResponses.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.dir, { recursive: true, force: true });
  }

  // ---- storage and watch fan-out --------------------------------------------

  private nextResourceVersion(): string {
    this.resourceVersion += 1;
    return String(this.resourceVersion);
  }

  private store(type: WatchEventType, previous: Pod | null, next: Pod): void {
    const key = `${next.metadata.namespace}/${next.metadata.name}`;
    next.metadata.resourceVersion = this.nextResourceVersion();
    if (type === 'DELETED') this.pods.delete(key);
    else this.pods.set(key, next);
    const entry: HistoryEntry = { resourceVersion: this.resourceVersion, type, previous: previous ? structuredClone(previous) : null, object: structuredClone(next) };
    this.history.push(entry);
    while (this.history.length > this.historyLimit) {
      const dropped = this.history.shift();
      if (dropped) this.oldestResumableVersion = dropped.resourceVersion;
    }
    for (const watcher of this.watchers) this.deliver(watcher, entry);
  }

  private removePod(key: string, pod: Pod): void {
    const timer = this.finalizeTimers.get(key);
    if (timer) clearTimeout(timer);
    this.finalizeTimers.delete(key);
    this.store('DELETED', pod, structuredClone(pod));
  }

  private deletePodInternal(namespace: string, name: string, gracePeriodSeconds: number | undefined, preconditions: { uid?: string; resourceVersion?: string } | undefined): Pod {
    const key = `${namespace}/${name}`;
    const pod = this.pods.get(key);
    if (!pod) throw new HttpStatusError(404, 'NotFound', `pods "${name}" not found`, { name, kind: 'pods' });
    if (preconditions?.uid && preconditions.uid !== pod.metadata.uid) {
      throw new HttpStatusError(409, 'Conflict', `Operation cannot be fulfilled on pods "${name}": Precondition failed: UID in precondition: ${preconditions.uid}, UID in object meta: ${pod.metadata.uid}`, { name, kind: 'pods' });
    }
    if (preconditions?.resourceVersion && preconditions.resourceVersion !== pod.metadata.resourceVersion) {
      throw new HttpStatusError(409, 'Conflict', `Operation cannot be fulfilled on pods "${name}": Precondition failed: ResourceVersion in precondition: ${preconditions.resourceVersion}, ResourceVersion in object meta: ${pod.metadata.resourceVersion}`, { name, kind: 'pods' });
    }
    const grace = gracePeriodSeconds ?? pod.metadata.deletionGracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds;
    if (grace <= 0) {
      const final = structuredClone(pod);
      this.removePod(key, final);
      return final;
    }
    if (pod.metadata.deletionTimestamp !== undefined && (pod.metadata.deletionGracePeriodSeconds ?? Infinity) <= grace) {
      return pod; // already terminating with a grace period at most this long: unchanged, as the real registry
    }
    const next = structuredClone(pod);
    next.metadata.deletionTimestamp = new Date(Date.now() + grace * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    next.metadata.deletionGracePeriodSeconds = grace;
    this.store('MODIFIED', pod, next);
    if (this.autoFinalize) {
      const existing = this.finalizeTimers.get(key);
      if (existing) clearTimeout(existing);
      const timer = setTimeout(() => {
        const current = this.pods.get(key);
        if (current && current.metadata.uid === next.metadata.uid) this.removePod(key, current);
      }, grace * 1000);
      timer.unref();
      this.finalizeTimers.set(key, timer);
    }
    return next;
  }

  private deliver(watcher: Watcher, entry: HistoryEntry): void {
    if (watcher.closed) return;
    const visible = (pod: Pod | null): boolean =>
      pod !== null &&
      (watcher.namespace === null || pod.metadata.namespace === watcher.namespace) &&
      labelsMatch(watcher.labels, pod.metadata.labels) &&
      fieldsMatch(watcher.fields, pod);
    const before = entry.type !== 'ADDED' && visible(entry.previous);
    const after = visible(entry.object);
    let type: WatchEventType | null = null;
    if (entry.type === 'DELETED') type = before ? 'DELETED' : null;
    else if (before && after) type = 'MODIFIED';
    else if (after) type = 'ADDED';
    else if (before) type = 'DELETED';
    if (type !== null) this.writeEvent(watcher, type, this.render(entry.object, watcher.table));
  }

  private writeEvent(watcher: Watcher, type: string, object: unknown): void {
    if (watcher.closed) return;
    watcher.response.write(`${JSON.stringify({ type, object })}\n`);
  }

  private writeBookmark(watcher: Watcher): void {
    this.writeEvent(watcher, 'BOOKMARK', { kind: 'Pod', apiVersion: 'v1', metadata: { resourceVersion: String(this.resourceVersion) } });
  }

  private closeWatcher(watcher: Watcher): void {
    watcher.closed = true;
    for (const timer of watcher.timers) clearTimeout(timer);
    this.watchers.delete(watcher);
  }

  private expiredStatus(requested: number): Record<string, unknown> {
    return statusObject(410, 'Expired', `too old resource version: ${requested} (${this.oldestResumableVersion})`);
  }

  // ---- HTTP ---------------------------------------------------------------

  private handle(request: http.IncomingMessage, response: http.ServerResponse): void {
    const url = new URL(request.url ?? '/', 'http://apiserver');
    const query = Object.fromEntries(url.searchParams.entries());
    const info = this.requestInfo(request.method ?? 'GET', url.pathname, query);
    const entry: RequestLogEntry = {
      method: request.method ?? 'GET',
      path: url.pathname,
      query,
      verb: info.verb,
      group: info.group,
      resource: info.resource,
      namespace: info.namespace,
      name: info.name,
      contentType: request.headers['content-type'] ?? null,
      accept: request.headers.accept ?? null,
      userAgent: request.headers['user-agent'] ?? null,
      body: null,
      status: null,
    };
    this.requests.push(entry);
    const originalWriteHead = response.writeHead.bind(response) as (...args: unknown[]) => http.ServerResponse;
    response.writeHead = ((...args: unknown[]) => {
      entry.status = args[0] as number;
      return originalWriteHead(...args);
    }) as typeof response.writeHead;

    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > this.maxBodyBytes) tooLarge = true;
      else chunks.push(chunk);
    });
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      entry.body = body.length > 0 ? body : null;
      try {
        if (tooLarge) throw new HttpStatusError(413, 'RequestEntityTooLarge', 'the request body is too large');
        this.route(request, response, url, query, info, body);
      } catch (error) {
        if (error instanceof HttpStatusError) this.sendStatus(response, error.code, error.reason, error.message, error.details);
        else this.sendStatus(response, 500, 'InternalError', `Internal error occurred: ${(error as Error).message}`);
      }
    });
  }

  private requestInfo(method: string, path: string, query: Record<string, string>): RequestInfo {
    const info: RequestInfo = { verb: null, group: '', version: '', resource: null, subresource: null, namespace: null, name: null };
    const parts = path.split('/').filter((part) => part.length > 0);
    let rest: string[];
    if (parts[0] === 'api' && parts.length >= 2) {
      info.version = parts[1] ?? '';
      rest = parts.slice(2);
    } else if (parts[0] === 'apis' && parts.length >= 3) {
      info.group = parts[1] ?? '';
      info.version = parts[2] ?? '';
      rest = parts.slice(3);
    } else {
      return info;
    }
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      info.namespace = rest[1] ?? null;
      rest = rest.slice(2);
    }
    info.resource = rest[0] ?? null;
    info.name = rest[1] ?? null;
    info.subresource = rest[2] ?? null;
    if (info.resource === null) return info;
    const watch = query.watch === 'true' || query.watch === '1';
    switch (method) {
      case 'GET':
        info.verb = info.name !== null ? 'get' : watch ? 'watch' : 'list';
        break;
      case 'POST':
        info.verb = 'create';
        break;
      case 'PUT':
        info.verb = 'update';
        break;
      case 'PATCH':
        info.verb = 'patch';
        break;
      case 'DELETE':
        info.verb = info.name !== null ? 'delete' : 'deletecollection';
        break;
    }
    return info;
  }

  private takeRule<T extends RuleMatch & { remaining: number }>(rules: T[], info: RequestInfo): T | undefined {
    const rule = rules.find((candidate) => candidate.remaining > 0 && matches(candidate, info));
    if (rule) rule.remaining -= 1;
    return rule;
  }

  private route(request: http.IncomingMessage, response: http.ServerResponse, url: URL, query: Record<string, string>, info: RequestInfo, body: string): void {
    const path = url.pathname.replace(/\/+$/, '') || '/';
    if (path === '/version') return this.sendJson(response, 200, this.version());
    if (path === '/healthz' || path === '/livez' || path === '/readyz') {
      response.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      response.end('ok');
      return;
    }

    const authorization = request.headers.authorization ?? '';
    if (authorization !== `Bearer ${this.token}`) throw new HttpStatusError(401, 'Unauthorized', 'Unauthorized');

    const fault = this.takeRule(this.faults, info);
    if (fault?.kind === 'drop') {
      request.socket.destroy();
      return;
    }
    if (fault?.kind === 'hang') {
      this.hungResponses.add(response);
      return;
    }
    if (fault?.kind === 'fail') {
      const status = fault.status ?? 500;
      throw new HttpStatusError(status, reasonsByCode[status] ?? 'InternalError', fault.message ?? this.defaultFailureMessage(status));
    }
    if (info.verb !== null && this.forbidden.some((rule) => matches(rule, info))) throw this.forbiddenError(info);

    switch (path) {
      case '/api':
        return this.sendJson(response, 200, {
          kind: 'APIVersions',
          versions: ['v1'],
          serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: `127.0.0.1:${this.port}` }],
        });
      case '/apis':
        return this.sendJson(response, 200, {
          kind: 'APIGroupList',
          apiVersion: 'v1',
          groups: [
            {
              name: 'events.k8s.io',
              versions: [{ groupVersion: 'events.k8s.io/v1', version: 'v1' }],
              preferredVersion: { groupVersion: 'events.k8s.io/v1', version: 'v1' },
            },
          ],
        });
      case '/api/v1':
        return this.sendJson(response, 200, {
          kind: 'APIResourceList',
          groupVersion: 'v1',
          resources: [
            eventResource,
            podResource,
            { name: 'pods/status', singularName: '', namespaced: true, kind: 'Pod', verbs: ['get', 'patch', 'update'] },
          ],
        });
      case '/apis/events.k8s.io':
        return this.sendJson(response, 200, {
          kind: 'APIGroup',
          apiVersion: 'v1',
          name: 'events.k8s.io',
          versions: [{ groupVersion: 'events.k8s.io/v1', version: 'v1' }],
          preferredVersion: { groupVersion: 'events.k8s.io/v1', version: 'v1' },
        });
      case '/apis/events.k8s.io/v1':
        return this.sendJson(response, 200, { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: 'events.k8s.io/v1', resources: [eventResource] });
    }

    const coreV1 = info.group === '' && info.version === 'v1' && url.pathname.startsWith('/api/');
    const eventsV1 = info.group === 'events.k8s.io' && info.version === 'v1';
    if (coreV1 && info.resource === 'pods' && info.subresource === null) return this.handlePods(request, response, query, info, body);
    if ((coreV1 || eventsV1) && info.resource === 'events' && info.subresource === null) return this.handleEvents(response, info, body);
    throw new HttpStatusError(404, 'NotFound', 'the server could not find the requested resource');
  }

  private version(): Record<string, string> {
    const [, major = '1', minor = '32'] = /^v(\d+)\.(\d+)/.exec(this.gitVersion) ?? [];
    return {
      major,
      minor,
      gitVersion: this.gitVersion,
      gitCommit: '0000000000000000000000000000000000000000',
      gitTreeState: 'clean',
      buildDate: '2025-01-01T00:00:00Z',
      goVersion: 'go1.23.6',
      compiler: 'gc',
      platform: 'linux/amd64',
    };
  }

  private defaultFailureMessage(status: number): string {
    if (status === 503) return 'the server is currently unable to handle the request';
    if (status === 504) return 'the server was unable to return a response in the time allotted, but may still be processing the request';
    if (status === 429) return 'too many requests, please try again later';
    if (status === 401) return 'Unauthorized';
    return 'Internal error occurred: injected by the test';
  }

  private forbiddenError(info: RequestInfo): HttpStatusError {
    const [saNamespace = 'default', saName = 'default'] = this.serviceAccount.split(':');
    const user = `system:serviceaccount:${saNamespace}:${saName}`;
    const subject = info.name !== null ? `${info.resource} "${info.name}"` : `${info.resource}`;
    const scope = info.namespace !== null ? ` in the namespace "${info.namespace}"` : ' at the cluster scope';
    const message = `${subject} is forbidden: User "${user}" cannot ${info.verb} resource "${info.resource}" in API group "${info.group}"${scope}`;
    return new HttpStatusError(403, 'Forbidden', message, { ...(info.name !== null ? { name: info.name } : {}), ...(info.group ? { group: info.group } : {}), kind: info.resource });
  }

  private sendJson(response: http.ServerResponse, code: number, body: unknown): void {
    const text = JSON.stringify(body);
    response.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    response.end(text);
  }

  private sendStatus(response: http.ServerResponse, code: number, reason: string, message: string, details?: Record<string, unknown>): void {
    if (response.headersSent) {
      response.end();
      return;
    }
    this.sendJson(response, code, statusObject(code, reason, message, details));
  }

  private wantsTable(request: http.IncomingMessage): boolean {
    return (request.headers.accept ?? '').split(',').some((part) => part.includes('as=Table') && part.includes('g=meta.k8s.io'));
  }

  private parseSelectors(query: Record<string, string>, namespace: string | null): { labels: LabelRequirement[]; fields: FieldRequirement[] } {
    try {
      const labels = query.labelSelector ? parseLabelSelector(query.labelSelector) : [];
      const fields = query.fieldSelector ? parseFieldSelector(query.fieldSelector) : [];
      if (namespace !== null) fields.push({ field: 'metadata.namespace', equals: true, value: namespace });
      return { labels, fields };
    } catch (error) {
      if (error instanceof SelectorParseError) throw new HttpStatusError(400, 'BadRequest', error.message);
      throw error;
    }
  }

  private handlePods(request: http.IncomingMessage, response: http.ServerResponse, query: Record<string, string>, info: RequestInfo, body: string): void {
    const namespace = info.namespace;
    const table = this.wantsTable(request);
    switch (info.verb) {
      case 'list': {
        const { labels, fields } = this.parseSelectors(query, namespace);
        const items = [...this.pods.values()]
          .filter((pod) => labelsMatch(labels, pod.metadata.labels) && fieldsMatch(fields, pod))
          .sort((a, b) => `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`));
        if (table) return this.sendJson(response, 200, this.table(items, query.includeObject));
        return this.sendJson(response, 200, {
          kind: 'PodList',
          apiVersion: 'v1',
          metadata: { resourceVersion: String(this.resourceVersion) },
          items: items.map((pod) => {
            const { apiVersion: _apiVersion, kind: _kind, ...rest } = pod;
            return rest;
          }),
        });
      }
      case 'watch':
        return this.watch(response, query, namespace, table);
      case 'get': {
        const pod = this.requirePod(namespace, info.name);
        return this.sendJson(response, 200, table ? this.table([pod], query.includeObject) : pod);
      }
      case 'patch':
        return this.sendJson(response, 200, this.patchPod(request, namespace, info.name, body));
      case 'delete': {
        let options: { gracePeriodSeconds?: number; preconditions?: { uid?: string; resourceVersion?: string } } = {};
        if (body.trim().length > 0) options = this.parseJson(body) as typeof options;
        const gracePeriod = query.gracePeriodSeconds !== undefined ? Number(query.gracePeriodSeconds) : options.gracePeriodSeconds;
        const result = this.deletePodInternal(namespace ?? 'default', info.name ?? '', gracePeriod, options.preconditions);
        return this.sendJson(response, 200, result);
      }
      default:
        throw new HttpStatusError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`);
    }
  }

  private requirePod(namespace: string | null, name: string | null): Pod {
    const pod = this.pods.get(`${namespace}/${name}`);
    if (!pod || name === null) throw new HttpStatusError(404, 'NotFound', `pods "${name}" not found`, { name, kind: 'pods' });
    return pod;
  }

  private parseJson(body: string): unknown {
    try {
      return JSON.parse(body);
    } catch (error) {
      throw new HttpStatusError(400, 'BadRequest', `the body of the request was in an unknown format: ${(error as Error).message}`);
    }
  }

  private patchPod(request: http.IncomingMessage, namespace: string | null, name: string | null, body: string): Pod {
    const current = this.requirePod(namespace, name);
    const contentType = (request.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
    const patch = this.parseJson(body);
    let patched: unknown;
    try {
      switch (contentType) {
        case 'application/merge-patch+json':
          patched = applyMergePatch(current, patch);
          break;
        case 'application/strategic-merge-patch+json':
          patched = applyStrategicMergePatch(current, patch);
          break;
        case 'application/json-patch+json':
          patched = applyJsonPatch(current, patch);
          break;
        default:
          throw new HttpStatusError(
            415,
            'UnsupportedMediaType',
            `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json`,
          );
      }
    } catch (error) {
      if (error instanceof PatchError) throw new HttpStatusError(error.status, reasonsByCode[error.status] ?? 'Invalid', error.message);
      throw error;
    }
    const next = patched as Pod;
    const requestedVersion = next.metadata?.resourceVersion;
    if (requestedVersion !== undefined && requestedVersion !== current.metadata.resourceVersion) {
      throw new HttpStatusError(409, 'Conflict', `Operation cannot be fulfilled on pods "${name}": the object has been modified; please apply your changes to the latest version and try again`, { name, kind: 'pods' });
    }
    if (next.metadata?.name !== current.metadata.name || next.metadata.namespace !== current.metadata.namespace || next.metadata.uid !== current.metadata.uid) {
      throw new HttpStatusError(422, 'Invalid', `Pod "${name}" is invalid: metadata: Invalid value: the name, namespace and uid cannot change`);
    }
    for (const [key, value] of Object.entries(next.metadata.labels ?? {})) {
      if (typeof value !== 'string') throw new HttpStatusError(422, 'Invalid', `Pod "${name}" is invalid: metadata.labels: Invalid value: "${key}": a label value must be a string`);
    }
    next.metadata.resourceVersion = current.metadata.resourceVersion;
    if (JSON.stringify(next) === JSON.stringify(current)) return structuredClone(current);
    this.store('MODIFIED', current, next);
    return structuredClone(next);
  }

  private render(pod: Pod, table: boolean): unknown {
    return table ? this.table([pod], 'Metadata') : pod;
  }

  private table(pods: Pod[], includeObject: string | undefined): Record<string, unknown> {
    const now = Date.now();
    return {
      kind: 'Table',
      apiVersion: 'meta.k8s.io/v1',
      metadata: { resourceVersion: String(this.resourceVersion) },
      columnDefinitions: [
        { name: 'Name', type: 'string', format: 'name', description: 'Name must be unique within a namespace.', priority: 0 },
        { name: 'Ready', type: 'string', format: '', description: 'The aggregate readiness state of this pod for accepting traffic.', priority: 0 },
        { name: 'Status', type: 'string', format: '', description: 'The aggregate status of the containers in this pod.', priority: 0 },
        { name: 'Restarts', type: 'string', format: '', description: 'The number of times the containers in this pod have been restarted.', priority: 0 },
        { name: 'Age', type: 'string', format: '', description: 'CreationTimestamp is a timestamp representing the server time when this object was created.', priority: 0 },
        { name: 'IP', type: 'string', format: '', description: 'IP address allocated to the pod.', priority: 1 },
        { name: 'Node', type: 'string', format: '', description: 'Name of the Node this pod is scheduled on.', priority: 1 },
      ],
      rows: pods.map((pod) => {
        const statuses = pod.status.containerStatuses ?? [];
        const ready = statuses.filter((status) => status.ready).length;
        const restarts = statuses.reduce((sum, status) => sum + status.restartCount, 0);
        const state = pod.metadata.deletionTimestamp !== undefined ? 'Terminating' : pod.status.phase === 'Succeeded' ? 'Completed' : pod.status.phase === 'Failed' ? 'Error' : pod.status.phase;
        const cells = [pod.metadata.name, `${ready}/${pod.spec.containers.length}`, state, restarts, ageOf(pod.metadata.creationTimestamp, now), pod.status.podIP ?? '<none>', pod.spec.nodeName ?? '<none>'];
        const object =
          includeObject === 'None'
            ? undefined
            : includeObject === 'Object'
              ? pod
              : { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: pod.metadata };
        return object === undefined ? { cells } : { cells, object };
      }),
    };
  }

  private watch(response: http.ServerResponse, query: Record<string, string>, namespace: string | null, table: boolean): void {
    const { labels, fields } = this.parseSelectors(query, namespace);
    const requested = query.resourceVersion;
    let from: number | null = null;
    if (requested !== undefined && requested !== '' && requested !== '0') {
      from = Number(requested);
      if (!Number.isInteger(from) || from < 0) throw new HttpStatusError(400, 'BadRequest', `resourceVersion: Invalid value: "${requested}": must be a non-negative integer`);
    }
    response.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', 'Cache-Control': 'no-cache, private' });
    response.flushHeaders();
    const watcher: Watcher = { response, namespace, labels, fields, table, timers: [], closed: false };
    if (from !== null && from < this.oldestResumableVersion) {
      this.writeEvent(watcher, 'ERROR', this.expiredStatus(from));
      response.end();
      return;
    }
    if (from === null) {
      const current = [...this.pods.values()].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
      for (const pod of current) this.deliver(watcher, { resourceVersion: Number(pod.metadata.resourceVersion), type: 'ADDED', previous: null, object: pod });
    } else {
      for (const entry of this.history) if (entry.resourceVersion > from) this.deliver(watcher, entry);
    }
    this.watchers.add(watcher);
    response.on('close', () => this.closeWatcher(watcher));
    const timeoutSeconds = query.timeoutSeconds !== undefined ? Number(query.timeoutSeconds) : 0;
    if (timeoutSeconds > 0) {
      watcher.timers.push(
        setTimeout(() => {
          this.closeWatcher(watcher);
          response.end();
        }, timeoutSeconds * 1000),
      );
    }
    if (query.allowWatchBookmarks === 'true' && this.bookmarkIntervalMs > 0) {
      const tick = (): void => {
        this.writeBookmark(watcher);
        watcher.timers.push(setTimeout(tick, this.bookmarkIntervalMs));
      };
      watcher.timers.push(setTimeout(tick, this.bookmarkIntervalMs));
    }
  }

  private handleEvents(response: http.ServerResponse, info: RequestInfo, body: string): void {
    const namespace = info.namespace;
    if (info.verb === 'list') {
      const items = [...this.events.values()].filter((event) => namespace === null || event.metadata.namespace === namespace);
      const kind = info.group === '' ? { kind: 'EventList', apiVersion: 'v1' } : { kind: 'EventList', apiVersion: 'events.k8s.io/v1' };
      return this.sendJson(response, 200, { ...kind, metadata: { resourceVersion: String(this.resourceVersion) }, items });
    }
    if (info.verb !== 'create' || namespace === null) throw new HttpStatusError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
    const event = this.parseJson(body) as { metadata?: { name?: string; generateName?: string; namespace?: string } & Record<string, unknown> } & Record<string, unknown>;
    const metadata = event.metadata ?? {};
    if (metadata.namespace !== undefined && metadata.namespace !== namespace) {
      throw new HttpStatusError(400, 'BadRequest', `the namespace of the provided object does not match the namespace sent on the request`);
    }
    const name = metadata.name ?? (metadata.generateName ? `${metadata.generateName}${randomBytes(3).toString('hex').slice(0, 5)}` : undefined);
    if (!name) throw new HttpStatusError(422, 'Invalid', `Event "" is invalid: metadata.name: Required value: name or generateName is required`);
    const reason = event.reason;
    if (typeof reason !== 'string' || reason === '') throw new HttpStatusError(422, 'Invalid', `Event "${name}" is invalid: reason: Required value`);
    const key = `${info.group}/${namespace}/${name}`;
    if (this.events.has(key)) throw new HttpStatusError(409, 'AlreadyExists', `events "${name}" already exists`, { name, kind: 'events' });
    const stored: StoredEventObject = {
      ...event,
      apiVersion: info.group === '' ? 'v1' : 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { ...metadata, name, namespace, uid: randomUUID(), resourceVersion: this.nextResourceVersion(), creationTimestamp: new Date().toISOString() },
    };
    this.events.set(key, stored);
    this.sendJson(response, 201, stored);
  }
}
