/**
 * Helm for the chart tests: find the binary, render the chart, parse the
 * manifests, and read the sidecar out of a render.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

// Two up from test/chart, three from dist/test/chart (bench/rollout.ts runs from dist/).
export const repoRoot = resolve(import.meta.dirname, existsSync(resolve(import.meta.dirname, '../../package.json')) ? '../..' : '../../..');
export const chartDir = join(repoRoot, 'charts/raft-elector');

/** helm on PATH, in ~/go/bin or in $(go env GOPATH)/bin (where `go install` puts it); the reason when none is found. */
export function findHelm(): { helm: string } | { missing: string } {
  const candidates = ['helm', join(homedir(), 'go/bin/helm')];
  const gopath = spawnSync('go', ['env', 'GOPATH'], { encoding: 'utf8' });
  if (gopath.status === 0 && gopath.stdout.trim()) candidates.push(join(gopath.stdout.trim(), 'bin/helm'));
  for (const candidate of candidates) {
    if (candidate !== 'helm' && !existsSync(candidate)) continue;
    const probe = spawnSync(candidate, ['version', '--short'], { encoding: 'utf8' });
    if (probe.status === 0 && /^v3\./.test(probe.stdout.trim())) return { helm: candidate };
  }
  return { missing: `helm v3 not found on PATH, in ~/go/bin or in $(go env GOPATH)/bin (install: go install helm.sh/helm/v3/cmd/helm@v3.21.4)` };
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

export interface Container {
  name: string;
  image: string;
  args?: string[];
  command?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports?: { name: string; containerPort: number }[];
  restartPolicy?: string;
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  resources?: unknown;
  securityContext?: SecurityContext;
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}

export interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  readOnlyRootFilesystem?: boolean;
  allowPrivilegeEscalation?: boolean;
  privileged?: boolean;
  capabilities?: { drop?: string[]; add?: string[] };
  seccompProfile?: { type: string };
}

export interface PodSpec {
  serviceAccountName?: string;
  securityContext?: SecurityContext & { fsGroup?: number };
  initContainers?: Container[];
  containers: Container[];
  volumes?: ({ name: string } & Record<string, unknown>)[];
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
}

export interface StatefulSet extends K8sObject {
  spec: {
    serviceName: string;
    replicas: number;
    podManagementPolicy?: string;
    selector: { matchLabels: Record<string, string> };
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
    volumeClaimTemplates?: { metadata: { name: string }; spec: { storageClassName?: string; accessModes: string[]; resources: { requests: { storage: string } } } }[];
  };
}

export interface RenderResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export class Helm {
  constructor(readonly binary: string) {}

  run(args: string[]): RenderResult {
    const result = spawnSync(this.binary, args, { encoding: 'utf8', timeout: 60_000 });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  }

  /**
   * `helm template <release> charts/raft-elector -n <namespace> <args>`; throws with helm's message on failure.
   * `helm template` has no cluster, so the chart refuses to generate the peer secret unless told
   * to: blindSecret=true tells it (args can still override).
   */
  template(args: string[] = [], release = 'demo', namespace = 'shop', blindSecret = true): K8sObject[] {
    const blind = blindSecret ? ['--set', 'secret.generateWithoutLookup=true'] : [];
    const result = this.run(['template', release, chartDir, '--namespace', namespace, ...blind, ...args]);
    if (result.status !== 0) throw new Error(`helm template ${args.join(' ')} failed: ${result.stderr}`);
    return parseManifests(result.stdout);
  }
}

/**
 * NOTES.txt as `helm install` would print it. `helm template` never renders
 * NOTES and `helm install --dry-run` needs a cluster, so a scratch copy of the
 * chart gets one extra template that includes the NOTES text through Helm's
 * own engine.
 */
export function renderNotes(helm: Helm, args: string[] = [], release = 'demo', namespace = 'shop'): string {
  const copy = mkdtempSync(join(tmpdir(), 'raft-elector-chart-'));
  try {
    cpSync(chartDir, copy, { recursive: true });
    const notes = readFileSync(join(chartDir, 'templates/NOTES.txt'), 'utf8');
    writeFileSync(join(copy, 'templates/_test_notes.tpl'), `{{- define "test.notes" -}}\n${notes}\n{{- end }}\n`);
    writeFileSync(join(copy, 'templates/test-notes.yaml'), 'notes: |\n{{ include "test.notes" . | indent 2 }}\n');
    const result = helm.run(['template', release, copy, '--namespace', namespace, '--show-only', 'templates/test-notes.yaml', '--set', 'secret.generateWithoutLookup=true', ...args]);
    if (result.status !== 0) throw new Error(`rendering NOTES.txt failed: ${result.stderr}`);
    return (parseManifests(result.stdout)[0] as unknown as { notes: string }).notes;
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
}

export function parseManifests(text: string): K8sObject[] {
  const objects: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`rendered YAML does not parse: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value = doc.toJS() as K8sObject | null;
    if (value !== null) objects.push(value);
  }
  return objects;
}

export function only<T extends K8sObject = K8sObject>(objects: K8sObject[], kind: string): T {
  const matching = objects.filter((o) => o.kind === kind);
  if (matching.length !== 1) throw new Error(`expected one ${kind}, found ${matching.length}`);
  return matching[0] as T;
}

export function sidecarOf(sts: StatefulSet, name = 'raft-elector'): { container: Container; native: boolean } {
  const spec = sts.spec.template.spec;
  const init = spec.initContainers?.find((c) => c.name === name);
  if (init) return { container: init, native: true };
  const plain = spec.containers.find((c) => c.name === name);
  if (!plain) throw new Error(`no container ${name} in ${sts.metadata.name}`);
  return { container: plain, native: false };
}

/** The container's env with downward-API fields filled in as the kubelet would for this pod. */
export function resolveEnv(container: Container, pod: { name: string; namespace: string; uid?: string }): Record<string, string> {
  const env: Record<string, string> = {};
  for (const variable of container.env ?? []) {
    if (variable.value !== undefined) env[variable.name] = variable.value;
    else if (variable.valueFrom?.fieldRef) {
      const field = variable.valueFrom.fieldRef.fieldPath;
      if (field === 'metadata.name') env[variable.name] = pod.name;
      else if (field === 'metadata.namespace') env[variable.name] = pod.namespace;
      else if (field === 'metadata.uid') env[variable.name] = pod.uid ?? '00000000-0000-4000-8000-000000000000';
      else throw new Error(`env ${variable.name}: fieldRef ${field} is not filled in by this test`);
    } else throw new Error(`env ${variable.name}: valueFrom other than fieldRef is not filled in by this test`);
  }
  return env;
}

/** Runs a command, returning its exit status and output. */
export function run(command: string, args: string[], env: Record<string, string>): RenderResult {
  try {
    const stdout = execFileSync(command, args, { encoding: 'utf8', env, timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
    return { status: 0, stdout, stderr: '' };
  } catch (error) {
    const e = error as { status: number | null; stdout: string; stderr: string };
    return { status: e.status, stdout: e.stdout, stderr: e.stderr };
  }
}
