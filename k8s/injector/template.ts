/**
 * The sidecar template: the chart renders its raft-elector.sidecar and
 * raft-elector.sidecarVolumes templates (the paste path's source) into a ConfigMap as
 * JSON; the injector reads the mounted file at start and again whenever it changes,
 * so `helm upgrade` changes the spec of pods injected afterwards without a restart.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Container, SidecarTemplate, Volume } from './mutate.js';

export class TemplateError extends Error {
  readonly code = 'INJECTOR_TEMPLATE_INVALID';
  constructor(file: string, why: string) {
    super(`sidecar template ${file}: ${why}`);
    this.name = 'TemplateError';
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses the rendered template; throws a TemplateError naming the file and the field. */
export function parseTemplate(text: string, file: string): SidecarTemplate {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new TemplateError(file, `not JSON (${(err as Error).message})`);
  }
  if (!isObject(doc)) throw new TemplateError(file, 'must be a JSON object');
  const containers = doc.containers;
  if (!Array.isArray(containers) || containers.length !== 1 || !isObject(containers[0]) || typeof containers[0].name !== 'string') {
    throw new TemplateError(file, '"containers" must hold exactly one container with a name');
  }
  const container = containers[0] as Container;
  if (container.args !== undefined && (!Array.isArray(container.args) || container.args.some((a) => typeof a !== 'string'))) {
    throw new TemplateError(file, '"containers[0].args" must be a list of strings');
  }
  const volumes = doc.volumes ?? [];
  if (!Array.isArray(volumes) || volumes.some((v) => !isObject(v) || typeof v.name !== 'string')) {
    throw new TemplateError(file, '"volumes" must be a list of volumes with names');
  }
  if (typeof doc.native !== 'boolean') throw new TemplateError(file, '"native" must be true or false');
  for (const key of ['dataVolumeName', 'secretVolumeName'] as const) {
    if (typeof doc[key] !== 'string' || doc[key] === '') throw new TemplateError(file, `"${key}" must be a non-empty string`);
  }
  const suffix = doc.groupSecretSuffix;
  if (suffix !== undefined && (typeof suffix !== 'string' || !/^[-a-z0-9.]{0,64}$/.test(suffix))) {
    throw new TemplateError(file, '"groupSecretSuffix" must be a short string of lower-case letters, digits, "-" and "."');
  }
  return {
    container,
    ...(suffix === undefined ? {} : { groupSecretSuffix: suffix }),
    native: doc.native,
    volumes: volumes as Volume[],
    dataVolumeName: doc.dataVolumeName as string,
    secretVolumeName: doc.secretVolumeName as string,
    hash: createHash('sha256').update(text).digest('hex').slice(0, 12),
  };
}

export interface TemplateLog {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** The current template; re-read every pollMs (a ConfigMap volume changes by a symlink swap, which fs.watch misses). */
export class TemplateSource {
  private current: SidecarTemplate;
  private text: string;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly file: string, private readonly log: TemplateLog) {
    this.text = readFileSync(file, 'utf8');
    this.current = parseTemplate(this.text, file);
  }

  get template(): SidecarTemplate {
    return this.current;
  }

  /** Re-reads the file; a broken new version is logged and the last good one kept. */
  reload(): void {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      this.log.error({ file: this.file, err: (err as Error).message }, 'cannot read the sidecar template; keeping the last good one');
      return;
    }
    if (text === this.text) return;
    try {
      this.current = parseTemplate(text, this.file);
      this.text = text;
      this.log.info({ file: this.file, template: this.current.hash }, 'sidecar template changed: pods injected from now on get the new spec');
    } catch (err) {
      this.log.error({ file: this.file, code: (err as TemplateError).code, err: (err as Error).message }, 'the new sidecar template is invalid; keeping the last good one');
    }
  }

  watch(pollMs: number): void {
    this.timer = setInterval(() => this.reload(), pollMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
