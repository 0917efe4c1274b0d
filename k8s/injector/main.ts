/**
 * `raft-elector inject`: the mutating admission webhook. Flags are validated once, up
 * front; a bad one is one line naming it, exit 2.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { SERVICE_ACCOUNT_DIR } from '../kube-client.js';
import { notAfter } from './certs.js';
import { CertRotator, InjectorApi } from './cert-rotator.js';
import { createMetricsServer, InjectorMetrics, InjectorServer, type ServingCert } from './server.js';
import { TemplateSource } from './template.js';

export class InjectConfigError extends Error {
  readonly code = 'INJECT_CONFIG_INVALID';
}

export const InjectHelp = `raft-elector inject: the mutating admission webhook that adds the raft-elector sidecar
to pods annotated raft-elector.io/inject: "true" (see docs/injector.md).

  --listen=HOST:PORT              webhook HTTPS address (default 0.0.0.0:8443)
  --metrics=HOST:PORT             plain-HTTP /metrics, /healthz, /readyz (default 0.0.0.0:8080)
  --template-file=FILE            the sidecar template the chart renders (default /etc/raft-elector-injector/template/sidecar.json)
  --template-poll-ms=N            how often the template file is re-read (default 5000)
  --tls-cert-file, --tls-key-file serve this certificate (cert-manager's Secret), re-read every --cert-check-ms
  --cert-secret=NAME              otherwise: generate and rotate a CA and serving certificate in this Secret
  --webhook-config=NAME           MutatingWebhookConfiguration whose caBundle the injector keeps current
  --cert-dns=A,B                  DNS names of the serving certificate (the webhook Service's names)
  --cert-ip=A,B                   IP addresses of the serving certificate
  --cert-validity-seconds=N       validity of a generated serving certificate (default 7776000, 90 days; the CA lives 10 times that)
  --cert-check-ms=N               how often the certificate is checked and reloaded (default 60000)
  --namespace=NS                  namespace of the Secret (default $POD_NAMESPACE)
  --max-body-bytes=N              largest AdmissionReview accepted (default 4194304)
  --request-timeout-ms=N          deadline of one webhook request and of each API call (default 10000)
  --kube-token-file, --kube-ca-file   API credentials (default the pod's ServiceAccount)
  --log-level=LEVEL               trace, debug, info, warn, error (default info)`;

interface HostPort {
  host: string;
  port: number;
}

export interface InjectConfig {
  listen: HostPort;
  metrics: HostPort;
  templateFile: string;
  templatePollMs: number;
  tlsFiles: { cert: string; key: string } | undefined;
  certSecret: string | undefined;
  webhookConfig: string;
  certDns: string[];
  certIp: string[];
  certValidityMs: number;
  certCheckMs: number;
  namespace: string;
  maxBodyBytes: number;
  requestTimeoutMs: number;
  kubeTokenFile: string;
  kubeCaFile: string;
  logLevel: string;
}

function hostPort(flag: string, value: string): HostPort {
  const m = /^(.*):(\d+)$/.exec(value);
  const port = Number(m?.[2]);
  if (!m || port < 0 || port > 65535) throw new InjectConfigError(`--${flag} must be HOST:PORT; got ${JSON.stringify(value)}`);
  return { host: m[1]!.replace(/^\[(.*)\]$/, '$1'), port };
}

function positive(flag: string, value: string, min: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min) throw new InjectConfigError(`--${flag} must be a whole number of at least ${min}; got ${JSON.stringify(value)}`);
  return n;
}

const list = (v: string | undefined): string[] => (v ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');

export function parseInjectConfig(argv: string[], env: Record<string, string | undefined>): InjectConfig | 'help' {
  const s = { type: 'string' } as const;
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        help: { type: 'boolean' },
        listen: s, metrics: s, 'template-file': s, 'template-poll-ms': s, 'tls-cert-file': s, 'tls-key-file': s,
        'cert-secret': s, 'webhook-config': s, 'cert-dns': s, 'cert-ip': s, 'cert-validity-seconds': s, 'cert-check-ms': s,
        namespace: s, 'max-body-bytes': s, 'request-timeout-ms': s, 'kube-token-file': s, 'kube-ca-file': s, 'log-level': s,
      },
    }));
  } catch (err) {
    throw new InjectConfigError(`inject: ${(err as Error).message}`);
  }
  if (values.help) return 'help';
  const str = (k: string): string | undefined => values[k] as string | undefined;
  const certFile = str('tls-cert-file');
  const keyFile = str('tls-key-file');
  if ((certFile === undefined) !== (keyFile === undefined)) throw new InjectConfigError('--tls-cert-file and --tls-key-file go together');
  const certSecret = str('cert-secret');
  if (certFile && certSecret) throw new InjectConfigError('--tls-cert-file and --cert-secret exclude each other: serve a given certificate or generate one');
  if (!certFile && !certSecret) throw new InjectConfigError('inject needs --cert-secret (generate certificates) or --tls-cert-file and --tls-key-file (cert-manager)');
  const certDns = list(str('cert-dns'));
  const certIp = list(str('cert-ip'));
  if (certSecret && certDns.length + certIp.length === 0) throw new InjectConfigError('--cert-secret needs --cert-dns or --cert-ip: the names the API server calls the webhook by');
  const namespace = str('namespace') ?? env.POD_NAMESPACE ?? '';
  if (certSecret && !namespace) throw new InjectConfigError('--cert-secret needs --namespace (or POD_NAMESPACE)');
  const level = str('log-level') ?? 'info';
  if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal'].includes(level)) throw new InjectConfigError(`--log-level must be trace, debug, info, warn, error or fatal; got ${JSON.stringify(level)}`);
  return {
    listen: hostPort('listen', str('listen') ?? '0.0.0.0:8443'),
    metrics: hostPort('metrics', str('metrics') ?? '0.0.0.0:8080'),
    templateFile: str('template-file') ?? '/etc/raft-elector-injector/template/sidecar.json',
    templatePollMs: positive('template-poll-ms', str('template-poll-ms') ?? '5000', 100),
    tlsFiles: certFile && keyFile ? { cert: certFile, key: keyFile } : undefined,
    certSecret,
    webhookConfig: str('webhook-config') ?? '',
    certDns,
    certIp,
    certValidityMs: positive('cert-validity-seconds', str('cert-validity-seconds') ?? '7776000', 10) * 1000,
    certCheckMs: positive('cert-check-ms', str('cert-check-ms') ?? '60000', 100),
    namespace,
    maxBodyBytes: positive('max-body-bytes', str('max-body-bytes') ?? String(4 * 1024 * 1024), 1024),
    requestTimeoutMs: positive('request-timeout-ms', str('request-timeout-ms') ?? '10000', 100),
    kubeTokenFile: str('kube-token-file') ?? env.RAFT_ELECTOR_KUBE_TOKEN_FILE ?? `${SERVICE_ACCOUNT_DIR}/token`,
    kubeCaFile: str('kube-ca-file') ?? env.RAFT_ELECTOR_KUBE_CA_FILE ?? `${SERVICE_ACCOUNT_DIR}/ca.crt`,
    logLevel: level,
  };
}

function readFilePair(files: { cert: string; key: string }): ServingCert {
  const cert = readFileSync(files.cert, 'utf8');
  return { cert, key: readFileSync(files.key, 'utf8'), notAfter: notAfter(cert) };
}

/** Runs the webhook until SIGTERM/SIGINT. Throws InjectConfigError (or TemplateError) on bad configuration. */
export async function runInject(config: InjectConfig, env: Record<string, string | undefined>): Promise<void> {
  const log = pino({ level: config.logLevel, base: { component: 'injector' } }, pino.destination({ dest: 1, sync: true }));
  const templates = new TemplateSource(config.templateFile, log);
  const metrics = new InjectorMetrics();
  let rotator: CertRotator | undefined;
  let api: InjectorApi | undefined;
  let first: ServingCert;
  // Set once the server exists; a rotation before that only replaces the first certificate.
  const live: { server?: InjectorServer } = {};
  let fileTimer: NodeJS.Timeout | undefined;
  if (config.tlsFiles) {
    first = readFilePair(config.tlsFiles);
  } else {
    const host = env.KUBERNETES_SERVICE_HOST;
    const port = env.KUBERNETES_SERVICE_PORT;
    if (!host || !port) throw new InjectConfigError('--cert-secret needs the Kubernetes API (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset)');
    api = new InjectorApi({ server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`, caFile: config.kubeCaFile, tokenFile: config.kubeTokenFile, requestTimeoutMs: config.requestTimeoutMs });
    let pending: ServingCert | undefined;
    rotator = new CertRotator({
      api,
      namespace: config.namespace,
      secretName: config.certSecret!,
      webhookConfig: config.webhookConfig,
      policy: { validityMs: config.certValidityMs, dnsNames: config.certDns, ipAddresses: config.certIp },
      checkMs: config.certCheckMs,
      logger: log,
      onCert: (c) => (live.server ? live.server.setCert(c) : (pending = c)),
    });
    // Retried until it works: without a certificate the webhook cannot serve at all.
    for (;;) {
      try {
        await rotator.check();
        break;
      } catch (err) {
        log.error({ err: (err as Error).message }, 'cannot get a serving certificate yet; retrying in 2 s');
        await new Promise((r) => setTimeout(r, 2_000));
      }
    }
    first = pending!;
  }
  const server = new InjectorServer({ template: () => templates.template, cert: first, logger: log, metrics, maxBodyBytes: config.maxBodyBytes, requestTimeoutMs: config.requestTimeoutMs });
  live.server = server;
  if (config.tlsFiles) {
    const files = config.tlsFiles;
    let last = first.cert;
    fileTimer = setInterval(() => {
      try {
        const next = readFilePair(files);
        if (next.cert !== last) {
          server.setCert(next);
          last = next.cert;
        }
      } catch (err) {
        log.error({ err: (err as Error).message }, 'cannot read the mounted certificate; serving the last one');
      }
    }, config.certCheckMs);
  }
  templates.watch(config.templatePollMs);
  rotator?.start();
  const metricsServer = createMetricsServer(metrics, () => true);
  const bound = await server.listen(config.listen.host, config.listen.port);
  await new Promise<void>((resolve, reject) => {
    metricsServer.once('error', reject);
    metricsServer.listen(config.metrics.port, config.metrics.host, resolve);
  });
  log.info({ listen: `${bound.address}:${bound.port}`, template: templates.template.hash, certificates: config.tlsFiles ? 'files' : `secret ${config.namespace}/${config.certSecret}` }, 'raft-elector injector running');
  const stop = (signal: string): void => {
    log.info({ signal }, 'injector stopping');
    void (async () => {
      clearInterval(fileTimer);
      templates.stop();
      await rotator?.stop();
      await server.close();
      metricsServer.close();
      await api?.close();
      process.exit(0);
    })();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
