/**
 * The install documentation stays true to the chart: the block docs/install.md
 * tells users to paste is the chart's own rendering for the values it names,
 * and the chart README documents every value that values.yaml has, line by line.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { chartDir, findHelm, Helm, only, repoRoot, sidecarOf, type K8sObject, type StatefulSet } from './helm.js';

const found = findHelm();
if ('missing' in found) console.log(`[install docs tests skipped] ${found.missing}`);
const helm = 'helm' in found ? new Helm(found.helm) : undefined;

/** The yaml block after `<!-- paste-block: <install command> -->`. */
function pasteBlock(markdown: string): { command: string; statefulSet: StatefulSet } {
  const m = /<!-- paste-block: (.+?) -->\n```yaml\n([\s\S]*?)\n```/.exec(markdown);
  if (!m) throw new Error('docs/install.md has no <!-- paste-block: ... --> followed by a yaml block');
  return { command: m[1]!, statefulSet: parse(m[2]!) as StatefulSet };
}

/** `helm install <release> charts/raft-elector --namespace <ns> --set a=b ...` as template arguments. */
function installArgs(command: string): { release: string; namespace: string; sets: string[] } {
  const words = command.split(/\s+/);
  expect(words.slice(0, 2)).toEqual(['helm', 'install']);
  expect(words[3]).toBe('charts/raft-elector');
  const namespaceAt = words.indexOf('--namespace');
  const sets: string[] = [];
  words.forEach((w, i) => {
    if (w === '--set') sets.push('--set', words[i + 1]!);
  });
  return { release: words[2]!, namespace: words[namespaceAt + 1]!, sets };
}

describe.skipIf(!helm)('docs/install.md', () => {
  const markdown = readFileSync(join(repoRoot, 'docs/install.md'), 'utf8');

  it('shows as the block to paste exactly what the chart renders for the install command it names', () => {
    const { command, statefulSet: doc } = pasteBlock(markdown);
    expect(markdown).toContain(`\`\`\`sh\n${command}\n\`\`\``);
    const { release, namespace, sets } = installArgs(command);
    const objects = helm!.template([...sets, '--set', 'example.enabled=true'], release, namespace);
    const rendered = only<StatefulSet>(objects, 'StatefulSet');
    const docPod = doc.spec.template.spec;
    const renderedPod = rendered.spec.template.spec;

    expect(docPod.initContainers).toEqual(renderedPod.initContainers);
    for (const volume of renderedPod.volumes ?? []) expect(docPod.volumes).toContainEqual(volume);
    expect(doc.spec.volumeClaimTemplates).toEqual(rendered.spec.volumeClaimTemplates);
    expect(doc.spec.serviceName).toBe(only(objects, 'Service').metadata.name);
    expect(doc.spec.podManagementPolicy).toBe('Parallel');
    expect(docPod.securityContext?.fsGroup).toBe(65532);
    const binding = only<K8sObject & { subjects: { name: string }[] }>(objects, 'RoleBinding');
    expect(docPod.serviceAccountName).toBe(binding.subjects[0]!.name);
    const selector = (only(objects, 'Service') as K8sObject & { spec: { selector: Record<string, string> } }).spec.selector;
    expect(doc.spec.template.metadata.labels).toMatchObject(selector);
    expect(doc.spec.selector.matchLabels).toEqual(selector);
    // The voters follow the pods: no --replicas to keep equal to the StatefulSet's.
    expect(sidecarOf(rendered).container.args!.some((a) => a.startsWith('--replicas'))).toBe(false);
    expect(doc.metadata.namespace).toBe(namespace);
  });
});

describe('the chart README and values.yaml', () => {
  const valuesText = readFileSync(join(chartDir, 'values.yaml'), 'utf8');
  const readme = readFileSync(join(chartDir, 'README.md'), 'utf8');

  /**
   * Every value is documented by a `# --` comment right above it; a documented
   * mapping or list covers what is under it, an undocumented mapping only groups.
   */
  function documentedKeys(): { documented: string[]; undocumented: string[] } {
    const documented: string[] = [];
    const undocumented: string[] = [];
    const parents: { indent: number; key: string }[] = [];
    let comment = false;
    let skipDeeperThan = -1;
    for (const line of valuesText.split('\n')) {
      if (line.trim() === '') {
        comment = false;
        continue;
      }
      const indent = line.length - line.trimStart().length;
      if (skipDeeperThan >= 0 && indent > skipDeeperThan) continue;
      skipDeeperThan = -1;
      if (/^\s*# -- /.test(line)) {
        comment = true;
        continue;
      }
      if (/^\s*#/.test(line)) continue;
      const m = /^(\s*)([A-Za-z][\w-]*):\s*(.*)$/.exec(line);
      if (!m) continue;
      while (parents.length > 0 && parents.at(-1)!.indent >= indent) parents.pop();
      const path = [...parents.map((p) => p.key), m[2]!].join('.');
      if (comment) {
        documented.push(path);
        if (m[3] === '') skipDeeperThan = indent;
      } else if (m[3] === '') parents.push({ indent, key: m[2]! });
      else undocumented.push(path);
      comment = false;
    }
    return { documented, undocumented };
  }

  it('documents every value in values.yaml with a comment', () => {
    const { documented, undocumented } = documentedKeys();
    expect(undocumented).toEqual([]);
    expect(documented).toContain('sidecar.native');
    expect(documented).toContain('persistence.type');
  });

  it('lists every documented value in the README values table, and no other', () => {
    const valuesSection = readme.slice(readme.indexOf('\n## Values'));
    const table = [...valuesSection.matchAll(/^\| `([\w.-]+)` \|/gm)].map((m) => m[1]!);
    expect(table).toEqual(documentedKeys().documented);
    const values = parse(valuesText) as Record<string, unknown>;
    for (const key of table) {
      const value = key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], values);
      expect(value, key).not.toBeUndefined();
    }
  });

  it('says plainly why emptyDir is safe now (issue 11)', () => {
    expect(readme.replace(/\s+/g, ' ')).toContain('a pod recreated on an empty disk is a new member');
    expect(readme).not.toContain('can vote twice in one term');
  });
});
