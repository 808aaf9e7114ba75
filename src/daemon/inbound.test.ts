// The daemon's inbound side around an intercept's start and end: a connection announced before
// the manager's answer reached the daemon waits for it, one announced just after a leave is
// still served, and one for an intercept that never comes is refused after the grace time.
import assert from 'node:assert/strict';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import type { InboundEvent, InterceptInfo } from '../protocol/intercept.ts';
import { InboundHandler } from './inbound.ts';
import type { Tunnel } from './tunnel.ts';

const GRACE_MS = 100;
let server: net.Server;
let port: number;

before(async () => {
  server = net.createServer((socket) => socket.end('local'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as net.AddressInfo).port;
});
after(() => server.close());

/** A handler following a fake tunnel: `announce` sends an event; what was opened and refused. */
function setup() {
  const events = new PassThrough();
  const opened: string[] = [];
  const refused: string[] = [];
  const tunnel = {
    inboundEvents: () => events,
    inbound: (conn: string) => {
      opened.push(conn);
      return Promise.resolve(new PassThrough());
    },
    call: (_path: string, body: { conn: string }) => {
      refused.push(body.conn);
      return Promise.resolve();
    },
  } as unknown as Tunnel;
  const handler = new InboundHandler(pino({ level: 'silent' }), undefined, GRACE_MS);
  handler.follow(tunnel);
  const announce = (event: InboundEvent) => events.write(`${JSON.stringify(event)}\n`);
  return { handler, opened, refused, announce, events };
}

const info = (id: string) => ({ id, ports: [{ local: port }] }) as unknown as InterceptInfo;

async function until(what: string, done: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!done()) {
    assert.ok(Date.now() < deadline, `${what} within 5 s`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

test('a connection announced before the intercept is known waits for it', async () => {
  const { handler, opened, refused, announce } = setup();
  announce({ conn: 'c1', intercept: 'i1', local: port });
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(opened, []);
  handler.add(info('i1'));
  await until('the connection to be served', () => opened.length === 1);
  assert.deepEqual(refused, []);
});

test('a connection for an intercept that never comes is refused after the grace time', async () => {
  const { opened, refused, announce } = setup();
  const start = Date.now();
  announce({ conn: 'c2', intercept: 'unknown', local: port });
  await until('the connection to be refused', () => refused.length === 1);
  assert.ok(Date.now() - start >= GRACE_MS - 5, 'not before the grace time');
  assert.deepEqual(opened, []);
});

test('a connection announced just after a leave is still served, a later one is not', async () => {
  const { handler, opened, refused, announce } = setup();
  handler.add(info('i3'));
  handler.remove('i3');
  assert.deepEqual(handler.all, []);
  announce({ conn: 'c3', intercept: 'i3', local: port });
  await until('the connection to be served', () => opened.length === 1);
  await new Promise((resolve) => setTimeout(resolve, GRACE_MS + 20));
  announce({ conn: 'c4', intercept: 'i3', local: port });
  await until('the late connection to be refused', () => refused.length === 1);
  assert.deepEqual(refused, ['c4']);
});

test('a port the intercept does not have is refused at once', async () => {
  const { handler, refused, announce } = setup();
  handler.add(info('i5'));
  announce({ conn: 'c5', intercept: 'i5', local: port + 1 });
  await until('the connection to be refused', () => refused.length === 1);
});

test('lines that are not JSON or not an event are skipped; the events after them are handled', async () => {
  const { handler, opened, announce, events } = setup();
  handler.add(info('i6'));
  events.write('{"conn": \nnull\n{"conn":"x","intercept":"i6","local":"8000"}\n[]\n');
  announce({ conn: 'c6', intercept: 'i6', local: port });
  await until('the connection after the garbage to be served', () => opened.length === 1);
  assert.deepEqual(opened, ['c6']);
});

test('while an intercept request is out, a connection to one of its ports is served before its answer', async () => {
  const { handler, opened, refused, announce } = setup();
  const done = handler.expect([port]);
  announce({ conn: 'c7', intercept: 'not-answered-yet', local: port });
  await until('the relayed connection to be served at once', () => opened.length === 1);
  // Another port of this workstation is not asked for: it waits for an intercept as before.
  announce({ conn: 'c8', intercept: 'not-answered-yet', local: port + 1 });
  await until('the other port to be refused after the grace time', () => refused.length === 1);
  done();
  announce({ conn: 'c9', intercept: 'not-answered-yet', local: port });
  await until('a connection after the answer, of no intercept, to be refused', () => refused.length === 2);
  assert.deepEqual(opened, ['c7']);
  assert.deepEqual(refused, ['c8', 'c9']);
});

test('two requests out for one port: it stays expected until both are answered', async () => {
  const { handler, opened, refused, announce } = setup();
  const first = handler.expect([port]);
  const second = handler.expect([port]);
  first();
  first(); // a second call changes nothing
  announce({ conn: 'c10', intercept: 'x', local: port });
  await until('the connection to be served', () => opened.length === 1);
  second();
  announce({ conn: 'c11', intercept: 'x', local: port });
  await until('a connection after both answers to be refused', () => refused.length === 1);
  assert.deepEqual(refused, ['c11']);
});

test('accepting: whether every local port takes a connection now', async () => {
  const { handler } = setup();
  const closed = net.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const unused = (closed.address() as net.AddressInfo).port;
  await new Promise((resolve) => closed.close(resolve));
  assert.equal(await handler.accepting([port]), true);
  assert.equal(await handler.accepting([port, unused]), false);
});
