/**
 * kube-score and checkov on the chart's full render: every finding must be a
 * row of the chart README's "Linter findings we accept" table, and every row
 * must still occur, so the table stays the truth.
 *
 * Each linter skips, printing why, when it is not installed (.ci/run builds a
 * pinned kube-score; checkov is `pip install checkov`, or CHECKOV=<path>).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chartDir, findHelm, Helm } from './helm.js';

const found = findHelm();
const helm = 'helm' in found ? new Helm(found.helm) : undefined;

/** The first of the candidates that answers `version`; the reason when none does. */
function findTool(name: string, candidates: string[], probeArgs: string[], install: string): string | { missing: string } {
  for (const candidate of candidates) {
    if (candidate.includes('/') && !existsSync(candidate)) continue;
    const probe = spawnSync(candidate, probeArgs, { encoding: 'utf8', timeout: 60_000 });
    if (probe.status === 0) return candidate;
  }
  return { missing: `${name} not found (install: ${install})` };
}

const gopath = spawnSync('go', ['env', 'GOPATH'], { encoding: 'utf8' }).stdout?.trim();
const kubeScore = findTool('kube-score', ['kube-score', join(homedir(), 'go/bin/kube-score'), ...(gopath ? [join(gopath, 'bin/kube-score')] : [])], ['version'], 'go install github.com/zegl/kube-score/cmd/kube-score@v1.20.0');
const checkov = findTool('checkov', [...(process.env.CHECKOV ? [process.env.CHECKOV] : []), 'checkov'], ['--version'], 'pip install checkov');
for (const [name, tool] of [['helm', 'helm' in found ? '' : found], ['kube-score', kubeScore], ['checkov', checkov]] as const) {
  if (typeof tool !== 'string') console.log(`[${name} linter test skipped] ${tool.missing}`);
}

/** `linter check object path` for one finding; path is the container, or "" for the pod. */
type Finding = string;

function acceptedFindings(linter: string): Finding[] {
  const readme = readFileSync(join(chartDir, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Linter findings we accept'), readme.indexOf('\n## Values'));
  const rows: Finding[] = [];
  for (const m of section.matchAll(/^\| (kube-score|checkov) \| `([\w-]+)` \| `([\w/.-]+)` \| (.+?) \| .+ \|$/gm)) {
    if (m[1] !== linter) continue;
    const container = /^`([\w-]+)`:/.exec(m[4]!)?.[1] ?? '';
    rows.push(`${m[1]} ${m[2]} ${m[3]} ${container}`.trimEnd());
  }
  return rows.sort();
}

describe.skipIf(!helm)('linters on the rendered chart', () => {
  let dir: string;
  let manifest: string;

  beforeAll(() => {
    const args = ['template', 'demo', chartDir, '--namespace', 'shop', '--set', 'example.enabled=true', '--set', 'metrics.serviceMonitor.enabled=true', '--set', 'metrics.prometheusRule.enabled=true', '--set', 'secret.generateWithoutLookup=true', '--set', 'injector.enabled=true'];
    const rendered = helm!.run(args);
    if (rendered.status !== 0) throw new Error(rendered.stderr);
    dir = mkdtempSync(join(tmpdir(), 'raft-elector-lint-'));
    manifest = join(dir, 'chart.yaml');
    writeFileSync(manifest, rendered.stdout);
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it.skipIf(typeof kubeScore !== 'string')('kube-score finds nothing the README does not accept', () => {
    const result = spawnSync(kubeScore as string, ['score', '--output-format', 'json', manifest], { encoding: 'utf8', timeout: 60_000 });
    expect(result.stderr).toBe('');
    const objects = JSON.parse(result.stdout) as { object_meta: { name: string }; type_meta: { kind: string }; checks: { check: { id: string }; grade: number; skipped: boolean; comments: { path: string }[] | null }[] }[];
    const findings = new Set<Finding>();
    for (const object of objects) {
      for (const check of object.checks) {
        if (check.skipped || check.grade >= 10) continue;
        for (const comment of check.comments ?? [{ path: '' }]) {
          findings.add(`kube-score ${check.check.id} ${object.type_meta.kind}/${object.object_meta.name} ${comment.path}`.trimEnd());
        }
      }
    }
    expect(objects.length).toBeGreaterThan(5);
    expect([...findings].sort()).toEqual(acceptedFindings('kube-score'));
  });

  it.skipIf(typeof checkov !== 'string')('checkov finds nothing the README does not accept', () => {
    const result = spawnSync(checkov as string, ['--file', manifest, '--framework', 'kubernetes', '--quiet', '--compact', '--skip-download', '--output', 'json'], { encoding: 'utf8', timeout: 240_000 });
    const report = JSON.parse(result.stdout) as { results: { failed_checks: { check_id: string; resource: string }[] }; summary: { passed: number } };
    const findings = new Set<Finding>();
    for (const failed of report.results.failed_checks) {
      // checkov names a resource Kind.namespace.name.
      const [kind, , ...name] = failed.resource.split('.');
      findings.add(`checkov ${failed.check_id} ${kind}/${name.join('.')}`);
    }
    expect(report.summary.passed).toBeGreaterThan(100);
    expect([...findings].sort()).toEqual(acceptedFindings('checkov'));
  }, 300_000);
});
