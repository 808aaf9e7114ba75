// `npm run profile [-- --quick]`: CPU profiles of both ends of the tunnel — the daemon on the
// workstation and the traffic manager in its pod — under the benchmark's loads (bulk data each
// way, sequential new connections, concurrent connections), taken through each process's own
// inspector (SIGUSR1, closed again afterwards) so nothing is restarted or built differently.
// Prints where each process spent its time by module and function, with CPU time per
// connection, and writes bench/results/profile-latest.json; the raw profiles (for Chrome
// DevTools) go to bench/profiles/. For the testbed only: while a profile is taken, whoever can
// reach a process's 127.0.0.1:9229 (any developer who may port-forward to the manager pod)
// could run code in it.
import { spawn } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { createNamespace, ensureTestbed, telepodInWorkstation, waitUntil } from '../testbed/lib/testbed.ts';
import { client, deployServers, patternServerManifest, REPO, round, writeResults } from './harness.ts';
import {
  bundleSourceMaps,
  summarizeProfile,
  type CpuProfile,
  type ProfileSummary,
} from './profile-summary.ts';
import { processUsage, telepodPids } from './rss.ts';

const NS = 'telepod-profile';
const INSPECTOR_PORT = 9229;
const quick = process.argv.includes('--quick');
const size = quick
  ? { bulkBytes: 32 << 20, sequential: 200, concurrent: 200 }
  : { bulkBytes: 256 << 20, sequential: 1000, concurrent: 1000 };
const PROFILES = path.join(REPO, 'bench', 'profiles');

const log = (line: string) => process.stderr.write(`profile: ${line}\n`);

/** A profile being taken of process `pid`; `stop()` ends it and gives its file. */
async function startProfiling(pid: number, file: string): Promise<{ stop: () => Promise<string> }> {
  process.kill(pid, 'SIGUSR1'); // opens the inspector on 127.0.0.1 in the process's netns
  const child = spawn(
    'nsenter',
    [
      `--target=${pid}`,
      '--net',
      '--',
      process.execPath,
      '--import',
      'tsx',
      'bench/inspector-profile.ts',
      String(INSPECTOR_PORT),
      file,
    ],
    // Its own process group: a Ctrl-C of the driver reaches it only as its stdin closing.
    { cwd: REPO, stdio: ['pipe', 'pipe', 'inherit'], detached: true },
  );
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  await new Promise<void>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (c: string) => c.includes('started') && resolve());
    void exited.then((code) => reject(new Error(`profiling ${pid} ended early (exit ${code})`)));
  });
  return {
    stop: async () => {
      child.stdin.end();
      const code = await exited;
      if (code !== 0) throw new Error(`profiling ${pid} failed (exit ${code})`);
      return file;
    },
  };
}

interface Measured {
  summary: ProfileSummary;
  cpuS: number;
}

/**
 * Runs `load` while both processes are profiled; each one's summary and CPU seconds (from
 * /proc, so the profiler's own cost is in it too).
 */
async function profiled(
  name: string,
  pids: { daemon: number; manager: number },
  load: () => Promise<unknown>,
): Promise<Record<'daemon' | 'manager', Measured>> {
  log(name);
  const resolve = bundleSourceMaps(path.join(REPO, 'dist'));
  const sessions = {
    daemon: await startProfiling(pids.daemon, path.join(PROFILES, `${name}-daemon.cpuprofile`)),
    manager: await startProfiling(pids.manager, path.join(PROFILES, `${name}-manager.cpuprofile`)),
  };
  const before = { daemon: processUsage(pids.daemon).cpuS, manager: processUsage(pids.manager).cpuS };
  await load();
  const cpu = {
    daemon: processUsage(pids.daemon).cpuS - before.daemon,
    manager: processUsage(pids.manager).cpuS - before.manager,
  };
  const result = {} as Record<'daemon' | 'manager', Measured>;
  for (const end of ['daemon', 'manager'] as const) {
    const file = await sessions[end].stop();
    const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
    result[end] = { summary: summarizeProfile(profile, resolve), cpuS: round(cpu[end]) };
  }
  return result;
}

function report(name: string, measured: Record<'daemon' | 'manager', Measured>, perUnit?: [number, string]) {
  for (const [end, { summary, cpuS }] of Object.entries(measured)) {
    const unit = perUnit ? `, ${round((1000 * cpuS) / perUnit[0], 3)} ms CPU per ${perUnit[1]}` : '';
    process.stdout.write(`\n## ${name}: ${end} (${cpuS} s CPU in ${summary.wallMs / 1000} s${unit})\n`);
    process.stdout.write('by module (self time, % of busy):\n');
    for (const m of summary.modules) process.stdout.write(`  ${String(m.percent).padStart(5)}%  ${m.name}\n`);
    process.stdout.write('by function:\n');
    for (const f of summary.functions)
      process.stdout.write(`  ${String(f.percent).padStart(5)}%  ${f.name}\n`);
  }
}

async function main(): Promise<void> {
  const tb = await ensureTestbed();
  const telepod = (...args: string[]) => telepodInWorkstation(tb, '-n', NS, ...args);
  const ws = tb.workstation.netns;
  const url = 'http://bench:8000';
  await mkdir(PROFILES, { recursive: true });
  const deleteNamespace = await createNamespace(tb, NS);
  try {
    await deployServers(tb, NS, { bench: patternServerManifest(tb, NS, 'bench', [8000]) });
    const connected = await telepod('connect');
    if (connected.code !== 0) throw new Error(connected.stderr);
    const pids = await telepodPids(telepod);
    // A Service made again under the same name: the cluster DNS may answer its old address for
    // up to 30 s (CoreDNS's cache) when this runs again soon after.
    await waitUntil('the Service to answer by its name', 60_000, () =>
      client(ws, 'ttfb', url, 1).then(
        () => true,
        () => false,
      ),
    );
    // Warm-up, untimed and unprofiled: JIT, TCP slow start, the first connections' setup.
    await client(ws, 'download', url, size.bulkBytes >> 2);
    await client(ws, 'ttfb', url, 50);

    const mb = size.bulkBytes >> 20;
    const download = await profiled('download', pids, () => client(ws, 'download', url, size.bulkBytes));
    const upload = await profiled('upload', pids, () => client(ws, 'upload', url, size.bulkBytes));
    const ttfb = await profiled('ttfb', pids, () => client(ws, 'ttfb', url, size.sequential));
    const concurrent = await profiled('concurrent', pids, () =>
      client(ws, 'concurrent', url, size.concurrent, 64 << 10),
    );
    report(`download ${mb} MiB`, download, [mb, 'MiB']);
    report(`upload ${mb} MiB`, upload, [mb, 'MiB']);
    report(`${size.sequential} sequential new connections`, ttfb, [size.sequential, 'connection']);
    report(`${size.concurrent} concurrent connections`, concurrent, [size.concurrent, 'connection']);
    await writeResults('profile-latest.json', {
      date: new Date().toISOString(),
      quick,
      sizes: size,
      download,
      upload,
      ttfb,
      concurrent,
    });
  } finally {
    await telepod('quit');
    await deleteNamespace();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
