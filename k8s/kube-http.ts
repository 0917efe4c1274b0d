/**
 * The HTTP layer of the in-cluster Kubernetes client, on node:https (taken through require,
 * cluster/node-http.ts): bearer token, cluster CA, User-Agent, a timeout and a size bound on
 * every request, and one typed error for an answer that is not 2xx.
 *
 * Why not @kubernetes/client-node at run time: its KubeConfig statically imports the whole
 * generated client (2,742 model classes), its auth providers and undici, about 60 MB of RSS in
 * every pod for five REST calls and one watch (docs/benchmarks.md). Its types are still used.
 */
import { readFileSync } from 'node:fs';
import type * as Http from 'node:http';
import { http, https } from '../cluster/node-http.js';
import { KubeRequestTimeoutError } from './api-errors.js';

/** client-go re-reads a projected ServiceAccount token this often; so did client-node's FileAuth. */
export const TokenRereadMs = 60_000;

/** An answer that is not 2xx: the shape api-errors.ts classifies (client-node's ApiException had `code` and `body`). */
export class KubeHttpError extends Error {
  /** The HTTP status. */
  readonly code: number;
  /** The same, under the name client-node's Watch used for it. */
  readonly statusCode: number;
  /** The response body as text: usually a Status object with the API server's message. */
  readonly body: string;

  constructor(status: number, body: string, method: string, path: string) {
    super(`HTTP ${status} from ${method} ${path}${statusMessage(body) ? `: ${statusMessage(body)}` : ''}`);
    this.name = 'KubeHttpError';
    this.code = status;
    this.statusCode = status;
    this.body = body;
  }
}

function statusMessage(body: string): string | null {
  try {
    const parsed = JSON.parse(body) as { message?: unknown };
    return typeof parsed.message === 'string' ? parsed.message : null;
  } catch {
    return null;
  }
}

export class ResponseTooLargeError extends Error {
  readonly code = 'KUBE_RESPONSE_TOO_LARGE';
  constructor(maxBytes: number) {
    super(`response larger than ${maxBytes} bytes`);
    this.name = 'ResponseTooLargeError';
  }
}

/** Query parameters; undefined ones are left out. */
export type Query = Record<string, string | number | boolean | undefined>;

export interface KubeHttpOptions {
  /** `https://host:port` (or `http://` for a test server). */
  server: string;
  tokenFile: string;
  /** null with an http:// server. */
  caFile: string | null;
  userAgent: string;
  requestTimeoutMs: number;
  maxResponseBytes: number;
  /** Injected clock for the token re-read (tests). */
  nowMs?: () => number;
}

/** TCP keepalive probes a connection idle this long: how a watch on a dead peer ends. */
const KeepAliveProbeMs = 30_000;

/** Socket errors that mean "the server closed a kept-alive connection we just reused". */
const staleSocketCodes = new Set(['ECONNRESET', 'EPIPE']);

export class KubeHttp {
  readonly server: string;
  readonly requestTimeoutMs: number;
  readonly maxResponseBytes: number;
  private readonly agent: Http.Agent;
  private readonly transport: typeof http | typeof https;
  private readonly nowMs: () => number;
  private token: string | null = null;
  private tokenReadAtMs = 0;

  constructor(private readonly options: KubeHttpOptions) {
    this.server = options.server.replace(/\/+$/, '');
    this.requestTimeoutMs = options.requestTimeoutMs;
    this.maxResponseBytes = options.maxResponseBytes;
    this.nowMs = options.nowMs ?? Date.now;
    const secure = this.server.startsWith('https:');
    this.transport = secure ? https : http;
    // Kept-alive connections, as client-go's.
    const agentOptions = { keepAlive: true, keepAliveMsecs: KeepAliveProbeMs, maxSockets: 8, maxFreeSockets: 2 };
    // The CA is read once, as client-go's rest.InClusterConfig does.
    this.agent = secure ? new https.Agent({ ...agentOptions, ...(options.caFile ? { ca: readFileSync(options.caFile) } : {}) }) : new http.Agent(agentOptions);
  }

  /** The bearer token, re-read from its file every minute (bound tokens rotate); a failed or empty re-read keeps the last one. */
  private bearerToken(): string {
    const now = this.nowMs();
    if (this.token === null || now - this.tokenReadAtMs > TokenRereadMs) {
      try {
        const read = readFileSync(this.options.tokenFile, 'utf8').trim();
        if (read === '') throw new Error(`the token file ${this.options.tokenFile} is empty`);
        this.token = read;
        this.tokenReadAtMs = now;
      } catch (err) {
        if (this.token === null) throw err;
      }
    }
    return this.token;
  }

  url(path: string, query: Query = {}): URL {
    const url = new URL(this.server + path);
    for (const [key, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(key, String(value));
    return url;
  }

  /** A request with our headers on the shared agent; the caller ends it and reads the answer. */
  open(method: string, url: URL, contentType?: string): Http.ClientRequest {
    const headers: Record<string, string> = {
      Accept: 'application/json',
      Authorization: `Bearer ${this.bearerToken()}`,
      'User-Agent': this.options.userAgent,
    };
    if (contentType !== undefined) headers['Content-Type'] = contentType;
    const request = this.transport.request(url, { method, headers, agent: this.agent });
    // The agent sets it only on a socket returned to its pool; a watch holds its socket from the start.
    request.on('socket', (socket) => socket.setKeepAlive(true, KeepAliveProbeMs));
    return request;
  }

  /** A JSON request: resolves with the parsed 2xx body, rejects with KubeHttpError, a socket error or KubeRequestTimeoutError. */
  async request<T>(method: 'GET' | 'POST' | 'PUT' | 'PATCH', path: string, options: { query?: Query; body?: unknown; contentType?: string } = {}): Promise<T> {
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const url = this.url(path, options.query);
    // POST creates: never sent twice. The others are safe to repeat once on a stale kept-alive socket.
    const text = await this.exchange(method, url, body, body === undefined ? undefined : (options.contentType ?? 'application/json'), method !== 'POST');
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }

  private exchange(method: string, url: URL, body: string | undefined, contentType: string | undefined, retryStale: boolean): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      let request: Http.ClientRequest;
      try {
        request = this.open(method, url, contentType);
      } catch (err) {
        reject(err);
        return;
      }
      let settled = false;
      let answered = false;
      const settle = (outcome: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        outcome();
      };
      const fail = (err: unknown): void => {
        settle(() => reject(err));
        request.destroy();
      };
      const timer = setTimeout(() => fail(new KubeRequestTimeoutError(this.requestTimeoutMs)), this.requestTimeoutMs);
      request.on('error', (err: NodeJS.ErrnoException) => {
        if (retryStale && request.reusedSocket && !answered && staleSocketCodes.has(err.code ?? '')) {
          settle(() => resolve(this.exchange(method, url, body, contentType, false)));
          return;
        }
        fail(err);
      });
      request.on('response', (response) => {
        answered = true;
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > this.maxResponseBytes) fail(new ResponseTooLargeError(this.maxResponseBytes));
          else chunks.push(chunk);
        });
        response.on('error', fail);
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = response.statusCode ?? 0;
          settle(() => (status >= 200 && status < 300 ? resolve(text) : reject(new KubeHttpError(status, text, method, url.pathname))));
        });
        response.on('close', () => {
          if (!response.complete) fail(Object.assign(new Error('the connection closed before the response ended'), { code: 'ECONNRESET' }));
        });
      });
      if (body !== undefined) request.setHeader('Content-Length', Buffer.byteLength(body));
      request.end(body);
    });
  }

  /** Closes the kept-alive connections (tests, shutdown). */
  close(): void {
    this.agent.destroy();
  }
}
