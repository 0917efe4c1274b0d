/**
 * The image's bundle: dist/cmd/raft-elector.js and what it reaches, minified into
 * `<outdir>/raft-elector.mjs` plus one chunk file per lazily imported part, all in
 * `<outdir>` (flat, so cluster/data-dir-lock.ts finds its native binding beside
 * whichever chunk holds it), then esbuild's metafile and THIRD_PARTY_LICENSES from it.
 *
 *   node build/bundle.ts <outdir> <metafile-output> <licenses-output>
 *
 * Code splitting keeps `import()` lazy: a single file holds every module's source
 * whether it runs or not (the in-cluster client and the injector in a `--peers`
 * member), and V8 keeps that source in memory: 106 MB RSS against 79 MB split,
 * measured for a `--peers` member with --max-semi-space-size=1.
 *
 * Run by Node.js itself (type stripping), in the image build and in `npm run
 * bundle`, so it uses only erasable TypeScript.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { build } from 'esbuild';
import { bundledPackages, renderNotices } from './third-party-licenses.ts';

/** iconv-lite (express.json's charsets) costs start-up time and memory for code pages nobody sends: see the shim. */
const IconvShim = resolve(import.meta.dirname, 'iconv-lite-shim.ts');

/** The CommonJS dependencies (express, ws, pino) require Node built-ins at run time. */
const RequireBanner = "import{createRequire as __raftElectorCreateRequire}from'node:module';const require=__raftElectorCreateRequire(import.meta.url);";

export async function bundle(outdir: string, metafilePath: string, licensesOutput: string): Promise<{ files: string[] }> {
  // A chunk's name holds its hash: chunks of an earlier build would otherwise stay beside these.
  rmSync(outdir, { recursive: true, force: true });
  const result = await build({
    entryPoints: { 'raft-elector': 'dist/cmd/raft-elector.js' },
    bundle: true,
    splitting: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    minify: true,
    legalComments: 'eof',
    banner: { js: RequireBanner },
    outdir,
    outExtension: { '.js': '.mjs' },
    chunkNames: '[name]-[hash]',
    metafile: true,
    alias: { 'iconv-lite': IconvShim },
    logLevel: 'warning',
  });
  writeFileSync(metafilePath, JSON.stringify(result.metafile));
  writeFileSync(licensesOutput, renderNotices(bundledPackages(metafilePath)));
  return { files: Object.keys(result.metafile.outputs).sort() };
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const [outdir, metafile, licenses] = process.argv.slice(2);
  if (!outdir || !metafile || !licenses) {
    console.error('usage: node build/bundle.ts <outdir> <metafile-output> <licenses-output>');
    process.exit(2);
  }
  const { files } = await bundle(outdir, metafile, licenses);
  console.log(`${outdir}: ${files.length} files (${files.filter((f) => f.endsWith('.mjs')).length} modules), licenses in ${licenses}`);
}
