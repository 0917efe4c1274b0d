import { describe, expect, it } from 'vitest';
import { isLoopbackAddress } from './loopback.js';

// The end-to-end 403 test (server.test.ts) needs a non-loopback interface on the machine;
// this covers the address forms a socket can report on any machine.
describe('isLoopbackAddress', () => {
  it.each(['127.0.0.1', '127.1.2.3', '::1', '0:0:0:0:0:0:0:1', '0000:0000:0000:0000:0000:0000:0000:0001', '::ffff:127.0.0.1', '::FFFF:127.0.0.9'])(
    'accepts %s',
    (address) => expect(isLoopbackAddress(address)).toBe(true),
  );

  it.each([
    '10.0.0.1',
    '192.0.2.2',
    '0.0.0.0',
    '128.0.0.1',
    '::',
    '::2',
    '1::1',
    'fe80::1',
    '::ffff:10.0.0.1',
    '::ffff:7f00:1', // the hex spelling of a mapped address is not what Node reports; refuse rather than guess
    'localhost',
    '',
    undefined,
    null,
  ])('refuses %s', (address) => expect(isLoopbackAddress(address)).toBe(false));
});
