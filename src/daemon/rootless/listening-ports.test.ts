// Unit tests of reading listening ports from /proc/net/tcp{,6}.
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { listeningPorts, parseListeningPorts } from './listening-ports.ts';

const HEADER =
  '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';

test('listeners on loopback or any address count; other addresses and states do not', () => {
  const table =
    HEADER +
    '   0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000 0 1 1\n' + // 127.0.0.1:5432
    '   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0 0 2 1\n' + // 0.0.0.0:8080
    '   2: 0A00000A:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0 0 3 1\n' + // 10.0.0.10:80
    '   3: 0100007F:1538 0100007F:C000 01 00000000:00000000 00:00000000 00000000  1000 0 4 1\n'; // established
  assert.deepEqual(parseListeningPorts(table), [5432, 8080]);
  const v6 =
    HEADER +
    '   0: 00000000000000000000000001000000:0BB8 00000000000000000000000000000000:0000 0A 0 0 0 0 0 1\n' + // ::1:3000
    '   1: 00000000000000000000000000000000:0BB9 00000000000000000000000000000000:0000 0A 0 0 0 0 0 1\n' + // :::3001
    '   2: 20010DB8000000000000000000000001:0BBA 00000000000000000000000000000000:0000 0A 0 0 0 0 0 1\n'; // 2001:db8::1
  assert.deepEqual(parseListeningPorts(v6), [3000, 3001]);
  assert.deepEqual(parseListeningPorts('garbage\n\n  1: x\n'), []);
});

test("this machine's own listener is found", async () => {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    assert.ok((await listeningPorts()).includes((server.address() as net.AddressInfo).port));
  } finally {
    server.close();
  }
});
