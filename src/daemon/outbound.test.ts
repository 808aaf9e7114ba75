// The outbound listener's accept queue: as deep as the kernel allows (somaxconn), like the
// listeners of Go programs such as kubectl; Node's default of 511 dropped SYNs when 1,000
// connections were opened at once.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import pino from 'pino';
import { startOutboundListener } from './outbound.ts';
import type { Tunnel } from './tunnel.ts';

/** A listening socket's accept-queue size, as `ss` reports it (Send-Q of a LISTEN socket). */
function acceptQueue(port: number): number {
  const line = execFileSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' }).trim();
  return Number(line.split(/\s+/)[2]);
}

test("the outbound listener's accept queue is the kernel's whole one", async () => {
  const server = await startOutboundListener(
    () => assert.fail('no connection is made') as Tunnel,
    pino({ level: 'silent' }),
  );
  try {
    const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
    assert.equal(acceptQueue((server.address() as AddressInfo).port), somaxconn);
  } finally {
    server.close();
  }
});
