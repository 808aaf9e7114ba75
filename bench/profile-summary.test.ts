// Unit test of the profile summary: self time by module and function, idle left out, bundle
// positions named through a resolver, Node.js internals by subsystem.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { moduleOf, summarizeProfile, type CpuProfile } from './profile-summary.ts';

const frame = (functionName: string, url = '', lineNumber = 0) => ({
  functionName,
  url,
  lineNumber,
  columnNumber: 0,
});

test('self time is split by module and function; idle time is not busy time', () => {
  const profile: CpuProfile = {
    startTime: 0,
    endTime: 100_000, // 100 ms over 10 hits: 10 ms a hit
    nodes: [
      { id: 1, hitCount: 0, callFrame: frame('(root)') },
      { id: 2, hitCount: 5, callFrame: frame('(idle)') },
      { id: 3, hitCount: 2, callFrame: frame('send', 'file:///opt/telepod/manager.mjs', 0) },
      { id: 4, hitCount: 1, callFrame: frame('frame', 'file:///opt/telepod/manager.mjs', 7) },
      { id: 5, hitCount: 1, callFrame: frame('onStreamRead', 'node:internal/stream_base_commons', 9) },
      { id: 6, hitCount: 1, callFrame: frame('(garbage collector)') },
    ],
  };
  const resolve = (_url: string, line: number) =>
    line === 0
      ? { source: '../node_modules/ws/lib/sender.js', line: 300 }
      : { source: '../src/manager/inbound.ts', line: 42 };
  const summary = summarizeProfile(profile, resolve);
  assert.equal(summary.wallMs, 100);
  assert.equal(summary.busyMs, 50);
  assert.deepEqual(summary.modules, [
    { name: 'ws', ms: 20, percent: 40 },
    { name: 'src/manager/inbound.ts', ms: 10, percent: 20 },
    { name: 'node:stream_base_commons', ms: 10, percent: 20 },
    { name: '(garbage collector)', ms: 10, percent: 20 },
  ]);
  assert.deepEqual(summary.functions[0], { name: 'send ws:300', ms: 20, percent: 40 });
  assert.ok(summary.functions.some((f) => f.name === 'frame src/manager/inbound.ts:42'));
  assert.ok(summary.functions.some((f) => f.name === 'onStreamRead node:internal/stream_base_commons:10'));
});

test('a position the resolver does not know is named by its bundle and line', () => {
  const profile: CpuProfile = {
    startTime: 0,
    endTime: 1000,
    nodes: [{ id: 1, hitCount: 1, callFrame: frame('x', 'file:///dist/telepod.mjs', 4) }],
  };
  const summary = summarizeProfile(profile, () => undefined);
  assert.deepEqual(summary.functions, [{ name: 'x telepod.mjs:5', ms: 1, percent: 100 }]);
});

test('modules: scoped and plain packages, telepod sources', () => {
  assert.equal(moduleOf('../node_modules/@kubernetes/client-node/dist/x.js'), '@kubernetes/client-node');
  assert.equal(moduleOf('../node_modules/ws/lib/receiver.js'), 'ws');
  assert.equal(moduleOf('../src/kube/spdy.ts'), 'src/kube/spdy.ts');
});
