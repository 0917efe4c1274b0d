import { describe, expect, it } from 'vitest';
import { parseTemplate } from './template.js';

const base = { native: true, containers: [{ name: 'raft-elector', args: ['--kubernetes'] }], volumes: [], dataVolumeName: 'raft-elector-data', secretVolumeName: 'raft-elector-secret' };

describe('the sidecar template file', () => {
  it('reads the per-group Secret suffix when the chart generates the Secret, and none otherwise', () => {
    expect(parseTemplate(JSON.stringify({ ...base, groupSecretSuffix: '-peer' }), 't.json').groupSecretSuffix).toBe('-peer');
    expect('groupSecretSuffix' in parseTemplate(JSON.stringify(base), 't.json')).toBe(false);
  });

  it('refuses a malformed file with an error naming the file and the field', () => {
    expect(() => parseTemplate(JSON.stringify({ ...base, groupSecretSuffix: 'Peer/x' }), 't.json')).toThrow(/t\.json: "groupSecretSuffix"/);
    expect(() => parseTemplate(JSON.stringify({ ...base, native: 'yes' }), 't.json')).toThrow(/t\.json: "native"/);
    expect(() => parseTemplate('{', 't.json')).toThrow(expect.objectContaining({ code: 'INJECTOR_TEMPLATE_INVALID' }) as Error);
  });
});
