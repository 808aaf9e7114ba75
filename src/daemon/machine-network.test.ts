// The machine's network as the daemon reads it: IPv4 resolvers only, cluster subnets by CIDR.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { inSubnets, machineNameservers } from './machine-network.ts';

test("the machine's IPv4 nameservers, in order; others are left out", () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'telepod-resolv-'));
  try {
    const file = path.join(dir, 'resolv.conf');
    writeFileSync(
      file,
      '# comment\nnameserver 10.0.0.2\nnameserver fd00::1\nsearch example\nnameserver 1.1.1.1\n',
    );
    assert.deepEqual(machineNameservers(file), ['10.0.0.2', '1.1.1.1']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an address is in the cluster when one of its subnets holds it', () => {
  const cluster = inSubnets(['10.244.0.0/16', '10.96.0.0/12']);
  assert.equal(cluster('10.244.3.7'), true);
  assert.equal(cluster('10.100.0.1'), true);
  assert.equal(cluster('10.245.0.1'), false);
  assert.equal(cluster('fd00::1'), false);
  assert.equal(cluster('not an address'), false);
});
