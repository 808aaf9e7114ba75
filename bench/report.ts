// The benchmark's printed report: one Markdown table of telepod against kubectl port-forward
// and the direct path, and whether each goal of #17 was met in this run.
import { markdownTable } from './harness.ts';
import type { ConcurrencyResult } from './concurrency.ts';
import type { SwitchResult } from './switch-poller.ts';

/** The benchmark's results as the table the README's Performance section shows, and its goals. */
export function resultsTable(r: {
  throughput: { downloadMBps: Record<string, number>; uploadMBps: Record<string, number> };
  ttfbMs: Record<'telepod' | 'portForward' | 'throughTunnel', { p50: number; p99: number }>;
  ttfbAtDistanceMs: {
    addedRoundTripMs: number;
    telepod: { p50: number; p99: number };
    portForward: { p50: number; p99: number };
    ratio: { p50: number; p99: number };
  };
  rootless: {
    downloadMBps: number;
    uploadMBps: number;
    ttfbMs: { p50: number; p99: number };
    ratioVsPortForward: Record<'download' | 'upload' | 'ttfbP50' | 'ttfbP99', number>;
  };
  dnsMs: {
    telepod: { p50: number; p99: number };
    direct: { p50: number; p99: number };
    uncached: Record<'telepod' | 'direct', { p50: number; p99: number }> & {
      vsTtfbP50: number;
      vsTunnelTtfbP50: number;
    };
    nonCluster: Record<'telepod' | 'direct', { p50: number }>;
  };
  concurrency: ConcurrencyResult;
  connectS: { warm: number; cold: number };
  interceptS: { withRollout: number; plainRollout: number; agentPresent: number; afterLeave: number };
  switchFailures: SwitchResult;
  interceptTtfbMs: { intercepted: { p50: number }; servedInCluster: { p50: number } };
  personalInterceptTtfbMs: {
    noIntercept: { p50: number; p99: number };
    othersRequests: { p50: number; p99: number };
    ratio: { p50: number; p99: number };
  };
  rssMB: Record<string, number>;
  underLoad: Record<
    'peakRssMB' | 'concurrencyPeakRssMB' | 'sustainedPeakRssMB',
    Record<'daemon' | 'manager', number>
  >;
  goals: Record<string, { goal: string; met: boolean }>;
  kubernetesVersion: string;
  quick: boolean;
}): string {
  const d = r.throughput.downloadMBps;
  const u = r.throughput.uploadMBps;
  const x = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
  const rows: string[][] = [
    ['metric', 'telepod', 'port-forward', 'direct (node netns)', 'telepod / port-forward'],
    [
      'download MB/s (Service name)',
      `${d.telepod}`,
      `${d.portForward}`,
      `${d.directService}`,
      x(d.telepod!, d.portForward!),
    ],
    ['download MB/s (pod IP)', `${d.telepodPodIP}`, '', `${d.direct}`, x(d.telepodPodIP!, d.portForward!)],
    [
      'upload MB/s (Service name)',
      `${u.telepod}`,
      `${u.portForward}`,
      `${u.directService}`,
      x(u.telepod!, u.portForward!),
    ],
    ['upload MB/s (pod IP)', `${u.telepodPodIP}`, '', `${u.direct}`, x(u.telepodPodIP!, u.portForward!)],
    [
      'new connection TTFB p50 ms',
      `${r.ttfbMs.telepod.p50}`,
      `${r.ttfbMs.portForward.p50}`,
      '',
      x(r.ttfbMs.telepod.p50, r.ttfbMs.portForward.p50),
    ],
    [
      'new connection TTFB p99 ms',
      `${r.ttfbMs.telepod.p99}`,
      `${r.ttfbMs.portForward.p99}`,
      '',
      x(r.ttfbMs.telepod.p99, r.ttfbMs.portForward.p99),
    ],
    [
      'new connection TTFB p50 / p99 ms, pod IP (through the manager)',
      `${r.ttfbMs.throughTunnel.p50} / ${r.ttfbMs.throughTunnel.p99}`,
      '',
      '',
      x(r.ttfbMs.throughTunnel.p50, r.ttfbMs.portForward.p50),
    ],
    [
      `TTFB p50 / p99 ms, API server ${r.ttfbAtDistanceMs.addedRoundTripMs} ms further (round trip)`,
      `${r.ttfbAtDistanceMs.telepod.p50} / ${r.ttfbAtDistanceMs.telepod.p99}`,
      `${r.ttfbAtDistanceMs.portForward.p50} / ${r.ttfbAtDistanceMs.portForward.p99}`,
      '',
      `${r.ttfbAtDistanceMs.ratio.p50}x / ${r.ttfbAtDistanceMs.ratio.p99}x`,
    ],
    [
      'rootless: download / upload MB/s (Service name)',
      `${r.rootless.downloadMBps} / ${r.rootless.uploadMBps}`,
      `${d.portForward} / ${u.portForward}`,
      '',
      `${r.rootless.ratioVsPortForward.download}x / ${r.rootless.ratioVsPortForward.upload}x`,
    ],
    [
      'rootless: new connection TTFB p50 / p99 ms',
      `${r.rootless.ttfbMs.p50} / ${r.rootless.ttfbMs.p99}`,
      `${r.ttfbMs.portForward.p50} / ${r.ttfbMs.portForward.p99}`,
      '',
      `${r.rootless.ratioVsPortForward.ttfbP50}x / ${r.rootless.ratioVsPortForward.ttfbP99}x`,
    ],
    [
      'cluster DNS p50 / p99 ms',
      `${r.dnsMs.telepod.p50} / ${r.dnsMs.telepod.p99}`,
      '',
      `${r.dnsMs.direct.p50} / ${r.dnsMs.direct.p99}`,
      `${x(r.dnsMs.telepod.p50, r.dnsMs.direct.p50)} of direct`,
    ],
    [
      'cluster DNS, a new name each time, p50 / p99 ms',
      `${r.dnsMs.uncached.telepod.p50} / ${r.dnsMs.uncached.telepod.p99}`,
      '',
      `${r.dnsMs.uncached.direct.p50} / ${r.dnsMs.uncached.direct.p99}`,
      `${x(r.dnsMs.uncached.telepod.p50, r.dnsMs.uncached.direct.p50)} of direct; ${r.dnsMs.uncached.vsTtfbP50}x / ${r.dnsMs.uncached.vsTunnelTtfbP50}x of a new connection by name / through the manager`,
    ],
    [
      'outside-name DNS p50 ms',
      `${r.dnsMs.nonCluster.telepod.p50}`,
      '',
      `${r.dnsMs.nonCluster.direct.p50}`,
      `${x(r.dnsMs.nonCluster.telepod.p50, r.dnsMs.nonCluster.direct.p50)} of direct`,
    ],
    [
      `${r.concurrency.connections} concurrent: errors, wall time s (median of ${r.concurrency.rounds})`,
      `${r.concurrency.errors}, ${r.concurrency.seconds}`,
      `${r.concurrency.portForward.errors}, ${r.concurrency.portForward.seconds}`,
      '',
      `${r.concurrency.wallTimeVsPortForward}x`,
    ],
    ['connect warm / cold s', `${r.connectS.warm} / ${r.connectS.cold}`, '', '', ''],
    [
      'intercept → first request s (rollout / agent present / again after leave)',
      `${r.interceptS.withRollout} / ${r.interceptS.agentPresent} / ${r.interceptS.afterLeave}`,
      '',
      `${r.interceptS.plainRollout} (plain rollout, first answer from a new pod)`,
      `${(r.interceptS.withRollout / r.interceptS.plainRollout).toFixed(2)}x of a plain rollout`,
    ],
    [
      "others' requests failed while switching (cluster client, a new connection every 50 ms)",
      Object.entries(r.switchFailures)
        .map(([phase, p]) => `${phase}: ${p.failed} of ${p.answered + p.failed}`)
        .join('; '),
      '',
      '',
      '',
    ],
    [
      'intercepted TTFB p50 ms (vs served in cluster)',
      `${r.interceptTtfbMs.intercepted.p50}`,
      '',
      `${r.interceptTtfbMs.servedInCluster.p50}`,
      '',
    ],
    [
      "others' requests under a personal intercept, TTFB p50 / p99 ms (cluster client)",
      `${r.personalInterceptTtfbMs.othersRequests.p50} / ${r.personalInterceptTtfbMs.othersRequests.p99}`,
      '',
      `${r.personalInterceptTtfbMs.noIntercept.p50} / ${r.personalInterceptTtfbMs.noIntercept.p99} (no agent)`,
      `${r.personalInterceptTtfbMs.ratio.p50}x / ${r.personalInterceptTtfbMs.ratio.p99}x of no agent`,
    ],
    [
      'RSS MB daemon / manager / agent',
      `${r.rssMB.daemon} / ${r.rssMB.manager} / ${r.rssMB.agent}`,
      '',
      '',
      '',
    ],
    [
      'peak RSS MB daemon / manager: bulk transfers; concurrent connections (in turns; back to back)',
      (['peakRssMB', 'concurrencyPeakRssMB', 'sustainedPeakRssMB'] as const)
        .map((phase) => `${r.underLoad[phase].daemon} / ${r.underLoad[phase].manager}`)
        .join('; '),
      '',
      '',
      '',
    ],
  ];
  const goals = Object.entries(r.goals).map(([name, g]) => `${name} ${g.goal}: ${g.met ? 'met' : 'NOT met'}`);
  return `\nKubernetes ${r.kubernetesVersion}${r.quick ? ' (quick)' : ''}\n${markdownTable(rows)}\n\ngoals: ${goals.join('; ')}\n`;
}
