// `npm run bench [-- --quick]`: one run on the testbed measuring telepod against
// `kubectl port-forward` to the same pod from the same workstation netns (and the node netns
// straight to the pod IP as the physical limit). Prints a table and writes
// bench/results/latest.json. Absolute times on a shared VM are noise; the ratios are the figures.
import type { ChildProcess } from 'node:child_process';
import { OUTSIDE_NAME, startFakeResolver } from '../testbed/lib/fake-resolver.ts';
import {
  createNamespace,
  ensureTestbed,
  kubectl,
  telepodInWorkstation,
  waitUntil,
} from '../testbed/lib/testbed.ts';
import {
  client,
  deployServers,
  kubectlGet,
  NODE_NETNS,
  patternServerManifest,
  startPortForward,
  median,
  percentile,
  round,
  writeResults,
} from './harness.ts';
import { processUsage, telepodPids, withPeakRss } from './rss.ts';
import { measureRootless } from './rootless.ts';
import { ttfbAtDistance } from './distance.ts';
import { resultsTable } from './report.ts';
import { measureLoop } from './loop.ts';
import { measureConcurrency, measureSustained } from './concurrency.ts';
import { measureBulk } from './bulk.ts';

const NS = 'telepod-bench';
const KUBE_DNS = '10.96.0.10';
const quick = process.argv.includes('--quick');
// Six rounds of concurrent connections: in three full runs of 2026-12-01 (README,
// Performance) single rounds of either path moved between 1.12 and 1.62 s, and the median of
// three put the ratio at 0.96x, 1.16x and 0.89x. Five rounds of bulk transfers: on 2026-12-02
// single 256 MiB downloads by name moved between 139 and 232 MB/s within minutes, and one run's
// three by name against port-forward's were 0.73x, 0.84x and 1.09x of it, taken in turns. The
// rootless transfers (bench/rootless.ts) take as many rounds.
const size = quick
  ? {
      bulkBytes: 16 << 20,
      reps: 1,
      sequential: 100,
      concurrent: 100,
      concurrentRounds: 2,
      sustainedRounds: 2,
      coldRounds: 1,
      dns: 50,
      connects: 1,
    }
  : {
      bulkBytes: 256 << 20,
      reps: 5,
      sequential: 1000,
      concurrent: 1000,
      concurrentRounds: 6,
      sustainedRounds: 10,
      coldRounds: 3,
      dns: 1000,
      connects: 3,
    };
const CONCURRENT_BYTES = 64 << 10;
/** Added each way between the workstation and the API server for the TTFB at a distance. */
const DISTANCE_MS = 5;

const log = (line: string) => process.stderr.write(`bench: ${line}\n`);

interface Samples {
  samples: number[];
}

const latency = (samples: number[]) => ({
  p50: round(percentile(samples, 50)),
  p99: round(percentile(samples, 99)),
});

async function timed(what: () => Promise<{ code: number; stderr: string }>): Promise<number> {
  const start = process.hrtime.bigint();
  const result = await what();
  if (result.code !== 0) throw new Error(result.stderr);
  return Number(process.hrtime.bigint() - start) / 1e9;
}

async function main(): Promise<void> {
  const tb = await ensureTestbed();
  const telepod = (...args: string[]) => telepodInWorkstation(tb, '-n', NS, ...args);
  const ws = tb.workstation.netns;
  await telepod('quit');
  const deleteNamespace = await createNamespace(tb, NS);
  await deployServers(tb, NS, {
    bench: patternServerManifest(tb, NS, 'bench', [8000]),
    // Shut down as Kubernetes recommends: what the loop's rollouts cost others is then telepod's.
    'bench-target': patternServerManifest(tb, NS, 'bench-target', [8000, 8001], 3),
  });
  const pod = await kubectlGet(tb, NS, ['pod', '-l', 'app=bench'], '{.items[0].metadata.name}');
  const podIP = await kubectlGet(tb, NS, ['pod', pod], '{.status.podIP}');
  const clusterIP = await kubectlGet(tb, NS, ['svc', 'bench'], '{.spec.clusterIP}');
  const resolver = await startFakeResolver(tb);
  const children: ChildProcess[] = [];
  try {
    log('DNS to the machine resolver, without telepod');
    const outsideDirect = await client<{ samples: number[] }>(
      ws,
      'dns',
      resolver.nameserver,
      OUTSIDE_NAME,
      size.dns,
    );

    log('connect, cold (manager not installed) and warm');
    await telepod('uninstall');
    await waitUntil(
      'the manager namespace to be gone',
      120_000,
      async () =>
        (await kubectl(tb, ['get', 'namespace', 'telepod', '--ignore-not-found', '-o', 'name'])).trim() ===
        '',
    );
    const cold = await timed(() => telepod('connect'));
    const warmRuns: number[] = [];
    for (let i = 0; i < size.connects; i++) {
      await telepod('quit');
      warmRuns.push(await timed(() => telepod('connect')));
    }
    const { daemon: daemonPid, manager: managerPid } = await telepodPids(telepod);
    const rest = { daemon: processUsage(daemonPid), manager: processUsage(managerPid) };

    const portForward = await startPortForward(tb, NS, pod, 18090);
    children.push(portForward);
    const targets = {
      telepod: { netns: ws, url: `http://bench:8000` },
      telepodPodIP: { netns: ws, url: `http://${podIP}:8000` },
      portForward: { netns: ws, url: 'http://127.0.0.1:18090' },
      direct: { netns: NODE_NETNS, url: `http://${podIP}:8000` },
      // The node netns through the Service's ClusterIP: what kube-proxy's NAT costs on its own.
      directService: { netns: NODE_NETNS, url: `http://${clusterIP}:8000` },
    };
    const bulk = await measureBulk(
      targets,
      { bytes: size.bulkBytes, reps: size.reps },
      { path: 'telepod', daemonPid, managerPid },
      log,
    );
    const throughput = bulk.MBps;

    // One probe of each in turn, so that the paths compared share the machine's moment: measured
    // one block after another (until 2026-12-02), port-forward's own p50 moved between 3.9 and
    // 5.2 ms from run to run. A new name's lookup is judged against a new connection by name, as
    // before, and also compared with one by pod IP, which crosses the tunnel to the manager as
    // the lookup does (a connection by name goes straight to a pod).
    log(`time to first byte and new names' lookups, ${size.sequential} of each, taking turns`);
    const missing = `bench-missing-{i}.${NS}.svc.cluster.local`;
    const turns = await client<{ samples: number[][] }>(
      ws,
      'rotate',
      size.sequential,
      `ttfb:${targets.telepod.url}`,
      `ttfb:${targets.portForward.url}`,
      `ttfb:${targets.telepodPodIP.url}`,
      `dns:${resolver.nameserver}:${missing}`,
    );
    const [ttfbTelepod, ttfbPortForward, ttfbTunnel, uncachedTelepod] = turns.samples.map((samples) => ({
      samples,
    })) as [Samples, Samples, Samples, Samples];

    log('rootless: bulk data and new-connection TTFB from inside a `run --rootless` namespace');
    const rootless = await measureRootless(tb, NS, targets.telepod.url, size);

    log(
      `${size.concurrent} concurrent connections: a first round of each, then ${size.concurrentRounds} rounds of the tunnel and port-forward taking turns`,
    );
    // The peaks over these rounds too: each connection's objects outlive the young generation,
    // so many at once grow the daemon's heap as bulk data does not (docs/connect.md, "Memory"),
    // most in rounds of the tunnel alone, back to back.
    const pids = { daemon: daemonPid, manager: managerPid };
    const { result: concurrency, peakRssMB: concurrencyPeakRssMB } = await withPeakRss(pids, () =>
      measureConcurrency(
        ws,
        { telepod: targets.telepod.url, portForward: targets.portForward.url },
        { connections: size.concurrent, bytes: CONCURRENT_BYTES, rounds: size.concurrentRounds },
      ),
    );
    log(
      `${size.sustainedRounds} rounds of ${size.concurrent} concurrent connections through the tunnel, back to back`,
    );
    const { result: sustained, peakRssMB: sustainedPeakRssMB } = await withPeakRss(pids, () =>
      measureSustained(ws, targets.telepod.url, {
        connections: size.concurrent,
        bytes: CONCURRENT_BYTES,
        rounds: size.sustainedRounds,
      }),
    );

    log(`DNS, ${size.dns} lookups each`);
    const fqdn = `bench.${NS}.svc.cluster.local`;
    const dnsTelepod = await client<{ samples: number[] }>(ws, 'dns', resolver.nameserver, fqdn, size.dns);
    const dnsDirect = await client<{ samples: number[] }>(NODE_NETNS, 'dns', KUBE_DNS, fqdn, size.dns);
    const outsideTelepod = await client<{ samples: number[] }>(
      ws,
      'dns',
      resolver.nameserver,
      OUTSIDE_NAME,
      size.dns,
    );
    const uncachedDirect = await client<{ samples: number[] }>(
      NODE_NETNS,
      'dns',
      KUBE_DNS,
      missing,
      size.dns,
    );
    const leaked = resolver.asked.filter((name) => name.endsWith('.cluster.local'));
    if (leaked.length)
      throw new Error(`cluster names reached the machine's resolver: ${leaked.slice(0, 3).join(', ')}`);

    const loop = await measureLoop(tb, NS, size, log);
    await telepod('quit');

    log(`time to first byte with the API server ${DISTANCE_MS * 2} ms further away (round trip)`);
    const distant = await ttfbAtDistance(tb, NS, pod, targets.telepod.url, size.sequential >> 1, DISTANCE_MS);

    const ratio = (a: number, b: number) => round(a / b);
    const downloadRatio = ratio(throughput.download.telepod!, throughput.download.portForward!);
    const uploadRatio = ratio(throughput.upload.telepod!, throughput.upload.portForward!);
    const results = {
      kubernetesVersion: tb.kubernetesVersion,
      date: new Date().toISOString(),
      quick,
      sizes: { ...size, concurrentBytes: CONCURRENT_BYTES },
      throughput: {
        downloadMBps: throughput.download,
        uploadMBps: throughput.upload,
        runs: bulk.runs,
        ratioVsPortForward: Math.min(downloadRatio, uploadRatio),
        ratioVsPortForwardByDirection: { download: downloadRatio, upload: uploadRatio },
        ratioVsDirect: {
          download: ratio(throughput.download.telepod!, throughput.download.direct!),
          upload: ratio(throughput.upload.telepod!, throughput.upload.direct!),
        },
      },
      ttfbMs: {
        telepod: latency(ttfbTelepod.samples),
        portForward: latency(ttfbPortForward.samples),
        throughTunnel: latency(ttfbTunnel.samples),
      },
      ttfbAtDistanceMs: {
        addedRoundTripMs: 2 * DISTANCE_MS,
        telepod: latency(distant.telepod),
        portForward: latency(distant.portForward),
        ratio: {
          p50: ratio(percentile(distant.telepod, 50), percentile(distant.portForward, 50)),
          p99: ratio(percentile(distant.telepod, 99), percentile(distant.portForward, 99)),
        },
      },
      rootless: {
        downloadMBps: round(median(rootless.downloadMBps), 1),
        uploadMBps: round(median(rootless.uploadMBps), 1),
        ttfbMs: latency(rootless.ttfbSamples),
        ratioVsPortForward: {
          download: ratio(median(rootless.downloadMBps), throughput.download.portForward!),
          upload: ratio(median(rootless.uploadMBps), throughput.upload.portForward!),
          ttfbP50: ratio(percentile(rootless.ttfbSamples, 50), percentile(ttfbPortForward.samples, 50)),
          ttfbP99: ratio(percentile(rootless.ttfbSamples, 99), percentile(ttfbPortForward.samples, 99)),
        },
        ratioVsRootDaemon: {
          download: ratio(median(rootless.downloadMBps), throughput.download.telepod!),
          upload: ratio(median(rootless.uploadMBps), throughput.upload.telepod!),
          ttfbP50: ratio(percentile(rootless.ttfbSamples, 50), percentile(ttfbTelepod.samples, 50)),
        },
      },
      concurrency,
      sustained,
      dnsMs: {
        telepod: latency(dnsTelepod.samples),
        direct: latency(dnsDirect.samples),
        uncached: {
          telepod: latency(uncachedTelepod.samples),
          direct: latency(uncachedDirect.samples),
          vsTunnelTtfbP50: ratio(percentile(uncachedTelepod.samples, 50), percentile(ttfbTunnel.samples, 50)),
          vsTtfbP50: ratio(percentile(uncachedTelepod.samples, 50), percentile(ttfbTelepod.samples, 50)),
        },
        nonCluster: { telepod: latency(outsideTelepod.samples), direct: latency(outsideDirect.samples) },
      },
      connectS: { warm: round(median(warmRuns)), cold: round(cold) },
      interceptS: {
        withRollout: loop.withRollout,
        withRolloutRuns: loop.withRolloutRuns,
        plainRollout: loop.plainRollout,
        plainRolloutRuns: loop.plainRolloutRuns,
        agentPresent: loop.agentPresent,
        afterLeave: loop.afterLeave,
        afterLeaveRuns: loop.afterLeaveRuns,
      },
      switchFailures: loop.switching,
      interceptTtfbMs: {
        intercepted: latency(loop.interceptedTtfb),
        servedInCluster: latency(ttfbTelepod.samples),
      },
      personalInterceptTtfbMs: {
        noIntercept: latency(loop.noAgent),
        othersRequests: latency(loop.filtered),
        ratio: {
          p50: ratio(percentile(loop.filtered, 50), percentile(loop.noAgent, 50)),
          p99: ratio(percentile(loop.filtered, 99), percentile(loop.noAgent, 99)),
        },
      },
      rssMB: { daemon: rest.daemon.rssMB, manager: rest.manager.rssMB, agent: loop.agentRssMB },
      underLoad: {
        peakRssMB: bulk.peakRssMB,
        cpuPercent: bulk.cpuPercent,
        concurrencyPeakRssMB,
        sustainedPeakRssMB,
      },
      goals: {
        throughputVsPortForward: { goal: '>= 0.9', met: Math.min(downloadRatio, uploadRatio) >= 0.9 },
        ttfbP50VsPortForward: {
          goal: '<= port-forward',
          met: percentile(ttfbTelepod.samples, 50) <= percentile(ttfbPortForward.samples, 50),
        },
        dnsP50VsDirect: {
          goal: '<= 2x direct',
          met: percentile(dnsTelepod.samples, 50) <= 2 * percentile(dnsDirect.samples, 50),
        },
        connectWarm: { goal: '<= 2 s', met: median(warmRuns) <= 2 },
        connectCold: { goal: '<= 20 s', met: cold <= 20 },
        concurrencyErrors: { goal: '0', met: concurrency.errors + sustained.errors === 0 },
        concurrencyWallTimeVsPortForward: {
          goal: '<= 1.0x',
          met: concurrency.wallTimeVsPortForward <= 1,
        },
        ttfbP99VsPortForward: {
          goal: '<= 1.5x',
          met: percentile(ttfbTelepod.samples, 99) <= 1.5 * percentile(ttfbPortForward.samples, 99),
        },
        uncachedDnsWithinOneRoundTrip: {
          goal: '<= TTFB p50',
          met: percentile(uncachedTelepod.samples, 50) <= percentile(ttfbTelepod.samples, 50),
        },
        daemonRssUnderLoad: {
          goal: '<= 100 MB',
          met: Math.max(bulk.peakRssMB.daemon, concurrencyPeakRssMB.daemon, sustainedPeakRssMB.daemon) <= 100,
        },
        reinterceptAfterLeave: { goal: '<= 0.5 s', met: loop.afterLeave <= 0.5 },
        coldIntercept: { goal: '<= 3 s', met: loop.withRollout <= 3 },
        noFailedRequestsWhileSwitching: {
          goal: '0',
          met: Object.values(loop.switching).every((phase) => phase.failed === 0),
        },
      },
    };
    await writeResults('latest.json', results);
    process.stdout.write(resultsTable(results));
  } finally {
    for (const child of children) child.kill();
    await telepod('quit');
    await resolver.stop();
    await deleteNamespace();
  }
}

await main();
