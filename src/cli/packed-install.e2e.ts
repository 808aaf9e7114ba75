// e2e on the testbed: `npm pack` → `npm install -g ./telepod-*.tgz` into a fresh prefix gives a
// working `telepod` that needs nothing of this repository: it installs a traffic manager from the
// bundles it carries, connects, reaches a Service by name and disconnects. The package runs no
// build step and has no install scripts of its own.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  createNamespace,
  deploySeed,
  ensureTestbed,
  inWorkstation,
  kubectl,
  telepodInWorkstation,
  type TestbedStatus,
} from '../../testbed/lib/testbed.ts';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const NS = 'telepod-e2e-packed';
const MNS = 'telepod-e2e-packed-manager';
let tb: TestbedStatus;
let deleteNamespace: () => Promise<void>;
let dir: string;
let tarball: string;

/** npm's --json answer for one packed package. */
interface Packed {
  filename: string;
  files: { path: string }[];
}

before(async () => {
  tb = await ensureTestbed();
  await telepodInWorkstation(tb, 'quit');
  deleteNamespace = await createNamespace(tb, NS);
  await deploySeed(tb, NS);
  dir = await mkdtemp(join(tmpdir(), 'telepod-packed-'));
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: REPO });
  const [packed] = JSON.parse(stdout.slice(stdout.indexOf('['))) as Packed[];
  tarball = join(dir, packed!.filename);
  const files = packed!.files.map((f) => f.path).sort();
  // The CLI's on-demand chunks (content-named), the bundles, and no source maps.
  assert.ok(
    files.some((f) => /^dist\/chunk-.+\.mjs$/.test(f)),
    'the CLI chunks are packed',
  );
  assert.deepEqual(
    files.filter((f) => !f.startsWith('dist/chunk-')),
    ['LICENSE', 'README.md', 'dist/agent.mjs', 'dist/manager.mjs', 'dist/telepod.mjs', 'package.json'],
  );
  assert.ok(
    files.every((f) => !f.endsWith('.map')),
    'no source maps',
  );
});

after(async () => {
  const telepod = join(dir, 'prefix', 'bin', 'telepod');
  await inWorkstation(tb, telepod, ['--kubeconfig', tb.workstation.kubeconfig, 'quit']);
  await inWorkstation(tb, telepod, [
    '--kubeconfig',
    tb.workstation.kubeconfig,
    'uninstall',
    '--manager-namespace',
    MNS,
  ]);
  await kubectl(tb, ['delete', 'namespace', MNS, '--ignore-not-found', '--wait=false']);
  await kubectl(tb, [
    'delete',
    'clusterrole,clusterrolebinding',
    `telepod-manager-${MNS}`,
    '--ignore-not-found',
  ]);
  await deleteNamespace?.();
  await rm(dir, { recursive: true, force: true });
});

test('the package carries the bundles and no install scripts; bundled libraries are not dependencies', async () => {
  const { stdout } = await run('tar', ['-xzOf', tarball, 'package/package.json']);
  const manifest = JSON.parse(stdout) as {
    scripts?: Record<string, string>;
    dependencies?: Record<string, string>;
    bin?: Record<string, string>;
  };
  for (const hook of ['preinstall', 'install', 'postinstall', 'prepare'])
    assert.equal(manifest.scripts?.[hook], undefined, `a ${hook} script`);
  // Everything but the native add-on that reads SO_ORIGINAL_DST is inside dist/telepod.mjs.
  assert.deepEqual(Object.keys(manifest.dependencies ?? {}), ['koffi']);
  assert.deepEqual(manifest.bin, { telepod: 'dist/telepod.mjs' });
});

test('installed with npm install -g into a fresh prefix, it connects and reaches a Service', async () => {
  const prefix = join(dir, 'prefix');
  await run(
    'npm',
    ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball],
    {
      cwd: dir,
    },
  );
  const telepod = join(prefix, 'bin', 'telepod');
  // Run from outside the repository, with no NODE_PATH: only the installed package is there.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => name !== 'NODE_PATH'));
  const version = await run(telepod, ['version', '-o', 'json'], { cwd: '/', env });
  assert.equal(
    (JSON.parse(version.stdout) as { version: string }).version,
    (JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { version: string }).version,
  );

  const args = ['--kubeconfig', tb.workstation.kubeconfig, '-n', NS];
  // A manager namespace of its own: the manager is installed from the package's own bundles.
  const connected = await inWorkstation(tb, telepod, [...args, 'connect', '--manager-namespace', MNS]);
  assert.equal(connected.code, 0, connected.stderr);
  const answer = await inWorkstation(tb, 'curl', ['-sS', '--max-time', '10', 'http://service-b:8000/']);
  assert.equal(answer.stdout, 'Hello, world!\n', answer.stderr);
  const status = await inWorkstation(tb, telepod, [...args, 'status', '-o', 'json']);
  const daemon = JSON.parse(status.stdout) as { managerNamespace: string; daemonPid: number };
  assert.equal(daemon.managerNamespace, MNS);
  // The daemon is the installed command too.
  const cmdline = await readFile(`/proc/${daemon.daemonPid}/cmdline`, 'utf8');
  const script = cmdline
    .split('\0')
    .slice(1)
    .find((arg) => !arg.startsWith('-')); // after node's flags
  assert.equal(script, telepod);
  const quit = await inWorkstation(tb, telepod, [...args, 'quit']);
  assert.equal(quit.code, 0, quit.stderr);
});
