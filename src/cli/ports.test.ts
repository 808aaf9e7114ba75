// Proves `--port`/`--expose` values parse into local and remote ports, and bad ones are refused.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TelepodError } from '../protocol/errors.ts';
import { parsePortRequest } from './ports.ts';

test('local only, local:number and local:name', () => {
  assert.deepEqual(parsePortRequest('8000', '--port'), { local: 8000 });
  assert.deepEqual(parsePortRequest('8000:80', '--port'), { local: 8000, remote: '80' });
  assert.deepEqual(parsePortRequest('8000:http', '--port'), { local: 8000, remote: 'http' });
});

test('bad values are usage errors naming the flag', () => {
  for (const bad of ['', 'x', '0', '70000', '8000:', '8000:80:1', '8000:Bad_Name', ':80']) {
    assert.throws(
      () => parsePortRequest(bad, '--port'),
      (err: unknown) => err instanceof TelepodError && err.exitCode === 2 && err.message.startsWith('--port'),
      bad,
    );
  }
});

test('--expose wants a numeric remote port', () => {
  assert.throws(() => parsePortRequest('8000:http', '--expose', true), /not a port number/);
  assert.deepEqual(parsePortRequest('8000:9000', '--expose', true), { local: 8000, remote: '9000' });
});
