// The bench's rootless part: a `telepod run --rootless` session in the workstation netns, held
// open while bench/client.ts measures bulk data and new-connection TTFB from inside its
// namespace (entered as the session's command is), by Service name as for the root daemon.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inWorkstation, waitUntil, type TestbedStatus } from '../testbed/lib/testbed.ts';
import { client } from './harness.ts';

const TELEPOD = fileURLToPath(new URL('../dist/telepod.mjs', import.meta.url));

export interface RootlessMeasurements {
  downloadMBps: number[];
  uploadMBps: number[];
  ttfbSamples: number[];
}

/** Opens a rootless session, runs the measurements in its namespace, and ends the session. */
export async function measureRootless(
  tb: TestbedStatus,
  namespace: string,
  url: string,
  size: { bulkBytes: number; reps: number; sequential: number },
): Promise<RootlessMeasurements> {
  // The rootless daemon's directory (its socket and log) is the bench's own, removed at the end.
  const runDir = await mkdtemp(path.join(os.tmpdir(), 'telepod-bench-rootless-'));
  const telepod = [
    'env',
    `TELEPOD_RUN_DIR=${runDir}`,
    process.execPath,
    '--',
    TELEPOD,
    '--kubeconfig',
    tb.workstation.kubeconfig,
    '-n',
    namespace,
  ];
  // The session's command waits for its stdin to close: the bench ends it by closing it.
  const session = spawn(
    'nsenter',
    [
      `--net=/run/netns/${tb.workstation.netns}`,
      '--',
      ...telepod,
      'run',
      '--rootless',
      '--',
      'sh',
      '-c',
      'cat >/dev/null',
    ],
    { stdio: ['pipe', 'ignore', 'inherit'] },
  );
  const ended = new Promise((resolve) => session.once('exit', resolve));
  try {
    let holder = 0;
    await waitUntil('the rootless session', 60_000, async () => {
      if (session.exitCode !== null)
        throw new Error(`telepod run --rootless exited with ${session.exitCode}`);
      const status = await inWorkstation(tb, telepod[0]!, [
        ...telepod.slice(1),
        '-o',
        'json',
        'status',
        '--rootless',
      ]);
      holder =
        status.code === 0
          ? ((JSON.parse(status.stdout) as { rootless?: { namespacePid: number } }).rootless?.namespacePid ??
            0)
          : 0;
      return holder > 0;
    });
    const inside = [
      `--net=/run/netns/${tb.workstation.netns}`,
      '--',
      'nsenter',
      `--target=${holder}`,
      '--user',
      '--net',
      '--preserve-credentials',
    ];
    const measured: RootlessMeasurements = { downloadMBps: [], uploadMBps: [], ttfbSamples: [] };
    for (const direction of ['download', 'upload'] as const) {
      await client(inside, direction, url, size.bulkBytes >> 2); // slow start and JIT warm-up
      for (let i = 0; i < size.reps; i++) {
        const { MBps } = await client<{ MBps: number }>(inside, direction, url, size.bulkBytes);
        measured[`${direction}MBps`].push(MBps);
      }
    }
    measured.ttfbSamples = (
      await client<{ samples: number[] }>(inside, 'ttfb', url, size.sequential)
    ).samples;
    return measured;
  } finally {
    session.stdin.end();
    await ended;
    await rm(runDir, { recursive: true, force: true });
  }
}
