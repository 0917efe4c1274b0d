/**
 * Shared pieces for the Kubernetes tests: a test API server with an in-cluster
 * layout and the sidecar's client (k8s/kube-client.ts) built the way the sidecar builds it, a
 * Member whose view the test sets, a pino logger whose lines the test reads,
 * and waiting on a condition with a deadline.
 */
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { ClusterError } from '../../cluster/errors.js';
import type { LeadershipView, Member, MemberInfo, MembershipStatus, TransferResult } from '../../cluster/interfaces.js';
import { createKubeClient, loadInClusterConfig, type KubeClient } from '../../k8s/kube-client.js';
import { TestApiServer, type TestApiServerOptions } from './apiserver.js';

export interface ApiFixture {
  server: TestApiServer;
  client: KubeClient;
  close(): Promise<void>;
}

/** One token for every test server of this process (each client re-reads its token file once a minute). */
export const TEST_TOKEN = `test-token-${process.pid}`;

export async function startApiFixture(options: TestApiServerOptions & { namespace?: string; requestTimeoutMs?: number } = {}): Promise<ApiFixture> {
  const server = await TestApiServer.start({ token: TEST_TOKEN, ...options });
  const layout = server.writeInClusterLayout(options.namespace ?? 'default');
  const config = loadInClusterConfig({ env: layout.env, tokenFile: layout.tokenFile, caFile: layout.caFile, scheme: server.tls ? 'https' : 'http' });
  const client = createKubeClient(config, { requestTimeoutMs: options.requestTimeoutMs ?? 2000 });
  return {
    server,
    client,
    close: async () => {
      client.close();
      await server.close();
    },
  };
}

export interface CapturedLog {
  logger: Logger;
  lines: () => Array<Record<string, unknown>>;
}

export function captureLog(level: 'debug' | 'info' = 'debug'): CapturedLog {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  return { logger: pino({ level }, sink), lines: () => [...lines] };
}

/** Polls `check` until it returns a truthy value or the deadline passes (then throws naming `what`). */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 5000, intervalMs = 10): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** A Member whose view the test sets; it records forgetLeader and campaign calls. */
export class ScriptedMember implements Member {
  private current: LeadershipView;
  private readonly listeners = new Set<(view: LeadershipView) => void>();
  forgetLeaderCalls = 0;
  campaignCalls = 0;

  constructor(readonly id: string) {
    this.current = { self: id, leader: null, term: 1, role: 'Follower', isLeader: false, leaseExpiresInMs: null, since: null };
  }

  view(): LeadershipView {
    return { ...this.current };
  }

  set(patch: Partial<Omit<LeadershipView, 'self'>>): void {
    this.current = { ...this.current, ...patch };
    for (const listener of [...this.listeners]) listener(this.view());
  }

  /** Follows `leader` at `term` (or leads, when leader is this member). */
  follow(leader: string | null, term: number): void {
    const self = leader === this.id;
    this.set({ leader, term, role: self ? 'Leader' : 'Follower', isLeader: self, leaseExpiresInMs: self ? 1000 : null, since: leader ? new Date().toISOString() : null });
  }

  members(): MemberInfo[] {
    return [];
  }

  onChange(listener: (view: LeadershipView) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  forgetLeader(): void {
    this.forgetLeaderCalls += 1;
    if (this.current.leader !== null && this.current.leader !== this.id) this.set({ leader: null, since: null });
  }

  campaign(): void {
    this.campaignCalls += 1;
  }

  async transferLeadership(): Promise<TransferResult> {
    return { leader: null, transferred: false };
  }

  lastLogId(): { index: number; term: number } {
    return { index: this.current.term, term: this.current.term };
  }

  worstTickLatenessMs(): number {
    return 0;
  }

  membership(): MembershipStatus {
    return { confState: { voters: [], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false }, pendingConfChange: false, appliedIndex: 0, lastIndex: 0, progress: {} };
  }

  proposeConfChange(): void {
    throw new ClusterError('NOT_LEADER', 'this test member changes no configuration');
  }

  onMembershipChange(): () => void {
    return () => undefined;
  }
}
