// Unit test of the agent's postStart hook command, run as the kubelet would run it: it waits
// while nothing listens, while the answer is held and while it is not 200, returns once the
// agent answers 200, and fails at its limit when the agent never does.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { test } from 'node:test';
import { readinessHookCommand } from './agent-start-hook.ts';

/** Runs the command; resolves with its exit code and when it exited. */
function run(command: string[]): Promise<{ code: number | null; at: number }> {
  const child = spawn(command[0]!, command.slice(1), { stdio: 'ignore' });
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, at: Date.now() })));
}

/** A port nothing listens on (yet). */
async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test('waits while the port is closed, the answer held or not 200; returns once answered 200', async () => {
  const port = await freePort();
  const hook = run(readinessHookCommand(port));
  let release: () => void = () => undefined;
  let refused = 0;
  const asked = new Promise<void>((resolve) => {
    const server = http.createServer((_req, res) => {
      // The first two asks get the answer of an agent held too long (not registered yet).
      if (++refused <= 2) return res.writeHead(503).end('not registered\n');
      release = () => {
        res.end('ready\n');
        server.close();
      };
      resolve();
    });
    // The agent opens its port a moment after the hook started asking.
    setTimeout(() => server.listen(port, '127.0.0.1'), 300);
  });
  await asked;
  const early = await Promise.race([hook, new Promise((resolve) => setTimeout(resolve, 300, 'waiting'))]);
  assert.equal(early, 'waiting', 'still waiting while the answer is held');
  const releasedAt = Date.now();
  release();
  const { code, at } = await hook;
  assert.equal(code, 0);
  assert.ok(at - releasedAt < 2_000, `returned ${at - releasedAt} ms after the answer`);
});

test('fails at its limit when the agent never answers 200, so the kubelet restarts it', async () => {
  const started = Date.now();
  const { code, at } = await run(readinessHookCommand(await freePort(), 500));
  assert.equal(code, 1);
  assert.ok(at - started >= 500, `returned after ${at - started} ms`);
});
