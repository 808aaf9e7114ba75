// Unit tests of the daemon's log file: rotation past the cap keeps one older file, and the
// level comes from $TELEPOD_LOG_LEVEL when it names a level.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { daemonLogLevel, rotateIfLarge, rotatingDestination } from './log-file.ts';

test('a log past its cap moves to .1 (replacing the older one) and a new file starts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'telepod-log-'));
  try {
    const file = join(dir, 'daemon.log');
    assert.equal(rotateIfLarge(file, 100), false, 'no file yet');
    writeFileSync(`${file}.1`, 'oldest');
    writeFileSync(file, 'x'.repeat(101));
    const { destination, stop } = rotatingDestination(file, 100); // rotates at start
    destination.write('fresh line\n');
    assert.equal(readFileSync(`${file}.1`, 'utf8'), 'x'.repeat(101));
    assert.equal(readFileSync(file, 'utf8'), 'fresh line\n');
    destination.write('y'.repeat(200));
    assert.equal(rotateIfLarge(file, 100), true);
    destination.reopen();
    destination.write('after\n');
    assert.equal(readFileSync(file, 'utf8'), 'after\n');
    assert.ok(statSync(`${file}.1`).size > 100);
    assert.ok(!existsSync(`${file}.2`), 'one older file only');
    stop();
    destination.end();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the level is $TELEPOD_LOG_LEVEL when it names one, else info', () => {
  assert.equal(daemonLogLevel({ TELEPOD_LOG_LEVEL: 'debug' }), 'debug');
  assert.equal(daemonLogLevel({ TELEPOD_LOG_LEVEL: 'verbose' }), 'info');
  assert.equal(daemonLogLevel({}), 'info');
});
