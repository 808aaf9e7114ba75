// Proves which CONNECT authorities the manager dials: cluster addresses of both families, and
// never malformed ones, loopback, link-local, unspecified or multicast.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TelepodError } from '../protocol/errors.ts';
import { ForbiddenDestination, parseDestination } from './destinations.ts';

test('cluster addresses of both families are dialled', () => {
  assert.deepEqual(parseDestination('10.96.193.185:8000'), { host: '10.96.193.185', port: 8000 });
  assert.deepEqual(parseDestination('192.168.1.2:1'), { host: '192.168.1.2', port: 1 });
  assert.deepEqual(parseDestination('[fd00:10:96::1]:443'), { host: 'fd00:10:96::1', port: 443 });
});

test('loopback, link-local, unspecified, multicast and mapped addresses are forbidden', () => {
  for (const authority of [
    '127.0.0.1:8081',
    '127.9.9.9:1',
    '0.0.0.0:80',
    '169.254.169.254:80',
    '224.0.0.1:5353',
    '[::1]:8081',
    '[::]:80',
    '[fe80::1]:80',
    '[::ffff:10.0.0.1]:80',
  ]) {
    assert.throws(() => parseDestination(authority), ForbiddenDestination, authority);
  }
});

test('anything but ip:port is a usage error', () => {
  for (const authority of [
    '[',
    ':::',
    'host:80',
    '10.0.0.1',
    '10.0.0.1:0',
    '10.0.0.1:65536',
    '1.2.3:4',
    undefined,
  ]) {
    assert.throws(
      () => parseDestination(authority),
      (err: unknown) => err instanceof TelepodError && !(err instanceof ForbiddenDestination),
      String(authority),
    );
  }
});
