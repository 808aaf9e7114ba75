// The workstation netns has no resolver of its own: this puts a small one at the address
// /etc/resolv.conf names (on the netns's loopback). It answers A queries for *.telepod-e2e.test
// with OUTSIDE_ADDRESS, NXDOMAIN otherwise, and records every name it is asked.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { inWorkstation, type TestbedStatus } from './testbed.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
export const OUTSIDE_NAME = 'www.telepod-e2e.test';
export const OUTSIDE_ADDRESS = '192.0.2.10';

const SCRIPT = `
const dgram = require('dgram'); const packet = require('dns-packet');
const s = dgram.createSocket('udp4');
s.on('message', (m, from) => {
  const q = packet.decode(m); const name = q.questions[0].name; const type = q.questions[0].type;
  console.log(name);
  const ours = name.endsWith('telepod-e2e.test');
  // dns-packet takes the rcode from the low bits of flags (3 = NXDOMAIN), not from an rcode field.
  s.send(packet.encode({ id: q.id, type: 'response', flags: packet.RECURSION_AVAILABLE | (ours ? 0 : 3),
    questions: q.questions, answers: ours && type === 'A' ? [{ name, type: 'A', ttl: 1, data: '${OUTSIDE_ADDRESS}' }] : [] }),
    from.port, from.address);
});
s.bind(53, process.argv[1], () => console.log('ready'));
`;

export interface FakeResolver {
  nameserver: string;
  /** Every name asked so far; clear it with `asked.length = 0`. */
  asked: string[];
  stop(): Promise<void>;
}

export async function startFakeResolver(tb: TestbedStatus): Promise<FakeResolver> {
  const nameserver = /^nameserver\s+(\d+\.\d+\.\d+\.\d+)/m.exec(
    readFileSync('/etc/resolv.conf', 'utf8'),
  )?.[1];
  if (!nameserver) throw new Error('/etc/resolv.conf names no IPv4 nameserver');
  await inWorkstation(tb, 'ip', ['addr', 'add', `${nameserver}/32`, 'dev', 'lo']);
  const asked: string[] = [];
  const child = spawn(
    'nsenter',
    [`--net=/run/netns/${tb.workstation.netns}`, '--', process.execPath, '-e', SCRIPT, nameserver],
    { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve) => {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      for (const line of chunk.split('\n').filter(Boolean)) {
        if (line === 'ready') resolve();
        else asked.push(line);
      }
    });
  });
  return {
    nameserver,
    asked,
    stop: async () => {
      child.kill();
      await inWorkstation(tb, 'ip', ['addr', 'del', `${nameserver}/32`, 'dev', 'lo']);
    },
  };
}
