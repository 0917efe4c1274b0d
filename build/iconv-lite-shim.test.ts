import { describe, expect, it } from 'vitest';
import { decode, encodingExists, getDecoder } from './iconv-lite-shim.ts';

describe('the bundle\'s iconv-lite shim', () => {
  it('decodes a body streamed in chunks that split a character, in UTF-8 and UTF-16LE, without the BOM', () => {
    const utf8 = Buffer.from('\uFEFF{"to":"web-ä€"}', 'utf8');
    const d = getDecoder('UTF-8');
    expect(d.write(utf8.subarray(0, 16)) + d.write(utf8.subarray(16)) + d.end()).toBe('{"to":"web-ä€"}');
    expect(decode(Buffer.from('{"a":"é"}', 'utf16le'), 'utf-16le')).toBe('{"a":"é"}');
    expect(encodingExists('latin1')).toBe(true);
  });

  it('refuses an unknown charset with the message raw-body turns into 415 encoding.unsupported', () => {
    expect(encodingExists('utf-32')).toBe(false);
    // raw-body's test: /^Encoding not recognized: /
    expect(() => getDecoder('utf-32')).toThrow(/^Encoding not recognized: /);
    expect(() => decode(Buffer.from('x'), 'x-nonsense')).toThrow(/^Encoding not recognized: /);
  });
});
