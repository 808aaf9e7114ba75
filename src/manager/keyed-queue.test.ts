// Work for one key runs one piece at a time, in order, even after a failure; other keys do not wait.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KeyedQueue } from './keyed-queue.ts';

test('pieces of one key run in order, one at a time; a failure does not stop the next', async () => {
  const queue = new KeyedQueue();
  const seen: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const first = queue.run('a', async () => {
    seen.push('first start');
    await gate;
    seen.push('first end');
    throw new Error('first failed');
  });
  const second = queue.run('a', () => {
    seen.push('second');
    return Promise.resolve(2);
  });
  const other = await queue.run('b', () => Promise.resolve('b ran'));
  assert.equal(other, 'b ran'); // while key a's first piece still waits
  assert.deepEqual(seen, ['first start']);
  release();
  await assert.rejects(first, /first failed/);
  assert.equal(await second, 2);
  assert.deepEqual(seen, ['first start', 'first end', 'second']);
});
