// The Node flags of the daemon, the manager and the agents: a Node that did not know one on the
// command line would refuse to start, so this Node (CI's, and the developer's) must start with
// them, and take those each process sets for itself, without a warning.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { LEAN_NODE_FLAGS, RUNTIME_V8_FLAGS } from './node-flags.ts';

test('this Node starts with the flags telepod starts its processes with', () => {
  const script = "process.stdout.write(String(require('node:v8').getHeapStatistics().used_heap_size > 0))";
  const result = spawnSync(process.execPath, [...LEAN_NODE_FLAGS, '-e', script], { encoding: 'utf8' });
  assert.equal(result.stderr, '');
  assert.equal(result.status, 0);
  assert.equal(result.stdout, 'true');
});

test('a flag Node does not know stops it, which is what the test above guards against', () => {
  const result = spawnSync(process.execPath, ['--no-such-v8-flag-for-telepod', '-e', '0'], {
    encoding: 'utf8',
  });
  assert.notEqual(result.status, 0);
});

test('this Node knows the flags each process sets for itself: setting them prints nothing', () => {
  const set = (flags: string[]) =>
    spawnSync(
      process.execPath,
      ['-e', `for (const f of ${JSON.stringify(flags)}) require('node:v8').setFlagsFromString(f)`],
      { encoding: 'utf8' },
    );
  assert.equal(set(RUNTIME_V8_FLAGS).stderr, '');
  // What an unknown one prints, which the assertion above would see.
  assert.match(set(['--no-such-v8-flag-for-telepod=1']).stderr, /unrecognized flag/);
});
