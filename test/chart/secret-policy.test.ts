/**
 * The peer secret never changes behind the running members' backs: the
 * generated Secret is kept on uninstall, a render that cannot see the cluster
 * refuses to invent a new one unless told to, and GitOps users bring their own.
 *
 * Skips, printing why, when helm is not installed (CI installs it; see findHelm).
 */
import { describe, expect, it } from 'vitest';
import { chartDir, findHelm, Helm, only, sidecarOf, type K8sObject, type StatefulSet } from './helm.js';

const found = findHelm();
if ('missing' in found) console.log(`[chart secret tests skipped] ${found.missing}`);
const helm = 'helm' in found ? new Helm(found.helm) : undefined;

type Secret = K8sObject & { data: Record<string, string> };

describe.skipIf(!helm)('the peer secret policy', () => {
  const h = helm!;

  it('refuses, in one line naming the values to set, to generate a secret when lookup sees no cluster', () => {
    for (const args of [[], ['--set', 'example.enabled=true']]) {
      const result = h.run(['template', 'demo', chartDir, '--namespace', 'shop', ...args]);
      expect(result.status).not.toBe(0);
      const first = result.stderr.split('\n')[0]!;
      expect(first).toContain('lookup cannot see namespace shop');
      for (const value of ['secret.existingSecret', 'secret.value', 'secret.generateWithoutLookup=true']) expect(first).toContain(value);
    }
  });

  it('generates one when told that generation at template time is accepted, annotated to survive uninstall', () => {
    const secret = only<Secret>(h.template(['--set', 'secret.generateWithoutLookup=true'], 'demo', 'shop', false), 'Secret');
    expect(Buffer.from(secret.data.secret!, 'base64').length).toBeGreaterThanOrEqual(16);
    expect(secret.metadata.annotations?.['helm.sh/resource-policy']).toBe('keep');
    const unkept = only<Secret>(h.template(['--set', 'secret.keep=false']), 'Secret');
    expect(unkept.metadata.annotations?.['helm.sh/resource-policy']).toBeUndefined();
  });

  it('writes secret.value as given, the same on every render, with no lookup needed', () => {
    const args = ['--set', 'secret.value=correct-horse-battery-staple', '--set', 'example.enabled=true'];
    const first = only<Secret>(h.template(args, 'demo', 'shop', false), 'Secret');
    expect(Buffer.from(first.data.secret!, 'base64').toString()).toBe('correct-horse-battery-staple');
    expect(only<Secret>(h.template(args, 'demo', 'shop', false), 'Secret').data).toEqual(first.data);
    const short = h.run(['template', 'demo', chartDir, '--set', 'secret.value=short']);
    expect(short.status).not.toBe(0);
    expect(short.stderr).toContain("at '/secret/value'");
  });

  it('renders no Secret and needs no lookup with secret.existingSecret (the GitOps and External Secrets path)', () => {
    const objects = h.template(['--set', 'secret.existingSecret=orders-raft', '--set', 'example.enabled=true'], 'demo', 'shop', false);
    expect(objects.some((o) => o.kind === 'Secret')).toBe(false);
    const sts = only<StatefulSet>(objects, 'StatefulSet');
    const volume = sts.spec.template.spec.volumes!.find((v) => v.name === 'raft-elector-secret') as unknown as { secret: { secretName: string } };
    expect(volume.secret.secretName).toBe('orders-raft');
    expect(sidecarOf(sts).container.args).toContain('--secret-file=/etc/raft-elector/secret/secret');
  });
});
