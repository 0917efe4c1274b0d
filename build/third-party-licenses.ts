/**
 * THIRD_PARTY_LICENSES for the bundle: the esbuild metafile's inputs name every
 * file the bundle took from node_modules; each belongs to one package, whose
 * LICENSE (or LICENCE, COPYING, NOTICE) files are copied in, sorted by name.
 *
 *   node build/third-party-licenses.ts <metafile.json> <output>
 *
 * Run by Node.js itself (type stripping), in the image build and in `npm run
 * bundle`, so it imports only node:* and uses only erasable TypeScript.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export interface BundledPackage {
  name: string;
  version: string;
  license: string;
  /** The package's directory, relative to the metafile's working directory. */
  dir: string;
  /** File name and text of each license file, sorted by file name. */
  files: { name: string; text: string }[];
}

const LICENSE_FILE = /^(licen[cs]e|copying|notice)([-._].*)?$/i;

/** The package directory of a metafile input, or undefined for the project's own files. */
export function packageDirOf(input: string): string | undefined {
  const parts = input.split('/');
  const at = parts.lastIndexOf('node_modules');
  if (at < 0 || at + 1 >= parts.length) return undefined;
  const scoped = parts[at + 1]!.startsWith('@');
  return parts.slice(0, at + (scoped ? 3 : 2)).join('/');
}

/** The packages whose files the bundle holds, read from the metafile at `metafilePath`. */
export function bundledPackages(metafilePath: string, cwd = process.cwd()): BundledPackage[] {
  const meta = JSON.parse(readFileSync(metafilePath, 'utf8')) as { inputs?: Record<string, unknown> };
  if (!meta.inputs) throw new Error(`${metafilePath}: not an esbuild metafile (no "inputs")`);
  const dirs = new Set<string>();
  for (const input of Object.keys(meta.inputs)) {
    const dir = packageDirOf(input);
    if (dir !== undefined) dirs.add(dir);
  }
  const packages: BundledPackage[] = [];
  for (const dir of dirs) {
    const manifestPath = join(resolve(cwd, dir), 'package.json');
    if (!existsSync(manifestPath)) throw new Error(`${dir}: bundled, but has no package.json to name it`);
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { name?: string; version?: string; license?: unknown };
    const files = readdirSync(resolve(cwd, dir))
      .filter((f) => LICENSE_FILE.test(f))
      .sort()
      .map((f) => ({ name: f, text: readFileSync(join(resolve(cwd, dir), f), 'utf8').trimEnd() }));
    packages.push({
      name: manifest.name ?? dir.slice(dir.lastIndexOf('node_modules/') + 'node_modules/'.length),
      version: manifest.version ?? 'unknown',
      license: typeof manifest.license === 'string' ? manifest.license : 'see the package',
      dir,
      files,
    });
  }
  return packages.sort((a, b) => (a.name === b.name ? a.version.localeCompare(b.version) : a.name < b.name ? -1 : 1));
}

/** The file's text: a header, an index, then each package's license files. */
export function renderNotices(packages: BundledPackage[]): string {
  const rule = '-'.repeat(78);
  const out = [
    'raft-elector bundles the following third-party packages into dist/raft-elector.mjs and its chunks (dist/*.mjs).',
    'Their license notices follow, one section per package, sorted by name.',
    '',
    ...packages.map((p) => `  ${p.name}@${p.version} (${p.license})`),
    '',
  ];
  for (const p of packages) {
    out.push(rule, `${p.name}@${p.version}`, `License: ${p.license}`, rule, '');
    if (p.files.length === 0) out.push(`The package ships no license file; its package.json says: ${p.license}.`, '');
    for (const file of p.files) out.push(`${file.name}:`, '', file.text, '');
  }
  return out.join('\n');
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const [metafile, output] = process.argv.slice(2);
  if (!metafile || !output) {
    console.error('usage: node build/third-party-licenses.ts <metafile.json> <output>');
    process.exit(2);
  }
  const packages = bundledPackages(metafile);
  writeFileSync(output, renderNotices(packages));
  const bare = packages.filter((p) => p.files.length === 0).map((p) => p.name);
  console.log(`${output}: ${packages.length} packages${bare.length > 0 ? `; without a license file: ${bare.join(', ')}` : ''}`);
}
