// e2e on the testbed: `telepod gather-logs` during an intercept of a workload whose environment
// holds a Secret writes an archive with the daemon's, the manager's and the agent's logs and
// `status`, and the Secret's value is nowhere in it.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import {
  applyManifest,
  createNamespace,
  ensureTestbed,
  kubectl,
  nodeServerManifest,
  ON_SIGTERM_EXIT,
  telepodInWorkstation,
  waitForRollout,
  type TestbedStatus,
} from '../../testbed/lib/testbed.ts';

const run = promisify(execFile);
const NS = 'telepod-e2e-gather';
const SECRET = `s3cret-${process.pid}-value`;
let tb: TestbedStatus;
let deleteNamespace: () => Promise<void>;
let dir: string;

const telepod = (...args: string[]) => telepodInWorkstation(tb, '-n', NS, ...args);

before(async () => {
  tb = await ensureTestbed();
  await telepod('quit');
  deleteNamespace = await createNamespace(tb, NS);
  await kubectl(tb, ['-n', NS, 'create', 'secret', 'generic', 'creds', `--from-literal=password=${SECRET}`]);
  const app = `${ON_SIGTERM_EXIT}require('http').createServer((q, s) => s.end('app')).listen(8000)`;
  await applyManifest(
    tb,
    nodeServerManifest(tb, NS, 'keeper', app, {
      container: {
        env: [{ name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'creds', key: 'password' } } }],
      },
    }),
  );
  await waitForRollout(tb, NS, 'keeper');
  dir = await mkdtemp(join(tmpdir(), 'telepod-gather-'));
});

after(async () => {
  await telepod('quit');
  await deleteNamespace?.();
  await rm(dir, { recursive: true, force: true });
});

test("gather-logs: the daemon's, the manager's and the agent's logs and status, and no Secret value", async () => {
  const envFile = join(dir, 'env.json');
  const intercepted = await telepod('intercept', 'keeper', '--port', '8125:http', '--env-json', envFile);
  assert.equal(intercepted.code, 0, intercepted.stderr);
  // The Secret reached the workstation with the pod's environment: it is there to leak.
  assert.equal((JSON.parse(await readFile(envFile, 'utf8')) as Record<string, string>).DB_PASSWORD, SECRET);
  const archive = join(dir, 'logs.tar.gz');
  const gathered = await telepod('gather-logs', '--file', archive, '-o', 'json');
  assert.equal(gathered.code, 0, gathered.stderr);
  await run('tar', ['-xzf', archive, '-C', dir]);
  const files = await readdir(join(dir, 'telepod-logs'));
  assert.ok(files.includes('daemon.log'), files.join(', '));
  assert.ok(files.includes('status.json'), files.join(', '));
  assert.ok(
    files.some((f) => /^telepod_telepod-manager-.*_manager\.log$/.test(f)),
    files.join(', '),
  );
  assert.ok(
    files.some((f) => f.startsWith(`${NS}_keeper-`) && f.endsWith('_telepod-agent.log')),
    files.join(', '),
  );
  const status = JSON.parse(await readFile(join(dir, 'telepod-logs', 'status.json'), 'utf8')) as {
    intercepts: { workload: string }[];
  };
  assert.equal(status.intercepts[0]?.workload, 'keeper');
  for (const file of files) {
    assert.doesNotMatch(await readFile(join(dir, 'telepod-logs', file), 'utf8'), new RegExp(SECRET), file);
  }
  assert.equal((await telepod('leave', 'keeper', '--restore')).code, 0);
});
