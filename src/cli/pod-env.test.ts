// Proves the env-file syntaxes: docker (no quoting, multi-line values left out and named),
// sh (single quotes that survive any value) and JSON; files are written with mode 0600.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { formatEnv, writeEnvFiles } from './pod-env.ts';

const env = { B: 'two words', A: "it's", C: 'line1\nline2' };

test('docker syntax: sorted KEY=value lines, multi-line values skipped by name', () => {
  assert.deepEqual(formatEnv(env, 'docker'), { text: "A=it's\nB=two words\n", skipped: ['C'] });
});

test('sh syntax survives quotes and line breaks when sourced', () => {
  const { text } = formatEnv(env, 'sh');
  const out = execFileSync('sh', ['-c', `${text} printf '%s|%s|%s' "$A" "$B" "$C"`]).toString();
  assert.equal(out, "it's|two words|line1\nline2");
});

test('sh syntax leaves out names a shell cannot export, so a name is never code', () => {
  const hostile = { ok: '1', 'a;touch /tmp/pwned;b': 'x', 'my.var': 'y' };
  const { text, skipped } = formatEnv(hostile, 'sh');
  assert.equal(text, "export ok='1'\n");
  assert.deepEqual(skipped, ['a;touch /tmp/pwned;b', 'my.var']);
});

test('files are created, and re-written, with mode 0600', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'telepod-env-'));
  try {
    const envFile = join(dir, 'app.env');
    const envJson = join(dir, 'app.json');
    await writeFile(envJson, '{}', { mode: 0o644 });
    await writeEnvFiles({ A: '1' }, { envFile, envSyntax: 'docker', envJson });
    assert.equal((await stat(envFile)).mode & 0o777, 0o600);
    assert.equal((await stat(envJson)).mode & 0o777, 0o600);
    assert.deepEqual(JSON.parse(await readFile(envJson, 'utf8')), { A: '1' });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
