/**
 * The `helm test` pod: restricted-profile settings, and its check run for real
 * with this machine's node against three fake members found through a test
 * DNS server that answers as the cluster's DNS does for the headless Service.
 *
 * Skips, printing why, when helm is not installed (CI installs it; see findHelm).
 */
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClusterDns } from '../dns/server.js';
import { findHelm, Helm, only, type Container, type K8sObject } from './helm.js';

const found = findHelm();
if ('missing' in found) console.log(`[helm test pod tests skipped] ${found.missing}`);
const helm = 'helm' in found ? new Helm(found.helm) : undefined;

type TestPod = K8sObject & { spec: { restartPolicy: string; automountServiceAccountToken: boolean; securityContext: Record<string, unknown>; containers: Container[] } };

interface Answer {
  leader: string | null;
  isLeader: boolean;
  term: number;
}

describe.skipIf(!helm)('the helm test pod', () => {
  const h = helm!;
  const pods = ['orders-0', 'orders-1', 'orders-2'];
  const ips = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
  const answers = new Map<string, Answer>();
  const servers: Server[] = [];
  let dns: TestClusterDns;
  let httpPort = 0;

  beforeAll(async () => {
    dns = await TestClusterDns.start({ namespace: 'shop', service: 'orders', portName: 'raft', port: 4041 });
    // One port for all three, as in the cluster: each member on its own IP.
    for (const [i, ip] of ips.entries()) {
      const server = createServer((req, res) => {
        const answer = answers.get(pods[i]!);
        res.writeHead(req.url === '/leader' && answer ? 200 : 404, { 'content-type': 'application/json' });
        res.end(JSON.stringify(answer ?? {}));
      });
      await new Promise<void>((resolve) => server.listen(httpPort, ip, resolve));
      httpPort = (server.address() as AddressInfo).port;
      servers.push(server);
      dns.setPod(pods[i]!, ip);
    }
  });

  afterAll(async () => {
    for (const server of servers) server.close();
    await dns?.close();
  });

  function render(): TestPod {
    const objects = h.template(['--set', 'service.name=orders', '--set', `sidecar.httpPort=${httpPort}`, '--set', 'tests.timeoutSeconds=3']);
    return only<TestPod>(objects, 'Pod');
  }

  /** The pod's command with this machine's node, its DNS pointed at the test server. */
  async function runCheck(pod: TestPod): Promise<{ code: number | null; output: string }> {
    const container = pod.spec.containers[0]!;
    const [, ...nodeArgs] = container.command!;
    const env: Record<string, string> = { PATH: process.env.PATH ?? '' };
    for (const variable of container.env ?? []) env[variable.name] = variable.value!;
    const preload = `data:text/javascript,import dns from 'node:dns'; dns.setServers(['${dns.address}']);`;
    const child = spawn(process.execPath, ['--import', preload, ...nodeArgs, ...container.args!], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    return { code, output };
  }

  it('is a helm test hook, runs once, with no API token, in the restricted profile\'s settings', () => {
    const pod = render();
    expect(pod.metadata.annotations).toMatchObject({ 'helm.sh/hook': 'test' });
    expect(pod.spec.restartPolicy).toBe('Never');
    expect(pod.spec.automountServiceAccountToken).toBe(false);
    expect(pod.spec.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod.spec.containers[0]!.securityContext).toMatchObject({ runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(pod.spec.containers[0]!.image).toBe('ghcr.io/raft-elector/raft-elector:0.1.0');
    expect(h.template(['--set', 'tests.enabled=false']).some((o) => o.kind === 'Pod')).toBe(false);
  });

  it('passes when every member names the same leader in the same term and one leads', async () => {
    for (const pod of pods) answers.set(pod, { leader: 'orders-1', isLeader: pod === 'orders-1', term: 4 });
    const { code, output } = await runCheck(render());
    expect(output).toContain('ok: 3 members agree, leader orders-1 in term 4');
    expect(code).toBe(0);
  }, 20_000);

  it('fails, naming what each member said, when they disagree or one does not answer', async () => {
    for (const pod of pods) answers.set(pod, { leader: pod === 'orders-2' ? 'orders-2' : 'orders-1', isLeader: pod !== 'orders-0', term: 4 });
    const split = await runCheck(render());
    expect(split.code).toBe(1);
    expect(split.output).toContain('FAIL after 3s: members disagree');
    expect(split.output).toContain('"leader":"orders-2"');
    answers.delete('orders-0');
    const silent = await runCheck(render());
    expect(silent.code).toBe(1);
    expect(silent.output).toContain('not every member answers');
  }, 30_000);
});
