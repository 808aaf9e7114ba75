// Proves the CLI skeleton: version output, global flags before or after the command, and
// clear non-zero exits for bad input.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { TELEPOD_VERSION } from '../protocol/version.ts';

function telepod(...args: string[]) {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    encoding: 'utf8',
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

test('version -o json prints the version as one JSON object', () => {
  const { code, stdout } = telepod('version', '-o', 'json');
  assert.equal(code, 0);
  assert.equal((JSON.parse(stdout) as { version: string }).version, TELEPOD_VERSION);
});

test('global flags are accepted before and after the command name', () => {
  const before = telepod('--output', 'json', '-n', 'ns1', '--context', 'c', 'version');
  const afterwards = telepod('version', '--kubeconfig', '/nonexistent', '--log-level', 'debug', '-o', 'json');
  assert.equal(before.code, 0);
  assert.equal(afterwards.code, 0);
  assert.deepEqual(JSON.parse(before.stdout), JSON.parse(afterwards.stdout));
});

test('text output names the version', () => {
  const { code, stdout } = telepod('version');
  assert.equal(code, 0);
  assert.match(stdout, new RegExp(`^telepod ${TELEPOD_VERSION.replaceAll('.', '\\.')} `));
});

test('an unknown flag exits 2 with one clear line and no stack trace', () => {
  const { code, stdout, stderr } = telepod('version', '--bogus');
  assert.equal(code, 2);
  assert.equal(stdout, '');
  assert.equal(stderr.trim(), "telepod: unknown option '--bogus'");
});

test('a bad flag value exits 2 and names the allowed values', () => {
  const { code, stderr } = telepod('version', '-o', 'xml');
  assert.equal(code, 2);
  assert.match(stderr, /Allowed choices are text, json, yaml/);
  assert.doesNotMatch(stderr, /\n\s+at /);
});

test('an unknown command exits 2', () => {
  const { code, stderr } = telepod('frobnicate');
  assert.equal(code, 2);
  assert.match(stderr, /unknown command 'frobnicate'/);
});

test('--help lists the working commands with one line each', () => {
  const { code, stdout } = telepod('--help');
  assert.equal(code, 0);
  assert.match(stdout, /^ {2}version +print the version of telepod$/m);
});
