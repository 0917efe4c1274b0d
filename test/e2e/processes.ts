/**
 * Processes the e2e suite starts: each in its own process group, so stopping it stops
 * everything it forked, with its output kept in memory (bounded) and in a log file.
 * Every live group id is also recorded as a file in a directory the global teardown
 * reads (removed when the group exits), so a crashed test file leaves nothing running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';

const MaxLines = 20_000;

/** The directory where live process group ids are recorded (set by the e2e global setup). */
export const PgidDirEnv = 'RAFT_ELECTOR_E2E_PGID_DIR';

export interface SpawnOptions {
  env?: Record<string, string>;
  logFile: string;
  cwd?: string;
}

export class GroupProcess {
  readonly lines: string[] = [];
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private log: WriteStream;
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  private constructor(readonly name: string, readonly child: ChildProcess, logFile: string) {
    this.log = createWriteStream(logFile, { flags: 'a' });
    let pending = '';
    const collect = (chunk: Buffer) => {
      this.log.write(chunk);
      const text = pending + chunk.toString('utf8');
      const cut = text.lastIndexOf('\n');
      pending = text.slice(cut + 1);
      for (const line of text.slice(0, cut + 1).split('\n')) {
        if (line.trim() === '') continue;
        this.lines.push(line);
        if (this.lines.length > MaxLines) this.lines.splice(0, this.lines.length - MaxLines);
      }
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
    this.exited.then(() => this.log.end(), () => undefined);
  }

  static start(name: string, command: string, args: string[], options: SpawnOptions): GroupProcess {
    const child = spawn(command, args, {
      detached: true, // its own process group: kill(-pid) reaches every descendant
      env: options.env ?? (process.env as Record<string, string>),
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (child.pid === undefined) throw new Error(`could not start ${name} (${command})`);
    const pgidDir = process.env[PgidDirEnv];
    if (pgidDir) {
      mkdirSync(pgidDir, { recursive: true });
      const record = join(pgidDir, String(child.pid));
      writeFileSync(record, name);
      child.once('exit', () => rmSync(record, { force: true }));
    }
    return new GroupProcess(name, child, options.logFile);
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** Signals the whole group. */
  signal(signal: NodeJS.Signals): void {
    if (!this.running) return;
    try {
      process.kill(-this.pid, signal);
    } catch {
      // already gone
    }
  }

  waitExit(deadlineMs: number): Promise<boolean> {
    return Promise.race([this.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), deadlineMs).unref())]);
  }

  /** SIGTERM (after SIGCONT, in case it is paused), then SIGKILL after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.signal('SIGCONT');
    this.signal('SIGTERM');
    if (await this.waitExit(graceMs)) return;
    this.signal('SIGKILL');
    await this.waitExit(5_000);
  }

  tail(n = 40): string {
    return `--- ${this.name} (last ${Math.min(n, this.lines.length)} lines)\n${this.lines.slice(-n).join('\n')}`;
  }
}

/** The global teardown's safety net: SIGKILL every recorded group that never exited. */
export function killRecordedGroups(pgidDir: string): number {
  if (!existsSync(pgidDir)) return 0;
  let killed = 0;
  for (const entry of readdirSync(pgidDir)) {
    const pgid = Number(entry);
    if (!Number.isInteger(pgid) || pgid <= 1) continue;
    try {
      process.kill(-pgid, 'SIGKILL');
      killed++;
    } catch {
      // exited already
    }
  }
  return killed;
}
