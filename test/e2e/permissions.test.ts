/**
 * What the sidecar's credentials may do, judged by the real API server: the chart's
 * ValidatingAdmissionPolicy lets the sidecar's own label patches through and denies every
 * other pod change made with the same token; and a Role without `patch` leaves the election
 * running, logs the missing permission, and labels converge once `patch` is granted again.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Helm, K8sObject } from '../chart/helm.js';
import { waitFor } from '../integration/harness.js';
import { ControlPlane } from './control-plane.js';
import { Group } from './group.js';
import { registerNode } from './kubelet.js';
import type { KubeRest, Pod } from './rest.js';

const helm = Group.helm();
const skipReason = inject('e2eSkipReason') || (typeof helm === 'string' ? helm : '');
if (skipReason) console.log(`[e2e permissions skipped] ${skipReason}`);

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

describe.skipIf(skipReason !== '')('the sidecar\'s permissions on a real control plane', () => {
  let cp: ControlPlane;
  let group: Group | undefined;

  beforeAll(async () => {
    cp = await ControlPlane.start(join(inject('e2eRunDir'), 'permissions'));
    await registerNode(cp.admin);
  });

  afterAll(async () => {
    await group?.stop();
    await cp?.stop();
  });

  async function step<T>(body: () => Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${group?.logs() ?? ''}\n${cp?.logs() ?? ''}\n${group?.kubeletReport() ?? ''}`, { cause: error });
    }
  }

  it('a Role without patch: the election goes on, the log names the missing permission, labels converge once patch is granted', () => step(async () => {
    const namespace = 'noperm';
    group = await Group.install(cp, helm as Helm, {
      namespace,
      release: 'np',
      edit: (objects: K8sObject[]) => {
        const role = objects.find((o) => o.kind === 'Role') as K8sObject & { rules: Rule[] };
        for (const rule of role.rules) rule.verbs = rule.verbs.filter((v) => v !== 'patch');
      },
    });
    const g = group;
    const leader = await g.agreedLeader(g.podNames, 120_000);
    const denial = await waitFor('a log line naming the missing permission', 20_000, () =>
      g.logLines(leader.self).find((l) => l.code === 'KUBE_FORBIDDEN' && l.missingPermission === 'patch pods'), 100);
    expect(denial.level).toBeGreaterThanOrEqual(40);
    expect(String(denial.msg)).toMatch(/grant "patch" on "pods"/);
    console.log(`e2e: with patch missing the leader logs: ${String(denial.msg)}`);
    expect(Object.values(await g.labels()).every((l) => l === undefined)).toBe(true);
    // The election does not wait for the API server: the same leader still holds the lease.
    expect((await g.agreedLeader()).self).toBe(leader.self);

    const roleName = (g.objects.find((o) => o.kind === 'Role') as K8sObject).metadata.name;
    await cp.kubectl(['patch', 'role', roleName, '-n', namespace, '--type=json', '-p', '[{"op":"add","path":"/rules/0/verbs/-","value":"patch"}]']);
    await g.labelsConverge(leader.self, 60_000);
    await g.stop();
    group = undefined;
  }));

  describe('the ValidatingAdmissionPolicy', () => {
    const namespace = 'shop';
    let g: Group;
    let asMember: KubeRest;
    let follower: string;

    beforeAll(async () => {
      group = await Group.install(cp, helm as Helm, { namespace, release: 'demo' });
      g = group;
      const leader = await step(() => g.agreedLeader(g.podNames, 120_000));
      await step(() => g.labelsConverge(leader.self));
      follower = g.podNames.find((n) => n !== leader.self)!;
      asMember = g.restAs(follower);
      // A pod of another app in the same namespace (it stays Pending: no kubelet takes it).
      await cp.admin.json('POST', `/api/v1/namespaces/${namespace}/pods`, {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'bystander', labels: { app: 'other' } },
        spec: {
          // No ServiceAccount controller runs here to create "default".
          serviceAccountName: g.serviceAccount,
          automountServiceAccountToken: false,
          securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [{ name: 'c', image: 'busybox:1.37.0', securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, runAsUser: 1000 } }],
        },
      });
    });

    afterAll(() => asMember?.close());

    const path = (pod: string) => `/api/v1/namespaces/${namespace}/pods/${pod}`;
    async function patchAs(pod: string, patch: unknown, contentType = 'application/merge-patch+json'): Promise<{ status: number; message: string }> {
      const res = await asMember.raw('PATCH', path(pod), patch, contentType);
      const body = JSON.parse(res.body) as { message?: string };
      return { status: res.status, message: body.message ?? '' };
    }

    it('lets the sidecar\'s own patches through: its label and term annotation, and demoting a stale leader label on another group pod', () => step(async () => {
      expect(g.logLines().filter((l) => l.code === 'KUBE_FORBIDDEN')).toEqual([]);
      const own = await patchAs(follower, { metadata: { labels: { 'raft-role': 'follower' }, annotations: { 'raft-elector.io/leader-term': '0' } } });
      expect(own).toMatchObject({ status: 200 });
      const other = g.podNames.find((n) => n !== follower)!;
      // The demote carries the resourceVersion it read, as the sidecar's does (k8s/pod-label.ts).
      // Another writer may bump it in between: the pod's own sidecar writes its member annotation
      // once it applied a configuration with itself in it, which may come after the labels
      // converged. The API server then answers 409 before it evaluates the policy, so that is no
      // verdict of it: read and patch again, as the sidecar relists on a 409. Any 403 fails.
      const statuses: number[] = [];
      let demote = { status: 0, message: '' };
      for (let attempt = 0; attempt < 5 && (attempt === 0 || demote.status === 409); attempt++) {
        const pod = await g.pod(other);
        demote = await patchAs(other, { metadata: { resourceVersion: pod.metadata.resourceVersion, labels: { 'raft-role': pod.metadata.labels?.['raft-role'] } } });
        statuses.push(demote.status);
      }
      if (statuses.length > 1) console.log(`e2e: the demote patch met ${statuses.length - 1} conflict(s) (409) with another writer before it went through`);
      expect({ statuses, ...demote }).toMatchObject({ statuses: [...statuses.slice(0, -1).map(() => 409), 200], status: 200 });
    }));

    it('denies the same token patching the pod\'s image, another label, another annotation or the group label, and a role value other than leader/follower', () => step(async () => {
      const pod: Pod = await g.pod(follower);
      expect(pod.spec.containers[0]?.name).toBe('app');
      // A JSON patch of just the image: a merge patch would replace the container list, which pod validation itself refuses (422) before admission.
      const image = await patchAs(follower, [{ op: 'replace', path: '/spec/containers/0/image', value: 'evil:latest' }], 'application/json-patch+json');
      expect(image).toEqual({ status: 403, message: expect.stringMatching(/may not change a pod's spec/) });
      const cases: [string, unknown, RegExp][] = [
        ['another label', { metadata: { labels: { team: 'evil' } } }, /may change no pod label but raft-role/],
        ['a group label', { metadata: { labels: { 'app.kubernetes.io/instance': null } } }, /own group|may change no pod label/],
        ['another annotation', { metadata: { annotations: { evil: 'true' } } }, /may change no pod annotation/],
        ['a role value', { metadata: { labels: { 'raft-role': 'admin' } } }, /may only be leader or follower/],
      ];
      for (const [what, patch, message] of cases) {
        const res = await patchAs(follower, patch);
        expect({ what, status: res.status, message: res.message }).toEqual({ what, status: 403, message: expect.stringMatching(message) });
      }
      expect((await g.pod(follower)).metadata.labels?.team).toBeUndefined();
    }));

    it('denies patching a pod outside the group, and RBAC denies delete and create', () => step(async () => {
      const res = await patchAs('bystander', { metadata: { labels: { 'raft-role': 'leader' } } });
      expect(res).toMatchObject({ status: 403, message: expect.stringMatching(/only patch pods of its own group/) });
      const del = await asMember.raw('DELETE', path(follower));
      expect(del.status).toBe(403);
      const create = await asMember.raw('POST', `/api/v1/namespaces/${namespace}/pods`, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'x' }, spec: { containers: [{ name: 'c', image: 'x' }] } });
      expect(create.status).toBe(403);
    }));
  });
});
