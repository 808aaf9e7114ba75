// The tunnel keeper's redial: a tunnel that closes is dialled again with the session's token,
// and a keeper closed while a redial is in flight closes the tunnel that redial brings.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import type { SessionGrant } from '../protocol/paths.ts';
import type { Tunnel } from './tunnel.ts';
import { TunnelKeeper } from './tunnel-keeper.ts';

/** Just what the keeper uses of a Tunnel: its grant, its close event and close(). */
class FakeTunnel {
  closedByKeeper = false;
  private listener: ((reason: string) => void) | undefined;
  constructor(readonly grant: SessionGrant) {}
  onClose(listener: (reason: string) => void): void {
    this.listener = listener;
  }
  /** The port-forward dropped. */
  drop(): void {
    this.listener?.('test');
  }
  close(): void {
    this.closedByKeeper = true;
  }
}

const grant = { id: 'session-1', token: 'token-1' } as SessionGrant;
const log = pino({ level: 'silent' });

/** A dial whose answers the test hands out one at a time. */
function manualDial() {
  const pending: { token: string | undefined; answer: (tunnel: FakeTunnel) => void }[] = [];
  const waiters: (() => void)[] = [];
  const dial = (token?: string) =>
    new Promise<Tunnel>((resolve) => {
      pending.push({ token, answer: (t) => resolve(t as unknown as Tunnel) });
      waiters.splice(0).forEach((wake) => wake());
    });
  const next = async () => {
    while (!pending.length) await new Promise<void>((resolve) => waiters.push(resolve));
    return pending.shift()!;
  };
  return { dial, next };
}

test('a dropped tunnel is dialled again with the session token and replaces the old one', async () => {
  const { dial, next } = manualDial();
  const starting = TunnelKeeper.start(dial, log);
  const first = new FakeTunnel(grant);
  (await next()).answer(first);
  const keeper = await starting;
  const seen: [Tunnel, boolean][] = [];
  keeper.onTunnel = (tunnel, resumed) => seen.push([tunnel, resumed]);

  first.drop();
  assert.equal(keeper.state.up, false);
  const redial = await next();
  assert.equal(redial.token, grant.token);
  const second = new FakeTunnel(grant);
  redial.answer(second);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(keeper.current, second as unknown as Tunnel);
  assert.deepEqual(seen, [[second, true]]);
  assert.equal(keeper.state.up, true);
  keeper.close();
  assert.equal(second.closedByKeeper, true);
});

test('closed while a redial is in flight: the tunnel it brings is closed, not kept', async () => {
  const { dial, next } = manualDial();
  const starting = TunnelKeeper.start(dial, log);
  const first = new FakeTunnel(grant);
  (await next()).answer(first);
  const keeper = await starting;
  let announced = false;
  keeper.onTunnel = () => (announced = true);

  first.drop();
  const redial = await next();
  keeper.close();
  const late = new FakeTunnel(grant);
  redial.answer(late);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(late.closedByKeeper, true, 'the tunnel dialled after close() was left open');
  assert.equal(announced, false);
  assert.equal(keeper.reconnects, 0);
});
