// Proves the manager's HTTP/2 endpoint answers health and version, and 404 for anything else.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { MANAGER_PATHS } from '../protocol/paths.ts';
import { PROTOCOL_VERSION, TELEPOD_VERSION } from '../protocol/version.ts';
import { createManagerServer } from './server.ts';

const server = createManagerServer({ dnsServer: '127.0.0.1' });
let client: http2.ClientHttp2Session;

before(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});
after(() => {
  client.close();
  server.close();
});

async function get(path: string): Promise<{ status: number; body: string }> {
  const req = client.request({ ':path': path });
  let status = 0;
  req.on('response', (headers) => (status = Number(headers[':status'])));
  req.setEncoding('utf8');
  let body = '';
  for await (const chunk of req) body += chunk as string;
  return { status, body };
}

test('health answers ok', async () => {
  assert.deepEqual(await get(MANAGER_PATHS.health), { status: 200, body: 'ok\n' });
});

test('version reports package and protocol versions', async () => {
  const { status, body } = await get(MANAGER_PATHS.version);
  assert.equal(status, 200);
  assert.deepEqual(JSON.parse(body), { version: TELEPOD_VERSION, protocol: PROTOCOL_VERSION });
});

test('unknown paths get 404', async () => {
  assert.equal((await get('/nope')).status, 404);
});
