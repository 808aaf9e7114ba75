// e2e on the testbed: on a terminal (a pty made by util-linux `script`, sized as a real one is),
// connect and intercept show each slow step with its elapsed time on stderr; `-o json` on the
// same terminal prints its JSON alone and no progress.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import {
  createNamespace,
  deploySeed,
  ensureTestbed,
  inWorkstation,
  telepodInWorkstation,
  type TestbedStatus,
} from '../../testbed/lib/testbed.ts';

const NS = 'telepod-e2e-progress';
const TELEPOD = fileURLToPath(new URL('../../dist/telepod.mjs', import.meta.url));
let tb: TestbedStatus;
let deleteNamespace: () => Promise<void>;
let dir: string;

const quote = (word: string) => `'${word.replaceAll("'", "'\\''")}'`;

/** Runs telepod on a 120×40 pseudo-terminal in the workstation netns; answers what the terminal showed. */
async function onTerminal(args: string[], stdoutFile?: string): Promise<{ code: number; screen: string }> {
  const command = [
    process.execPath,
    '--',
    TELEPOD,
    '--kubeconfig',
    tb.workstation.kubeconfig,
    '-n',
    NS,
    ...args,
  ]
    .map(quote)
    .join(' ');
  const redirect = stdoutFile ? ` > ${quote(stdoutFile)}` : '';
  const result = await inWorkstation(tb, 'script', [
    '-qefc',
    `stty cols 120 rows 40; ${command}${redirect}`,
    '/dev/null',
  ]);
  return { code: result.code, screen: result.stdout };
}

/** The lines a terminal keeps: a carriage return or a move to column 1 starts the line over. */
const keptLines = (screen: string) =>
  screen.split('\n').map(
    (line) =>
      line
        .split(/\r|\x1b\[1G/) // eslint-disable-line no-control-regex
        .map((part) => part.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')) // eslint-disable-line no-control-regex
        .filter(Boolean)
        .pop()
        ?.trim() ?? '',
  );

before(async () => {
  tb = await ensureTestbed();
  await telepodInWorkstation(tb, 'quit');
  deleteNamespace = await createNamespace(tb, NS);
  await deploySeed(tb, NS);
  dir = await mkdtemp(join(tmpdir(), 'telepod-progress-'));
});

after(async () => {
  await telepodInWorkstation(tb, 'quit');
  await deleteNamespace?.();
  await rm(dir, { recursive: true, force: true });
});

test('connect and intercept show each step with its elapsed time', async () => {
  const connected = await onTerminal(['connect']);
  assert.equal(connected.code, 0, connected.screen);
  const connectLines = keptLines(connected.screen);
  for (const step of [
    /^✔ starting the telepod daemon \(\d+\.\d s\)$/,
    /^✔ checking the traffic manager in namespace telepod \(\d+\.\d s\)$/,
    /^✔ waiting for the traffic manager pod to be ready \(\d+\.\d s\)$/,
    /^✔ opening the tunnel to telepod-manager-\S+ \(\d+\.\d s\)$/,
    /^✔ routing the cluster subnets and DNS names here \(\d+\.\d s\)$/,
  ]) {
    assert.ok(
      connectLines.some((line) => step.test(line)),
      `${step} in:\n${connectLines.join('\n')}`,
    );
  }
  assert.ok(
    connectLines.some((line) => line.startsWith('connected to context') && line.includes(`namespace ${NS};`)),
    connectLines.join('\n'),
  );

  const intercepted = await onTerminal(['intercept', 'service-b', '--port', '18080:8000']);
  assert.equal(intercepted.code, 0, intercepted.screen);
  const lines = keptLines(intercepted.screen);
  const steps = lines.filter((line) => /^✔ .* \(\d+\.\d s\)$/.test(line));
  assert.ok(steps[0]?.startsWith('✔ asking the traffic manager for service-b'), steps.join('\n'));
  // The agent's injection rolls the Deployment out: its progress is shown as it goes (read four
  // times a second: a rollout done before the next read shows as its last step, which is described
  // only once the Deployment changed).
  assert.ok(
    steps.some(
      (line) =>
        line.startsWith('✔ rolling out deployment/service-b: ') ||
        line.startsWith('✔ waiting for the telepod agent of deployment/service-b'),
    ),
    steps.join('\n'),
  );
  assert.ok(
    steps.some((line) => line.startsWith("✔ mounting the pod's volumes")),
    steps.join('\n'),
  );
  assert.ok(
    lines.some((line) => line.startsWith('intercepted Deployment')),
    lines.join('\n'),
  );
  const left = await telepodInWorkstation(tb, '-n', NS, 'leave', 'service-b', '--restore');
  assert.equal(left.code, 0, left.stderr);
});

test('-o json on a terminal prints the JSON alone, without progress', async () => {
  await telepodInWorkstation(tb, 'quit');
  const file = join(dir, 'status.json');
  const connected = await onTerminal(['-o', 'json', 'connect'], file);
  assert.equal(connected.code, 0, connected.screen);
  const status = JSON.parse(await readFile(file, 'utf8')) as { connected: boolean; namespace: string };
  assert.equal(status.connected, true);
  assert.equal(status.namespace, NS);
  assert.doesNotMatch(connected.screen, /✔|✖|starting the telepod daemon/);
});
