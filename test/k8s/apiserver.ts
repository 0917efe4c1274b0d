/**
 * A test Kubernetes API server that answers like the real one for everything
 * raft-elector and kubectl use: discovery, pods get/list/watch/patch/delete
 * (graceful), events create/list, Status errors, the Table format of
 * `kubectl get`, bearer-token auth over HTTP or HTTPS, and switches for RBAC
 * denial, 5xx, hung requests, dropped connections and expired watch history.
 *
 * This file is the HTTP front (token check, injected faults, RBAC denial,
 * routing) and the helpers tests drive it with. The parts, one file each:
 * pod-store.ts (pods, the one resourceVersion counter, history, patch, graceful
 * delete), pod-watch.ts (watch streams, 410, bookmarks), event-store.ts,
 * pod-table.ts (the Table format), discovery.ts, request-info.ts (verb, object,
 * selectors of a request), request-rules.ts (forbid/fail/hang/drop switches),
 * api-types.ts and api-status.ts (the objects and Status errors).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HttpStatusError, parseJsonBody, statusObject } from './api-status.js';
import type { ContainerState, CreatePodInput, Pod, RequestInfo, RequestLogEntry, RuleMatch, StoredEventObject } from './api-types.js';
import { makeTestCertificates, type TestCertificates } from './certs.js';
import { discoveryDocument, versionDocument } from './discovery.js';
import { EventStore } from './event-store.js';
import { PodStore, ResourceVersionCounter, type DeletePreconditions } from './pod-store.js';
import { podTable } from './pod-table.js';
import { PodWatches } from './pod-watch.js';
import { parseSelectors, requestInfo, wantsTable } from './request-info.js';
import { matches, RequestRules } from './request-rules.js';

export type { ContainerState, ContainerStatus, CreatePodInput, Pod, RequestLogEntry, RuleMatch, StoredEventObject, Verb } from './api-types.js';
export { statusObject } from './api-status.js';

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

export class TestApiServer {
  readonly token: string;
  readonly serviceAccount: string;
  readonly tls: boolean;
  readonly dir: string;
  /** Every request, in arrival order. */
  readonly requests: RequestLogEntry[] = [];
  readonly certificates: TestCertificates | null;

  private readonly server: http.Server;
  private readonly sockets = new Set<Socket>();
  private readonly versions = new ResourceVersionCounter();
  private readonly pods: PodStore;
  private readonly watches: PodWatches;
  private readonly events: EventStore;
  private readonly rules: RequestRules;
  private readonly hungResponses = new Set<http.ServerResponse>();
  private readonly maxBodyBytes: number;
  private readonly gitVersion: string;
  private port = 0;

  private constructor(options: TestApiServerOptions) {
    this.tls = options.tls ?? true;
    this.token = options.token ?? randomBytes(24).toString('base64url');
    this.serviceAccount = options.serviceAccount ?? 'default:raft-elector';
    this.pods = new PodStore(this.versions, { historyLimit: options.historyLimit ?? 1000, autoFinalize: options.autoFinalize ?? true }, (entry) => this.watches.deliverToAll(entry));
    this.watches = new PodWatches(this.pods, this.versions, options.bookmarkIntervalMs ?? 0);
    this.events = new EventStore(this.versions);
    this.rules = new RequestRules(this.serviceAccount);
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
    return this.versions.current;
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
    return this.pods.create(input);
  }

  getPod(name: string, namespace = 'default'): Pod | undefined {
    return this.pods.get(name, namespace);
  }

  listPods(namespace = 'default'): Pod[] {
    return this.pods.list(namespace);
  }

  /** Changes a pod as the kubelet or a controller would: MODIFIED with a new resourceVersion. */
  updatePod(name: string, mutate: (pod: Pod) => void, namespace = 'default'): Pod {
    return this.pods.update(name, mutate, namespace);
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
    return structuredClone(this.pods.delete(options.namespace ?? 'default', name, options.gracePeriodSeconds, undefined));
  }

  /** Ends a graceful deletion now (what the kubelet does once the containers stopped): DELETED. */
  finalizeDeletion(name: string, namespace = 'default'): void {
    this.pods.finalize(name, namespace);
  }

  listEvents(namespace = 'default'): StoredEventObject[] {
    return this.events.list(namespace);
  }

  // ---- test helpers: faults -------------------------------------------------

  /** Answers 403 Forbidden, with the real message, for every request matching the rule until `allow()`. */
  forbid(rule: RuleMatch): void {
    this.rules.forbid(rule);
  }

  allow(): void {
    this.rules.allow();
  }

  /** The next `count` matching requests get `status` (500, 503, 504, 429, 401...) as a Status object. */
  failNext(rule: RuleMatch & { status: number; count?: number; message?: string }): void {
    this.rules.failNext(rule);
  }

  /** The next `count` matching requests never get an answer (a client must time out). */
  hangNext(rule: RuleMatch & { count?: number }): void {
    this.rules.hangNext(rule);
  }

  /** The next `count` matching requests have their connection destroyed without an answer. */
  dropNext(rule: RuleMatch & { count?: number }): void {
    this.rules.dropNext(rule);
  }

  clearFaults(): void {
    this.rules.clear();
  }

  /** Destroys the connections of all open watches (no final chunk, as when a node or load balancer fails). */
  dropWatchConnections(): number {
    return this.watches.dropConnections();
  }

  /**
   * Forgets the retained history (as etcd compaction does): every resourceVersion
   * before now is too old to resume from, and each open watch gets an ERROR 410 and ends.
   */
  expireHistory(): void {
    this.pods.forgetHistory();
    this.watches.expireAll();
  }

  /** Sends a BOOKMARK to every open watch that allowed them. */
  sendBookmarks(): void {
    this.watches.sendBookmarks();
  }

  openWatchCount(): number {
    return this.watches.openCount;
  }

  requestsFor(rule: RuleMatch): RequestLogEntry[] {
    return this.requests.filter((entry) => matches(rule, { ...entry, version: '', subresource: null }));
  }

  async close(): Promise<void> {
    this.pods.close();
    this.watches.closeAll();
    for (const socket of this.sockets) socket.destroy();
    this.hungResponses.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.dir, { recursive: true, force: true });
  }

  // ---- HTTP ---------------------------------------------------------------

  private handle(request: http.IncomingMessage, response: http.ServerResponse): void {
    const url = new URL(request.url ?? '/', 'http://apiserver');
    const query = Object.fromEntries(url.searchParams.entries());
    const info = requestInfo(request.method ?? 'GET', url.pathname, query);
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

  private route(request: http.IncomingMessage, response: http.ServerResponse, url: URL, query: Record<string, string>, info: RequestInfo, body: string): void {
    const path = url.pathname.replace(/\/+$/, '') || '/';
    if (path === '/version') return this.sendJson(response, 200, versionDocument(this.gitVersion));
    if (path === '/healthz' || path === '/livez' || path === '/readyz') {
      response.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      response.end('ok');
      return;
    }

    const authorization = request.headers.authorization ?? '';
    if (authorization !== `Bearer ${this.token}`) throw new HttpStatusError(401, 'Unauthorized', 'Unauthorized');

    const fault = this.rules.takeFault(info);
    if (fault?.kind === 'drop') {
      request.socket.destroy();
      return;
    }
    if (fault?.kind === 'hang') {
      this.hungResponses.add(response);
      return;
    }
    if (fault?.kind === 'fail') throw this.rules.failureOf(fault);
    const forbidden = this.rules.forbiddenError(info);
    if (forbidden) throw forbidden;

    const discovery = discoveryDocument(path, this.port);
    if (discovery) return this.sendJson(response, 200, discovery);

    const coreV1 = info.group === '' && info.version === 'v1' && url.pathname.startsWith('/api/');
    const eventsV1 = info.group === 'events.k8s.io' && info.version === 'v1';
    if (coreV1 && info.resource === 'pods' && info.subresource === null) return this.handlePods(request, response, query, info, body);
    if ((coreV1 || eventsV1) && info.resource === 'events' && info.subresource === null) return this.handleEvents(response, info, body);
    throw new HttpStatusError(404, 'NotFound', 'the server could not find the requested resource');
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

  private handlePods(request: http.IncomingMessage, response: http.ServerResponse, query: Record<string, string>, info: RequestInfo, body: string): void {
    const namespace = info.namespace;
    const table = wantsTable(request.headers.accept);
    switch (info.verb) {
      case 'list': {
        const { labels, fields } = parseSelectors(query, namespace);
        const items = this.pods.select(labels, fields);
        if (table) return this.sendJson(response, 200, podTable(items, query.includeObject, this.versions.current));
        return this.sendJson(response, 200, {
          kind: 'PodList',
          apiVersion: 'v1',
          metadata: { resourceVersion: String(this.versions.current) },
          items: items.map((pod) => {
            const { apiVersion: _apiVersion, kind: _kind, ...rest } = pod;
            return rest;
          }),
        });
      }
      case 'watch':
        return this.watches.open(response, query, namespace, table);
      case 'get': {
        const pod = this.pods.require(namespace, info.name);
        return this.sendJson(response, 200, table ? podTable([pod], query.includeObject, this.versions.current) : pod);
      }
      case 'patch': {
        const contentType = (request.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
        return this.sendJson(response, 200, this.pods.patch(namespace, info.name, contentType, body));
      }
      case 'delete': {
        let options: { gracePeriodSeconds?: number; preconditions?: DeletePreconditions } = {};
        if (body.trim().length > 0) options = parseJsonBody(body) as typeof options;
        const gracePeriod = query.gracePeriodSeconds !== undefined ? Number(query.gracePeriodSeconds) : options.gracePeriodSeconds;
        const result = this.pods.delete(namespace ?? 'default', info.name ?? '', gracePeriod, options.preconditions);
        return this.sendJson(response, 200, result);
      }
      default:
        throw new HttpStatusError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`);
    }
  }

  private handleEvents(response: http.ServerResponse, info: RequestInfo, body: string): void {
    const namespace = info.namespace;
    if (info.verb === 'list') return this.sendJson(response, 200, this.events.listDocument(info.group, namespace));
    if (info.verb !== 'create' || namespace === null) throw new HttpStatusError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
    this.sendJson(response, 201, this.events.create(info.group, namespace, body));
  }
}
