/**
 * What the bundle uses instead of iconv-lite: body-parser and raw-body (express.json) ask it
 * only to decode a request body in its charset. iconv-lite carries every legacy code page,
 * 490 KB of the 1 MB entry file, which V8 parses at every start (measured 50–60 ms of a pod's
 * start-up at load 7); the charsets of TextDecoder (WHATWG: UTF-8, UTF-16, the common legacy
 * ones) are plenty for a JSON admin body. An unknown charset throws iconv-lite's message, which
 * raw-body turns into 415 `encoding.unsupported` (UTF-32 JSON is one: TextDecoder lacks it).
 *
 * Erasable TypeScript only: esbuild reads it through the bundle's `alias`.
 */
import { TextDecoder } from 'node:util';

function decoderFor(encoding: string): TextDecoder {
  try {
    return new TextDecoder(String(encoding).toLowerCase());
  } catch {
    throw new Error(`Encoding not recognized: '${encoding}' (searched as: '${String(encoding).toLowerCase()}')`);
  }
}

export function encodingExists(encoding: string): boolean {
  try {
    decoderFor(encoding);
    return true;
  } catch {
    return false;
  }
}

export function getDecoder(encoding: string): { write(chunk: Uint8Array): string; end(): string } {
  const d = decoderFor(encoding);
  return { write: (chunk) => d.decode(chunk, { stream: true }), end: () => d.decode() };
}

export function decode(body: Uint8Array, encoding: string): string {
  return decoderFor(encoding).decode(body);
}

export default { encodingExists, getDecoder, decode };
