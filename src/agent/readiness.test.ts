// Unit test of the agent's readiness endpoint, with a real listener: a probe made before the
// agent is registered is held and answered as soon as it is, one held too long is answered 503,
// and garbage gets a 400 without harming the endpoint.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { test } from 'node:test';
import { serveReadiness } from './readiness.ts';

const started = async (holdMs?: number) => {
  const readiness = serveReadiness(0, holdMs);
  await new Promise<void>((resolve) => readiness.server.once('listening', resolve));
  return { readiness, port: (readiness.server.address() as net.AddressInfo).port };
};

/** A GET like the kubelet's: its status, body and when the answer came. */
const probe = (port: number) =>
  new Promise<{ status: number; body: string; at: number }>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/ready', agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode!, body, at: Date.now() }));
      })
      .once('error', reject);
  });

test('a probe before registration is held and answered 200 the moment the agent is ready', async () => {
  const { readiness, port } = await started();
  try {
    let requests = 0;
    const bothArrived = new Promise<void>((resolve) =>
      readiness.server.on('request', () => ++requests === 2 && resolve()),
    );
    // A probe the kubelet gave up on while it was held: ready() then answers it into a closed socket.
    const abandoned = net.connect(port, '127.0.0.1');
    abandoned.write('GET /ready HTTP/1.1\r\nhost: x\r\n\r\n');
    abandoned.on('error', () => undefined);
    const held = probe(port);
    await bothArrived;
    abandoned.destroy();
    // Not answered within 300 ms of arriving (an answer on loopback takes a millisecond).
    const early = await Promise.race([held, new Promise((resolve) => setTimeout(resolve, 300, 'held'))]);
    assert.equal(early, 'held', 'held while not registered');
    const readyAt = Date.now();
    readiness.ready();
    const first = await held;
    assert.equal(first.status, 200);
    assert.equal(first.body, 'ready\n');
    assert.ok(first.at - readyAt < 100, `answered ${first.at - readyAt} ms after ready()`);
    assert.equal((await probe(port)).status, 200, 'later probes are answered at once');
  } finally {
    readiness.server.close();
  }
});

test('a probe held longer than the hold time is answered 503', async () => {
  const { readiness, port } = await started(150);
  try {
    const before = Date.now();
    const answer = await probe(port);
    assert.equal(answer.status, 503);
    assert.match(answer.body, /not registered/);
    assert.ok(answer.at - before >= 140, `answered after ${answer.at - before} ms`);
  } finally {
    readiness.server.close();
  }
});

test('garbage gets a 400 and the endpoint keeps answering', async () => {
  const { readiness, port } = await started();
  try {
    const reply = await new Promise<string>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.write('\x00\xff garbage\r\n\r\n'));
      let text = '';
      socket.setEncoding('latin1').on('data', (chunk: string) => (text += chunk));
      socket.on('close', () => resolve(text));
    });
    assert.match(reply, /^HTTP\/1\.1 400/);
    readiness.ready();
    assert.equal((await probe(port)).status, 200);
  } finally {
    readiness.server.close();
  }
});
