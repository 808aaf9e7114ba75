// e2e on the testbed: completion looks names up in the real cluster as the user — the workloads
// of the namespace typed on the line (or the config file's), the namespaces for -n, the contexts
// of the kubeconfig — and a config file's namespace is what connect then uses.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  createNamespace,
  deploySeed,
  ensureTestbed,
  inWorkstation,
  telepodInWorkstation,
  telepodWithEnv,
  type TestbedStatus,
} from '../../../testbed/lib/testbed.ts';

const NS = 'telepod-e2e-complete';
let tb: TestbedStatus;
let deleteNamespace: () => Promise<void>;
let dir: string;

/** What `telepod __complete` offers for a command line (its last word is being completed). */
async function candidates(env: Record<string, string>, ...words: string[]): Promise<string[]> {
  const result = await telepodWithEnv(tb, env, '__complete', '--', ...words);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stderr, '');
  return result.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split('\t')[0]!);
}

before(async () => {
  tb = await ensureTestbed();
  await telepodInWorkstation(tb, 'quit');
  deleteNamespace = await createNamespace(tb, NS);
  await deploySeed(tb, NS);
  dir = await mkdtemp(join(tmpdir(), 'telepod-complete-'));
});

after(async () => {
  await telepodInWorkstation(tb, 'quit');
  await deleteNamespace?.();
  await rm(dir, { recursive: true, force: true });
});

test("the workloads of the line's namespace, the cluster's namespaces, the kubeconfig's contexts", async () => {
  assert.deepEqual(await candidates({}, '-n', NS, 'intercept', 'serv'), ['service-a', 'service-b']);
  assert.deepEqual(await candidates({}, 'leave', '--namespace', NS, ''), ['service-a', 'service-b']);
  assert.deepEqual(await candidates({}, '-n', NS, 'run', '--swap-deployment', 'service-b'), ['service-b']);
  const namespaces = await candidates({}, 'connect', '-n', 'telepod-e2e-com');
  assert.deepEqual(namespaces, [NS]);
  assert.ok((await candidates({}, 'status', '--context', '')).length > 0);
});

test("a config file's namespace is what completion and connect use", async () => {
  const config = join(dir, 'config.yaml');
  await writeFile(config, `namespace: ${NS}\n`);
  const env = { TELEPOD_CONFIG: config };
  assert.deepEqual(await candidates(env, 'intercept', ''), ['service-a', 'service-b']);
  const connected = await telepodWithEnv(tb, env, 'connect');
  assert.equal(connected.code, 0, connected.stderr);
  const status = await telepodWithEnv(tb, env, 'status', '-o', 'json');
  assert.equal((JSON.parse(status.stdout) as { namespace: string }).namespace, NS);
  // The name resolves in the file's namespace: service-b there answers.
  const answer = await inWorkstation(tb, 'curl', ['-sS', '--max-time', '10', 'http://service-b:8000/']);
  assert.equal(answer.stdout, 'Hello, world!\n', answer.stderr);
  // The variable wins over the file, and the flag over both: with a file naming another
  // namespace, only they find the workloads.
  const other = join(dir, 'other.yaml');
  await writeFile(other, 'namespace: default\n');
  assert.deepEqual(await candidates({ TELEPOD_CONFIG: other }, 'intercept', 'serv'), []);
  const both = ['service-a', 'service-b'];
  assert.deepEqual(
    await candidates({ TELEPOD_CONFIG: other, TELEPOD_NAMESPACE: NS }, 'intercept', 'serv'),
    both,
  );
  assert.deepEqual(
    await candidates({ TELEPOD_CONFIG: other, TELEPOD_NAMESPACE: 'default' }, '-n', NS, 'intercept', 'serv'),
    both,
  );
});
