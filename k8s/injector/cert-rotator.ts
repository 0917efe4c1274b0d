/**
 * Keeps the certificate Secret current, the webhook configuration's caBundle equal to
 * the Secret's bundle, and this replica serving what the Secret holds. Runs on every
 * replica; conflicts on the Secret decide which replica's certificate wins.
 */
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { Agent, fetch } from 'undici';
import { fromSecretData, nextCertSet, renewalDue, servingCert, toSecretData, type CertPolicy, type CertSet } from './certs.js';
import type { ServingCert } from './server.js';

export interface ApiTarget {
  server: string;
  caFile: string;
  tokenFile: string;
  requestTimeoutMs: number;
}

/** A few REST calls with a deadline each; the token file is re-read per call (bound tokens rotate). */
export class InjectorApi {
  private readonly agent: Agent;
  constructor(private readonly target: ApiTarget) {
    this.agent = new Agent({ connect: { ca: readFileSync(target.caFile, 'utf8') } });
  }

  async call(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<{ status: number; json: unknown }> {
    const token = readFileSync(this.target.tokenFile, 'utf8').trim();
    const res = await fetch(new URL(path, this.target.server), {
      method,
      dispatcher: this.agent,
      signal: AbortSignal.timeout(this.target.requestTimeoutMs),
      headers: { Authorization: `Bearer ${token}`, Accept: 'application/json', 'User-Agent': 'raft-elector-injector', ...(body === undefined ? {} : { 'Content-Type': contentType }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
    return { status: res.status, json };
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

export interface RotatorOptions {
  api: InjectorApi;
  namespace: string;
  secretName: string;
  /** MutatingWebhookConfiguration whose webhooks get the caBundle; empty: none is patched. */
  webhookConfig: string;
  policy: CertPolicy;
  checkMs: number;
  logger: Logger;
  onCert: (cert: ServingCert) => void;
  now?: () => Date;
}

interface SecretObject {
  metadata?: { resourceVersion?: string };
  data?: Record<string, string>;
}

export class CertRotator {
  private served: string | undefined;
  private bundlePatched: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly o: RotatorOptions) {}

  private get secretPath(): string {
    return `/api/v1/namespaces/${encodeURIComponent(this.o.namespace)}/secrets/${encodeURIComponent(this.o.secretName)}`;
  }

  /** One pass: read, renew when due (losing a race is fine), patch the caBundle, serve. */
  async check(): Promise<void> {
    const now = this.o.now?.() ?? new Date();
    const log = this.o.logger.child({ secret: `${this.o.namespace}/${this.o.secretName}` });
    const read = await this.o.api.call('GET', this.secretPath);
    if (read.status !== 200 && read.status !== 404) throw new Error(`GET secret ${this.o.namespace}/${this.o.secretName}: HTTP ${read.status}: ${JSON.stringify(read.json).slice(0, 300)}`);
    const secret = read.status === 200 ? (read.json as SecretObject) : undefined;
    let set = fromSecretData(secret?.data);
    if (!set || renewalDue(set, this.o.policy, now).leaf) {
      const next = await nextCertSet(set, this.o.policy, now);
      const body = { apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name: this.o.secretName, namespace: this.o.namespace, ...(secret ? { resourceVersion: secret.metadata?.resourceVersion } : {}) }, data: toSecretData(next) };
      const write = secret
        ? await this.o.api.call('PUT', this.secretPath, body)
        : await this.o.api.call('POST', `/api/v1/namespaces/${encodeURIComponent(this.o.namespace)}/secrets`, body);
      if (write.status === 409) {
        // Another replica wrote first: serve what it wrote.
        log.info('another replica renewed the certificate first; using its');
        return this.check();
      }
      if (write.status < 200 || write.status > 299) throw new Error(`write secret ${this.o.namespace}/${this.o.secretName}: HTTP ${write.status}: ${JSON.stringify(write.json).slice(0, 300)}`);
      log.info({ newCa: next.caCert !== set?.caCert, notAfter: servingCert(next).notAfter.toISOString() }, 'serving certificate renewed');
      set = next;
    }
    // The bundle first: the API server must trust the CA before a replica serves its certificates.
    await this.patchBundle(set);
    if (set.cert !== this.served) {
      this.o.onCert(servingCert(set));
      this.served = set.cert;
    }
  }

  private async patchBundle(set: CertSet): Promise<void> {
    if (!this.o.webhookConfig || this.bundlePatched === set.caBundle) return;
    const path = `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${encodeURIComponent(this.o.webhookConfig)}`;
    const got = await this.o.api.call('GET', path);
    if (got.status !== 200) throw new Error(`GET mutatingwebhookconfiguration ${this.o.webhookConfig}: HTTP ${got.status}`);
    const cfg = got.json as { webhooks?: { clientConfig?: { caBundle?: string } }[] };
    const want = Buffer.from(set.caBundle).toString('base64');
    const ops = (cfg.webhooks ?? []).flatMap((w, i) => (w.clientConfig?.caBundle === want ? [] : [{ op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value: want }]));
    if (ops.length > 0) {
      const res = await this.o.api.call('PATCH', path, ops, 'application/json-patch+json');
      if (res.status !== 200) throw new Error(`PATCH mutatingwebhookconfiguration ${this.o.webhookConfig}: HTTP ${res.status}: ${JSON.stringify(res.json).slice(0, 300)}`);
      this.o.logger.info({ webhookConfig: this.o.webhookConfig, webhooks: ops.length }, 'caBundle patched into the webhook configuration');
    }
    this.bundlePatched = set.caBundle;
  }

  get ready(): boolean {
    return this.served !== undefined;
  }

  start(): void {
    const loop = (): void => {
      this.running = this.check()
        .catch((err: unknown) => this.o.logger.error({ err: (err as Error).message }, 'certificate check failed; retrying'))
        .finally(() => {
          this.timer = setTimeout(loop, this.o.checkMs);
        });
    };
    this.timer = setTimeout(loop, this.o.checkMs);
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    await this.running;
    clearTimeout(this.timer);
  }
}
