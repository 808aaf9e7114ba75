// Unit tests of gather-logs: secret values and tokens are redacted, and the archive holds the
// parts under telepod-logs/.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { redact, REDACTED, writeArchive } from './gather-logs.ts';

test('secret values, bearer tokens and JWTs are redacted; short values are left', () => {
  const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW0ifQ.c2lnbmF0dXJlLWJ5dGVz';
  const text = `password=hunter22 DB=ab Authorization: Bearer abcdefgh12345 token ${jwt}`;
  assert.equal(
    redact(text, ['hunter22', 'ab']),
    `password=${REDACTED} DB=ab Authorization: Bearer ${REDACTED} token ${REDACTED}`,
  );
});

test('a value is also redacted as a JSON string carries it', () => {
  const secret = 'line one\n"quoted"';
  assert.equal(redact(JSON.stringify({ env: secret }), [secret]), `{"env":"${REDACTED}"}`);
});

test('an existing file or link is never written through', () => {
  const dir = mkdtempSync(join(tmpdir(), 'telepod-archive-'));
  try {
    const archive = join(dir, 'logs.tar.gz');
    symlinkSync('/etc/passwd', archive);
    assert.throws(() => writeArchive(archive, [{ name: 'a', text: 'b' }], []), /cannot create/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the archive holds each part, redacted, under telepod-logs/', () => {
  const dir = mkdtempSync(join(tmpdir(), 'telepod-archive-'));
  try {
    const archive = join(dir, 'logs.tar.gz');
    writeArchive(
      archive,
      [
        { name: 'daemon.log', text: 'the secret is s3cr3t-value\n' },
        { name: 'ns/pod/c.log', text: 'ok\n' },
      ],
      ['s3cr3t-value'],
    );
    assert.equal(statSync(archive).mode & 0o777, 0o600);
    execFileSync('tar', ['-xzf', archive, '-C', dir]);
    assert.equal(
      readFileSync(join(dir, 'telepod-logs', 'daemon.log'), 'utf8'),
      `the secret is ${REDACTED}\n`,
    );
    assert.equal(readFileSync(join(dir, 'telepod-logs', 'ns_pod_c.log'), 'utf8'), 'ok\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
