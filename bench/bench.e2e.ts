// Keeps the benchmark working: `npm run bench -- --quick` on the testbed exits 0 and writes
// bench/results/latest.json with every field the README's Performance table is built from.
// The goals are reported by the benchmark, not asserted here (timings on a shared VM vary).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const REPO = fileURLToPath(new URL('..', import.meta.url));

const positive = (value: unknown, name: string) =>
  assert.ok(
    typeof value === 'number' && value > 0,
    `${name} should be a positive number, is ${String(value)}`,
  );

test(
  'bench --quick measures everything in one run and writes latest.json',
  { timeout: 600_000 },
  async () => {
    const started = Date.now();
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--quick'], {
        cwd: REPO,
        stdio: ['ignore', 'inherit', 'inherit'],
      });
      child.on('error', reject).on('exit', resolve);
    });
    assert.equal(code, 0);
    process.stdout.write(`# bench --quick took ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
    const r = JSON.parse(await readFile(new URL('results/latest.json', import.meta.url), 'utf8')) as Record<
      string,
      Record<string, Record<string, unknown>>
    > & { kubernetesVersion: string; date: string; quick: boolean };
    assert.match(r.kubernetesVersion, /^v1\.\d+\.\d+/);
    assert.ok(Date.now() - Date.parse(r.date) < 600_000, 'latest.json is from this run');
    assert.equal(r.quick, true);
    for (const direction of ['downloadMBps', 'uploadMBps']) {
      for (const path of ['telepod', 'telepodPodIP', 'portForward', 'direct']) {
        positive(r.throughput![direction]![path], `throughput.${direction}.${path}`);
      }
    }
    positive(r.throughput!.ratioVsPortForward, 'throughput.ratioVsPortForward');
    for (const [group, keys] of [
      ['ttfbMs', ['telepod', 'portForward', 'throughTunnel']],
      ['dnsMs', ['telepod', 'direct']],
    ] as const) {
      for (const key of keys) {
        const value = r[group]![key] as { p50: number; p99: number };
        positive(value.p50, `${group}.${key}.p50`);
        assert.ok(value.p99 >= value.p50, `${group}.${key}.p99 >= p50`);
      }
    }
    // TTFB with the API server further away: telepod and port-forward both measured through it.
    for (const key of ['telepod', 'portForward']) {
      const value = r.ttfbAtDistanceMs![key] as { p50: number };
      assert.ok(value.p50 > 10, `${key}'s TTFB at a distance includes the added 10 ms (${value.p50})`);
    }
    // A new name's lookup, measured in turns with the connections, against the tunnel's TTFB.
    for (const key of ['vsTtfbP50', 'vsTunnelTtfbP50'])
      positive((r.dnsMs!.uncached as Record<string, number>)[key], `dnsMs.uncached.${key}`);
    assert.equal(r.concurrency!.connections, 100);
    assert.equal((r.concurrency!.runs as unknown as number[]).length, 2, 'two measured rounds');
    for (const key of ['telepod', 'portForward'])
      positive((r.concurrency!.firstRound as Record<string, number>)[key], `concurrency.firstRound.${key}`);
    positive(r.concurrency!.wallTimeVsPortForward, 'concurrency.wallTimeVsPortForward');
    assert.equal(typeof r.concurrency!.errors, 'number');
    assert.equal((r.sustained!.runs as unknown as number[]).length, 2, 'two rounds back to back');
    assert.equal(typeof r.sustained!.errors, 'number');
    for (const key of ['warm', 'cold']) positive(r.connectS![key], `connectS.${key}`);
    for (const key of ['withRollout', 'plainRollout', 'agentPresent', 'afterLeave'])
      positive(r.interceptS![key], `interceptS.${key}`);
    // The cluster client polled through every phase of the loop, and was answered in each.
    for (const phase of [
      'intercept (rollout)',
      'intercept of a second port',
      'leave',
      're-intercept',
      'leave --restore (rollout)',
    ]) {
      const polled = r.switchFailures![phase] as { answered: number; failed: number } | undefined;
      assert.ok(polled, `switchFailures has the phase ${phase}`);
      positive(polled.answered, `requests answered during ${phase}`);
    }
    for (const key of ['daemon', 'manager', 'agent']) positive(r.rssMB![key], `rssMB.${key}`);
    for (const phase of ['peakRssMB', 'concurrencyPeakRssMB', 'sustainedPeakRssMB'])
      for (const key of ['daemon', 'manager'])
        positive((r.underLoad![phase] as Record<string, number>)[key], `underLoad.${phase}.${key}`);
    for (const key of ['p50', 'p99'])
      positive(r.personalInterceptTtfbMs!.ratio![key], `personal ratio ${key}`);
    // Rootless: measured from inside a `run --rootless` namespace, next to the root daemon's.
    for (const key of ['download', 'upload', 'ttfbP50', 'ttfbP99'])
      positive((r.rootless!.ratioVsPortForward as Record<string, number>)[key], `rootless ratio ${key}`);
    for (const key of ['download', 'upload', 'ttfbP50'])
      positive((r.rootless!.ratioVsRootDaemon as Record<string, number>)[key], `rootless vs root ${key}`);
  },
);
