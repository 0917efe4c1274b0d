/**
 * End to end from the chart: render the example StatefulSet, take the sidecar's
 * args and env as rendered, and start three real members with them against the
 * test API server and the test cluster DNS, as the kubelet would start them.
 *
 * What stands in for the cluster, and nothing else is changed:
 * - each pod's network namespace: its own loopback address, so `0.0.0.0` in a
 *   listen flag becomes that address (the rendered ports are chosen free here);
 * - the pod's volumes: a scratch directory per pod, where the rendered Secret's
 *   data is written at the secret mount and the data mount is an empty dir;
 * - what the kubelet provides: the downward-API values, KUBERNETES_SERVICE_HOST/
 *   PORT, the ServiceAccount token and CA (RAFT_ELECTOR_KUBE_TOKEN_FILE /
 *   _CA_FILE point at the test server's), and the pod's resolver (RAFT_ELECTOR_DNS_SERVER);
 * - RBAC: the test API server forbids every pods/events verb the rendered Role does not grant.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TestClusterDns } from '../dns/server.js';
import { TestApiServer, type Verb } from '../k8s/apiserver.js';
import { freePort, waitFor, type LeaderAnswer } from '../integration/harness.js';
import { findHelm, Helm, only, repoRoot, resolveEnv, sidecarOf, type K8sObject, type StatefulSet } from './helm.js';

const found = findHelm();
if ('missing' in found) console.log(`[rendered member test skipped] ${found.missing}`);
const helm = 'helm' in found ? new Helm(found.helm) : undefined;
const electorBin = join(repoRoot, 'dist/cmd/raft-elector.js');
const Release = 'demo';
const Namespace = 'shop';
const PodIps = ['127.0.0.11', '127.0.0.12', '127.0.0.13'];

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

function wgetAvailable(): boolean {
  return spawnSync('wget', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** A port free on every pod address (each pod binds the same ports on its own address). */
async function portFreeOnAllPods(taken: number[]): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await freePort();
    if (taken.includes(port)) continue;
    const free = await Promise.all(
      PodIps.map(
        (ip) =>
          new Promise<boolean>((resolve) => {
            const server = createServer();
            server.once('error', () => resolve(false));
            server.listen(port, ip, () => server.close(() => resolve(true)));
          }),
      ),
    );
    if (free.every(Boolean)) return port;
  }
  throw new Error('no port free on every pod address');
}

describe.skipIf(!helm)('the rendered sidecar runs a real group', () => {
  const children: ChildProcess[] = [];
  const cleanups: (() => Promise<void> | void)[] = [];

  afterAll(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('three members started from the rendered args and env elect one leader, label its pod and record an Event, with only the rendered Role', async () => {
    const httpPort = await portFreeOnAllPods([]);
    const raftPort = await portFreeOnAllPods([httpPort]);
    const objects = helm!.template(['--set', 'example.enabled=true', '--set', `sidecar.httpPort=${httpPort}`, '--set', `sidecar.raftPort=${raftPort}`], Release, Namespace);
    const sts = only<StatefulSet>(objects, 'StatefulSet');
    const service = only<K8sObject & { spec: { ports: { name: string; port: number }[] } }>(objects, 'Service');
    const secret = only<K8sObject & { data: Record<string, string> }>(objects, 'Secret');
    const role = only<K8sObject & { rules: Rule[] }>(objects, 'Role');
    const { container } = sidecarOf(sts);
    const pod = sts.spec.template.spec;
    expect(sts.spec.replicas).toBe(PodIps.length);

    // RBAC as the rendered Role grants it: every other verb on pods and events is refused (403).
    const api = await TestApiServer.start({ tls: true, token: `chart-${randomBytes(8).toString('hex')}`, serviceAccount: `${Namespace}:${pod.serviceAccountName}` });
    cleanups.push(() => api.close());
    const allVerbs: Verb[] = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection'];
    for (const [resource, groups] of [['pods', ['']], ['events', ['', 'events.k8s.io']]] as const) {
      for (const group of groups) {
        for (const verb of allVerbs) {
          const granted = role.rules.some((r) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb));
          if (!granted) api.forbid({ verb, resource, group });
        }
      }
    }
    const layout = api.writeInClusterLayout(Namespace);
    const clusterDomain = container.args!.find((a) => a.startsWith('--cluster-domain='))!.split('=')[1]!;
    const dns = await TestClusterDns.start({ namespace: Namespace, service: service.metadata.name, clusterDomain, port: service.spec.ports.find((p) => p.name === 'raft')!.port });
    cleanups.push(() => dns.close());
    const scratch = mkdtempSync(join(tmpdir(), 'raft-elector-rendered-'));
    cleanups.push(() => rmSync(scratch, { recursive: true, force: true }));

    const podNames = PodIps.map((_, i) => `${sts.metadata.name}-${i}`);
    const lines: string[][] = podNames.map(() => []);
    podNames.forEach((name, i) => {
      const created = api.createPod({
        name,
        namespace: Namespace,
        labels: sts.spec.template.metadata.labels,
        containers: [...(pod.initContainers ?? []), ...pod.containers].map((c) => c.name),
        podIP: PodIps[i]!,
      });
      dns.setPod(name, PodIps[i]!);

      // The pod's volumes, as the kubelet would mount them.
      const root = join(scratch, name);
      const inPod = (path: string): string => join(root, path);
      for (const mount of container.volumeMounts ?? []) {
        const volume = (pod.volumes ?? []).find((v) => v.name === mount.name);
        mkdirSync(inPod(mount.mountPath), { recursive: true });
        if (volume && 'secret' in volume) {
          const spec = volume.secret as { secretName: string; items: { key: string; path: string }[] };
          expect(spec.secretName).toBe(secret.metadata.name);
          for (const item of spec.items) {
            const file = inPod(join(mount.mountPath, item.path));
            mkdirSync(dirname(file), { recursive: true });
            writeFileSync(file, Buffer.from(secret.data[item.key]!, 'base64'));
          }
        } else {
          // The data volume: a claim from volumeClaimTemplates (or an emptyDir), empty at first.
          expect(volume === undefined ? sts.spec.volumeClaimTemplates?.some((t) => t.metadata.name === mount.name) : 'emptyDir' in volume).toBe(true);
        }
      }
      const mountPaths = (container.volumeMounts ?? []).map((m) => m.mountPath);
      const args = (container.args ?? []).map((arg) => {
        const m = /^(--[\w-]+=)(.*)$/.exec(arg);
        if (!m) return arg;
        const [, flag, value] = m as unknown as [string, string, string];
        if (value.startsWith('0.0.0.0:')) return `${flag}${PodIps[i]}:${value.slice('0.0.0.0:'.length)}`;
        if (mountPaths.some((p) => value === p || value.startsWith(`${p}/`))) return `${flag}${inPod(value)}`;
        return arg;
      });
      const env = {
        ...resolveEnv(container, { name, namespace: Namespace, uid: created.metadata.uid }),
        ...layout.env,
        RAFT_ELECTOR_KUBE_TOKEN_FILE: layout.tokenFile,
        RAFT_ELECTOR_KUBE_CA_FILE: layout.caFile,
        RAFT_ELECTOR_DNS_SERVER: dns.address,
        PATH: process.env.PATH ?? '',
      };
      const child = spawn(process.execPath, [electorBin, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      child.stdout.on('data', (d: Buffer) => lines[i]!.push(...d.toString().split('\n').filter((l) => l.trim() !== '')));
      child.stderr.on('data', (d: Buffer) => lines[i]!.push(...d.toString().split('\n').filter((l) => l.trim() !== '')));
    });
    const logs = (): string => lines.map((l, i) => `--- ${podNames[i]}\n${l.slice(-40).join('\n')}`).join('\n');

    try {
      const ask = async (i: number): Promise<LeaderAnswer> => {
        const res = await fetch(`http://${PodIps[i]}:${httpPort}/leader`, { signal: AbortSignal.timeout(1000) });
        return (await res.json()) as LeaderAnswer;
      };
      const leader = await waitFor('the three rendered members to agree on a leader holding the lease', 20_000, async () => {
        const answers = await Promise.all(podNames.map((_, i) => ask(i)));
        const first = answers[0]!;
        if (!first.leader || !answers.every((a) => a.leader === first.leader && a.term === first.term)) return undefined;
        return answers.find((a) => a.self === first.leader && a.isLeader);
      }, 50);
      expect(podNames).toContain(leader.leader);

      await waitFor('the raft-role labels to show the leader and two followers', 10_000, () => {
        const labels = podNames.map((name) => api.getPod(name, Namespace)?.metadata.labels?.['raft-role']);
        return labels.every((label, i) => label === (podNames[i] === leader.leader ? 'leader' : 'follower')) ? true : undefined;
      }, 50);

      const event = await waitFor('a LeaderElected Event on the leader pod', 10_000, () =>
        api.listEvents(Namespace).find((e) => (e as unknown as { reason: string; involvedObject?: { name: string } }).reason === 'LeaderElected'
          && (e as unknown as { involvedObject?: { name: string } }).involvedObject?.name === leader.leader), 50);
      expect(event).toBeDefined();

      // The example app container, its script as rendered, in each pod's network namespace.
      if (wgetAvailable()) {
        const app = pod.containers.find((c) => c.name === 'app')!;
        expect(app.command).toEqual(['/bin/sh', '-c']);
        const printed = await Promise.all(podNames.map(async (name, i) => {
          const script = app.args![0]!.replaceAll('localhost:', `${PodIps[i]}:`);
          const out: string[] = [];
          const shell = spawn('sh', ['-c', script], { env: { POD_NAME: name, PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
          children.push(shell);
          shell.stdout.on('data', (d: Buffer) => out.push(d.toString()));
          try {
            return await waitFor(`the example app in ${name} to print a line`, 10_000, () => (out.join('').includes('\n') ? out.join('').split('\n')[0] : undefined), 50);
          } finally {
            shell.kill('SIGKILL');
          }
        }));
        podNames.forEach((name, i) => {
          const expected = name === leader.leader ? `${name}: I am the leader (term ${leader.term})` : `${name}: not the leader; leader is ${leader.leader} (term ${leader.term})`;
          expect(printed[i]).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[\\d:]+Z ${expected.replace(/[()]/g, '\\$&')}$`));
        });
      } else {
        console.log('[example app check skipped] wget is not installed');
      }

      // The pod watch ran under the rendered Role too.
      expect(api.requestsFor({ verb: 'watch', resource: 'pods' }).length).toBeGreaterThan(0);
      const forbidden = lines.flat().filter((l) => l.includes('KUBE_FORBIDDEN'));
      expect(forbidden).toEqual([]);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${logs()}`, { cause: error });
    }
  }, 60_000);
});
