/**
 * A minimal REST client for the e2e harness: admin (client certificate) or a
 * ServiceAccount token, with a deadline on every request. The harness's own calls
 * (the fake kubelet, the assertions) stay independent of the client library the
 * sidecar uses.
 */
import https from 'node:https';

export interface RestIdentity {
  server: string;
  ca: string;
  cert?: string;
  key?: string;
  token?: string;
}

export class RestError extends Error {
  constructor(readonly status: number, readonly body: string, what: string) {
    super(`${what}: HTTP ${status}: ${body.slice(0, 500)}`);
  }
}

export class KubeRest {
  private readonly agent: https.Agent;

  constructor(private readonly identity: RestIdentity) {
    this.agent = new https.Agent({ ca: identity.ca, cert: identity.cert, key: identity.key, keepAlive: true, maxSockets: 8 });
  }

  /** Sends one request; resolves with status and parsed body (never throws on HTTP status). */
  raw(method: string, path: string, body?: unknown, contentType = 'application/json', timeoutMs = 10_000): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const url = new URL(path, this.identity.server);
      const headers: Record<string, string> = { Accept: 'application/json', 'User-Agent': 'raft-elector-e2e' };
      if (this.identity.token) headers.Authorization = `Bearer ${this.identity.token}`;
      const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
      if (payload !== undefined) {
        headers['Content-Type'] = contentType;
        // Node sends a DELETE body neither chunked nor sized unless told: the server would read it as the next request.
        headers['Content-Length'] = String(Buffer.byteLength(payload));
      }
      const req = https.request(url, { method, headers, agent: this.agent, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out after ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** Like raw, but throws a RestError on any status outside 2xx and parses JSON. */
  async json<T = unknown>(method: string, path: string, body?: unknown, contentType?: string): Promise<T> {
    const res = await this.raw(method, path, body, contentType);
    if (res.status < 200 || res.status > 299) throw new RestError(res.status, res.body, `${method} ${path}`);
    return JSON.parse(res.body) as T;
  }

  mergePatch<T = unknown>(path: string, patch: unknown): Promise<T> {
    return this.json<T>('PATCH', path, patch, 'application/merge-patch+json');
  }

  close(): void {
    this.agent.destroy();
  }
}

export interface Pod {
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    resourceVersion: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    deletionTimestamp?: string;
    deletionGracePeriodSeconds?: number;
    ownerReferences?: { kind: string; name: string }[];
  };
  spec: { nodeName?: string; serviceAccountName?: string; containers: { name: string; image: string }[]; initContainers?: { name: string; image: string }[] };
  status?: { phase?: string; podIP?: string };
}

export interface KubeEvent {
  reason: string;
  message: string;
  involvedObject: { kind: string; name: string; uid?: string };
  source?: { component?: string };
  reportingComponent?: string;
}
