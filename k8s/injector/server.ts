/**
 * The webhook's HTTPS server: POST /mutate takes an AdmissionReview v1 and answers with
 * the same review's response (a JSONPatch, a skip or a denial). Bounded body, request
 * and header timeouts, one JSON log line per pod that asked for the sidecar, and
 * Prometheus metrics on a separate plain-HTTP port (/metrics, /healthz).
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { decide, type PodLike, type SidecarTemplate } from './mutate.js';

export interface ServingCert {
  cert: string;
  key: string;
  /** Expiry of the leaf certificate. */
  notAfter: Date;
}

export class InjectorMetrics {
  readonly registry = new Registry();
  readonly reviews = new Counter({ name: 'raft_elector_injector_reviews_total', help: 'AdmissionReviews answered, by result', labelNames: ['result'] as const, registers: [this.registry] });
  readonly seconds = new Histogram({ name: 'raft_elector_injector_review_seconds', help: 'Time to answer one AdmissionReview', buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2], registers: [this.registry] });
  readonly certExpiry = new Gauge({ name: 'raft_elector_injector_cert_expiry_timestamp_seconds', help: 'Expiry of the serving certificate in use (unix seconds)', registers: [this.registry] });
  readonly certRotations = new Counter({ name: 'raft_elector_injector_cert_loads_total', help: 'Serving certificates loaded (start and every rotation)', registers: [this.registry] });
}

export interface InjectorServerOptions {
  template: () => SidecarTemplate;
  cert: ServingCert;
  logger: Logger;
  metrics: InjectorMetrics;
  /** Largest AdmissionReview accepted; a pod is at most 1.5 MiB in etcd, a review carries it up to twice. */
  maxBodyBytes: number;
  requestTimeoutMs: number;
}

interface AdmissionReview {
  apiVersion?: string;
  kind?: string;
  request?: { uid?: string; kind?: { kind?: string }; namespace?: string; operation?: string; object?: PodLike; dryRun?: boolean };
}

class HttpFailure extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      reject(new HttpFailure(413, `AdmissionReview of ${declared} bytes exceeds the limit of ${limit}`));
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new HttpFailure(413, `AdmissionReview exceeds the limit of ${limit} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** The AdmissionReview response for one request; exported for unit tests. */
export function review(body: unknown, template: SidecarTemplate, logger: Logger, metrics: InjectorMetrics): AdmissionReview & { response: Record<string, unknown> } {
  const r = body as AdmissionReview;
  if (typeof r !== 'object' || r === null || r.apiVersion !== 'admission.k8s.io/v1' || r.kind !== 'AdmissionReview' || typeof r.request?.uid !== 'string') {
    throw new HttpFailure(400, 'expected an admission.k8s.io/v1 AdmissionReview with request.uid');
  }
  const req = r.request;
  const uid = req.uid!;
  const base = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' };
  const pod = req.object;
  if (req.kind?.kind !== 'Pod' || req.operation !== 'CREATE' || !pod) {
    metrics.reviews.inc({ result: 'skipped' });
    return { ...base, response: { uid, allowed: true } };
  }
  const name = pod.metadata?.name || `${pod.metadata?.generateName ?? ''}<generated>`;
  const where = { pod: name, namespace: req.namespace ?? pod.metadata?.namespace, dryRun: req.dryRun === true };
  const decision = decide(pod, template);
  if (decision.kind === 'skip') {
    metrics.reviews.inc({ result: decision.reason === 'already-injected' ? 'already_injected' : 'skipped' });
    if (decision.reason === 'already-injected') logger.info(where, 'pod already carries the sidecar; left as it is');
    return { ...base, response: { uid, allowed: true } };
  }
  if (decision.kind === 'deny') {
    metrics.reviews.inc({ result: 'denied' });
    logger.warn({ ...where, reason: decision.reason }, 'pod refused: it asks for the sidecar and cannot get it');
    return { ...base, response: { uid, allowed: false, status: { code: 400, reason: 'BadRequest', message: decision.reason } } };
  }
  metrics.reviews.inc({ result: 'injected' });
  const warned = decision.warnings.length > 0 ? { warnings: decision.warnings } : {};
  logger.info({ ...where, group: decision.group, template: template.hash, ...warned }, 'sidecar injected');
  return {
    ...base,
    // warnings: kubectl shows them for a pod created by hand; the log line above names them for every pod.
    response: { uid, allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(decision.patch)).toString('base64'), ...warned },
  };
}

export class InjectorServer {
  private readonly server: https.Server;
  private cert: ServingCert;

  constructor(private readonly options: InjectorServerOptions) {
    this.cert = options.cert;
    this.server = https.createServer({ cert: options.cert.cert, key: options.cert.key, minVersion: 'TLSv1.2' }, (req, res) => void this.handle(req, res));
    this.server.requestTimeout = options.requestTimeoutMs;
    this.server.headersTimeout = Math.min(options.requestTimeoutMs, 5_000);
    this.server.keepAliveTimeout = 30_000;
    this.noteCert();
  }

  /** Serves a new certificate to every new TLS connection; open connections keep theirs. */
  setCert(cert: ServingCert): void {
    this.server.setSecureContext({ cert: cert.cert, key: cert.key });
    this.cert = cert;
    this.noteCert();
    this.options.logger.info({ notAfter: cert.notAfter.toISOString() }, 'serving certificate loaded');
  }

  private noteCert(): void {
    this.options.metrics.certExpiry.set(Math.floor(this.cert.notAfter.getTime() / 1000));
    this.options.metrics.certRotations.inc();
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const end = this.options.metrics.seconds.startTimer();
    try {
      if (req.url?.split('?')[0] !== '/mutate' || req.method !== 'POST') throw new HttpFailure(404, 'POST /mutate only');
      const raw = await readBody(req, this.options.maxBodyBytes);
      let body: unknown;
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        throw new HttpFailure(400, 'the body is not JSON');
      }
      const answer = review(body, this.options.template(), this.options.logger, this.options.metrics);
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(answer));
    } catch (err) {
      const status = err instanceof HttpFailure ? err.status : 500;
      this.options.metrics.reviews.inc({ result: 'error' });
      this.options.logger.warn({ status, err: (err as Error).message, remote: req.socket.remoteAddress }, 'webhook request refused');
      if (!res.headersSent) res.writeHead(status, { 'Content-Type': 'text/plain' }).end(`${(err as Error).message}\n`);
    } finally {
      end();
    }
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve(this.server.address() as AddressInfo));
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

/** /metrics and /healthz on plain HTTP, for Prometheus and the kubelet's probes. */
export function createMetricsServer(metrics: InjectorMetrics, ready: () => boolean): http.Server {
  return http.createServer((req, res) => {
    const path = req.url?.split('?')[0];
    if (path === '/metrics') {
      void metrics.registry.metrics().then((text) => res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(text));
    } else if (path === '/healthz' || path === '/readyz') {
      const ok = path === '/healthz' || ready();
      res.writeHead(ok ? 200 : 503, { 'Content-Type': 'text/plain' }).end(ok ? 'ok\n' : 'no serving certificate yet\n');
    } else {
      res.writeHead(404).end();
    }
  });
}
