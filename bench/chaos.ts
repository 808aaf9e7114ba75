// `npm run chaos [-- --quick]`: the endurance run on the testbed ("nothing lost, load held").
// 1 GiB each way through the tunnel (a Service by name, from the workstation netns) and through
// an intercept (a client in the cluster's node netns, a server in the workstation netns), each
// checked by sha256; 1,000 connections held and cycled through the tunnel and 200 through the
// intercept for 60 s each, twice, counting errors, with the daemon's, manager's and agent's RSS
// before and after each pass; then the workstation server is killed mid-download, which must fail the client.
// Writes bench/results/chaos-latest.json, prints a table on stderr, exits 1 on any failure.
// `--quick`: 64 MiB, 10 s, 200 and 50 connections; --mib, --seconds, --tunnel-connections and
// --intercept-connections set each figure on their own.
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import {
  createNamespace,
  ensureTestbed,
  nodeServerManifest,
  ON_SIGTERM_EXIT,
  telepodInWorkstation,
  startInWorkstation,
} from '../testbed/lib/testbed.ts';
import {
  client,
  deployServers,
  kubectlGet,
  markdownTable,
  NODE_NETNS,
  patternServerManifest,
  percentile,
  round,
  writeResults,
} from './harness.ts';
import { patternSha256, serverScript } from './pattern.ts';
import { agentPid, processUsage, telepodPids } from './rss.ts';

const NS = 'telepod-chaos';
/** The intercepted workload's own answer; the workstation's pattern server answers `ok`. */
const TARGET_SCRIPT = `${ON_SIGTERM_EXIT}require('http').createServer((q, s) => s.end('in-cluster')).listen(8000)`;
/** The port the pattern server listens on, in the workstation netns as in the pods. */
const LOCAL_PORT = 8000;
/** Each load request downloads this much; each held connection carries this many requests. */
const LOAD_BYTES = 16 << 10;
const REQUESTS_PER_CONNECTION = 20;
/** The interrupted download: far more than can arrive before the server is killed (the client
 * needs about a second to start). */
const INTERRUPTED_BYTES = 8 * 2 ** 30;
const INTERRUPT_AFTER_MS = 3000;

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    mib: { type: 'string' },
    seconds: { type: 'string' },
    'tunnel-connections': { type: 'string' },
    'intercept-connections': { type: 'string' },
  },
});
const quick = flags.quick;
function option(
  name: 'mib' | 'seconds' | 'tunnel-connections' | 'intercept-connections',
  full: number,
  short: number,
) {
  const value = Number(flags[name] ?? (quick ? short : full));
  if (!Number.isInteger(value) || value <= 0) throw new Error(`--${name} must be a positive integer`);
  return value;
}
const size = {
  transferBytes: option('mib', 1024, 64) * 2 ** 20,
  loadSeconds: option('seconds', 60, 10),
  tunnelConnections: option('tunnel-connections', 1000, 200),
  interceptConnections: option('intercept-connections', 200, 50),
};

const log = (line: string) => process.stderr.write(`chaos: ${line}\n`);
const mib = (bytes: number) => bytes / 2 ** 20;

type PathName = 'tunnel' | 'intercept';
type Rss = Record<'daemon' | 'manager' | 'agent', number>;
interface Target {
  netns: string;
  url: string;
}

interface Transfer {
  path: PathName;
  direction: 'download' | 'upload';
  bytes: number;
  /** What arrived, counted and hashed by the receiving end; null when the client failed. */
  receivedBytes: number | null;
  sha256: string | null;
  expectedSha256: string;
  MBps: number | null;
  error?: string;
}

interface Load {
  path: PathName;
  /** The first or second run of the same load. */
  pass?: number;
  connections: number;
  seconds: number;
  requests: number;
  connectionsOpened: number;
  errors: number;
  firstErrors: string[];
  latencyMs: { p50: number; p99: number } | null;
  rssMB: { before: Rss; after: Rss };
  error?: string;
}

interface Interrupted {
  bytes: number;
  killedAfterS: number;
  /** The client exited non-zero, and only after the server was killed. */
  failedLoudly: boolean;
  message: string;
  secondsToFail: number;
}

async function transfer(
  path: PathName,
  direction: Transfer['direction'],
  target: Target,
  expectedSha256: string,
) {
  log(`${direction} ${mib(size.transferBytes)} MiB through the ${path}`);
  const base = { path, direction, bytes: size.transferBytes, expectedSha256 };
  try {
    const r = await client<{ MBps: number; bytes: number; sha256: string }>(
      target.netns,
      direction,
      target.url,
      size.transferBytes,
    );
    return { ...base, receivedBytes: r.bytes, sha256: r.sha256, MBps: round(r.MBps, 1) } satisfies Transfer;
  } catch (err) {
    return {
      ...base,
      receivedBytes: null,
      sha256: null,
      MBps: null,
      error: (err as Error).message,
    } satisfies Transfer;
  }
}

async function load(path: PathName, target: Target, connections: number, rss: () => Rss): Promise<Load> {
  log(`${connections} connections through the ${path} for ${size.loadSeconds} s`);
  const before = rss();
  let result: Omit<Load, 'path' | 'connections' | 'seconds' | 'latencyMs' | 'rssMB'> & { samples: number[] };
  try {
    result = await client(
      target.netns,
      'hold',
      target.url,
      connections,
      size.loadSeconds,
      LOAD_BYTES,
      REQUESTS_PER_CONNECTION,
    );
  } catch (err) {
    const error = (err as Error).message;
    result = { requests: 0, connectionsOpened: 0, errors: 0, firstErrors: [], samples: [], error };
  }
  const { samples, ...counts } = result;
  const latencyMs = samples.length
    ? { p50: round(percentile(samples, 50)), p99: round(percentile(samples, 99)) }
    : null;
  return {
    path,
    connections,
    seconds: size.loadSeconds,
    ...counts,
    latencyMs,
    rssMB: { before, after: rss() },
  };
}

/** Kills the workstation's server during a download through the intercept: the client must fail. */
async function interrupt(target: Target, server: ChildProcess): Promise<Interrupted> {
  log(`the workstation server is killed ${INTERRUPT_AFTER_MS} ms into a download through the intercept`);
  const outcome = client(target.netns, 'download', target.url, INTERRUPTED_BYTES).then(
    () => ({ failed: false, message: 'the download reported success', at: Date.now() }),
    (err: Error) => ({ failed: true, message: err.message, at: Date.now() }),
  );
  const early = await Promise.race([outcome, sleep(INTERRUPT_AFTER_MS, undefined)]);
  const killed = Date.now();
  server.kill('SIGKILL');
  const { failed, message, at } = early ?? (await outcome);
  return {
    bytes: INTERRUPTED_BYTES,
    killedAfterS: INTERRUPT_AFTER_MS / 1000,
    failedLoudly: failed && !early,
    message: early ? `ended before the server was killed: ${message}` : message,
    secondsToFail: round(Math.max(0, at - killed) / 1000),
  };
}

/** Every byte arrived, and nothing else. */
const whole = (t: Transfer) => !t.error && t.receivedBytes === t.bytes && t.sha256 === t.expectedSha256;

/** Why the run failed, one line each; empty when nothing was lost and the load held. */
function failures(transfers: Transfer[], loads: Load[], interrupted: Interrupted): string[] {
  return [
    ...transfers
      .filter((t) => !whole(t))
      .map(
        (t) =>
          `${t.direction} through the ${t.path}: ${t.error ?? `${t.receivedBytes} bytes, sha256 ${t.sha256}`}`,
      ),
    ...loads
      .filter((l) => l.error || l.errors > 0)
      .map(
        (l) => `load through the ${l.path}: ${l.error ?? `${l.errors} errors: ${l.firstErrors.join('; ')}`}`,
      ),
    ...(interrupted.failedLoudly ? [] : [`interrupted download: ${interrupted.message}`]),
  ];
}

async function main(): Promise<void> {
  const tb = await ensureTestbed();
  const telepod = (...args: string[]) => telepodInWorkstation(tb, '-n', NS, ...args);
  const must = async (...args: string[]) => {
    const { code, stderr } = await telepod(...args);
    if (code !== 0) throw new Error(`telepod ${args.join(' ')} failed: ${stderr.trim()}`);
  };
  const ws = tb.workstation.netns;
  await telepod('quit');
  const deleteNamespace = await createNamespace(tb, NS);
  const local = startInWorkstation(tb, serverScript);
  try {
    await deployServers(tb, NS, {
      chaos: patternServerManifest(tb, NS, 'chaos', [8000]),
      // Shut down as Kubernetes recommends (out of the Service before it exits). Without the
      // pause, the intercept's rollout let a poll reach the old pod as it exited; the node netns
      // kept that connection's conntrack entry (to the gone address) for 120 s, and a load
      // connection reusing its source port failed with EHOSTUNREACH (CI, stop 25).
      'chaos-target': nodeServerManifest(tb, NS, 'chaos-target', TARGET_SCRIPT, {
        container: { lifecycle: { preStop: { sleep: { seconds: 3 } } } },
      }),
    });
    await must('connect');
    await must('intercept', 'chaos-target', '--port', `${LOCAL_PORT}:8000`);
    const clusterIP = await kubectlGet(tb, NS, ['svc', 'chaos-target'], '{.spec.clusterIP}');
    const targets: Record<PathName, Target> = {
      tunnel: { netns: ws, url: 'http://chaos:8000' },
      intercept: { netns: NODE_NETNS, url: `http://${clusterIP}:8000` },
    };
    // kube-proxy programs a new Service, or the intercept's new endpoints, a moment after the
    // rollout; the pattern server (here or in the workstation) answers `ok`, the target does not.
    await client(ws, 'until', `${targets.tunnel.url}/`, 'ok', 60_000);
    await client(NODE_NETNS, 'until', `${targets.intercept.url}/`, 'ok', 60_000);
    const podUids = (
      await kubectlGet(tb, NS, ['pod', '-l', 'app=chaos-target'], '{.items[*].metadata.uid}')
    ).split(' ');
    const pids = { ...(await telepodPids(telepod)), agent: await agentPid(podUids) };
    const rss = (): Rss => ({
      daemon: processUsage(pids.daemon).rssMB,
      manager: processUsage(pids.manager).rssMB,
      agent: processUsage(pids.agent).rssMB,
    });

    const expectedSha256 = patternSha256(size.transferBytes);
    const transfers: Transfer[] = [];
    for (const path of ['tunnel', 'intercept'] as const) {
      for (const direction of ['download', 'upload'] as const)
        transfers.push(await transfer(path, direction, targets[path], expectedSha256));
    }
    // Each load runs twice: memory that grows again in the second pass, as much as in the first,
    // is a leak; memory that stays where the first pass left it is the heap's working size.
    const loads: Load[] = [];
    for (const pass of [1, 2])
      loads.push({ ...(await load('tunnel', targets.tunnel, size.tunnelConnections, rss)), pass });
    for (const pass of [1, 2])
      loads.push({ ...(await load('intercept', targets.intercept, size.interceptConnections, rss)), pass });
    const interrupted = await interrupt(targets.intercept, local);
    const failed = failures(transfers, loads, interrupted);
    const results = {
      kubernetesVersion: tb.kubernetesVersion,
      date: new Date().toISOString(),
      quick,
      sizes: { ...size, loadBytes: LOAD_BYTES, requestsPerConnection: REQUESTS_PER_CONNECTION },
      transfers,
      loads,
      interrupted,
      failures: failed,
      ok: failed.length === 0,
    };
    await writeResults('chaos-latest.json', results);
    process.stderr.write(table(results));
    if (!results.ok) process.exitCode = 1;
  } finally {
    local.kill();
    await telepod('leave', 'chaos-target', '--restore');
    await telepod('quit');
    await deleteNamespace();
  }
}

function table(r: {
  kubernetesVersion: string;
  quick: boolean;
  transfers: Transfer[];
  loads: Load[];
  interrupted: Interrupted;
  failures: string[];
}): string {
  const transferRows = [
    ['transfer', 'MiB', 'MB/s', 'sha256', 'result'],
    ...r.transfers.map((t) => [
      `${t.direction} through the ${t.path}`,
      `${mib(t.bytes)}`,
      `${t.MBps ?? ''}`,
      t.sha256?.slice(0, 16) ?? '',
      whole(t) ? 'whole' : t.error ? 'FAILED' : 'MISMATCH',
    ]),
  ];
  const rss = (x: Rss) => `${x.daemon} / ${x.manager} / ${x.agent}`;
  const loadRows = [
    [
      'load',
      'conns x s',
      'requests',
      'conns opened',
      'errors',
      'p50 / p99 ms',
      'RSS MB daemon / manager / agent',
    ],
    ...r.loads.map((l) => [
      `through the ${l.path} (pass ${l.pass})`,
      `${l.connections} x ${l.seconds}`,
      `${l.requests}`,
      `${l.connectionsOpened}`,
      l.error ? 'FAILED' : `${l.errors}`,
      l.latencyMs ? `${l.latencyMs.p50} / ${l.latencyMs.p99}` : '',
      `${rss(l.rssMB.before)} -> ${rss(l.rssMB.after)}`,
    ]),
  ];
  const i = r.interrupted;
  return [
    `\nchaos on Kubernetes ${r.kubernetesVersion}${r.quick ? ' (quick)' : ''}`,
    markdownTable(transferRows),
    '',
    markdownTable(loadRows),
    '',
    `server killed ${i.killedAfterS} s into a ${mib(i.bytes)} MiB download: ${i.failedLoudly ? `client failed ${i.secondsToFail} s later` : 'NOT failed'}: ${i.message}`,
    r.failures.length
      ? `\nFAILED:\n${r.failures.map((f) => `- ${f}`).join('\n')}`
      : '\nnothing lost, load held',
    '',
  ].join('\n');
}

await main();
