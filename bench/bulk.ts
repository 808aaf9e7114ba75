// The bench's bulk-data measurement: each path's transfers take turns, round after round, so
// every path meets the machine in the same state. Measured one path after another, minutes
// apart, port-forward alone moved between 223 and 318 MB/s on the testbed; the ratio then said
// more about the order than about telepod. Also the daemon's and manager's CPU share while
// telepod's Service-name transfers ran, and their peak RSS over the whole measurement.
import { client, median, round } from './harness.ts';
import { processUsage, withPeakRss } from './rss.ts';

type Direction = 'download' | 'upload';

/** Where a path's client runs and what it asks for. */
export interface BulkTarget {
  netns: string;
  url: string;
}

/** What the bench reports of its bulk transfers. */
export interface BulkResult {
  /** Median MB/s of each path's rounds, by direction and path. */
  MBps: Record<Direction, Record<string, number>>;
  runs: Record<Direction, Record<string, number[]>>;
  /** The daemon's and manager's CPU share (% of a core) during the `measured` path's transfers. */
  cpuPercent: { daemon: number; manager: number };
  peakRssMB: { daemon: number; manager: number };
}

/**
 * For each direction: one untimed transfer of a quarter of `bytes` on every path (slow start,
 * JIT warm-up), then `reps` rounds, each one transfer of `bytes` on every path in turn.
 */
export async function measureBulk(
  targets: Record<string, BulkTarget>,
  { bytes, reps }: { bytes: number; reps: number },
  telepod: { path: string; daemonPid: number; managerPid: number },
  log: (line: string) => void,
): Promise<BulkResult> {
  const pids = { daemon: telepod.daemonPid, manager: telepod.managerPid };
  const cpu = { daemon: 0, manager: 0, seconds: 0 };
  const transfer = async (direction: Direction, path: string, size: number): Promise<number> => {
    const target = targets[path]!;
    const before = { daemon: processUsage(pids.daemon), manager: processUsage(pids.manager), at: Date.now() };
    const { MBps } = await client<{ MBps: number }>(target.netns, direction, target.url, size);
    if (path === telepod.path) {
      cpu.daemon += processUsage(pids.daemon).cpuS - before.daemon.cpuS;
      cpu.manager += processUsage(pids.manager).cpuS - before.manager.cpuS;
      cpu.seconds += (Date.now() - before.at) / 1000;
    }
    return MBps;
  };
  const runs: BulkResult['runs'] = { download: {}, upload: {} };
  const paths = Object.keys(targets);
  const { peakRssMB } = await withPeakRss(pids, async () => {
    for (const direction of ['download', 'upload'] as const) {
      log(`${direction} ${bytes >> 20} MiB, ${reps} rounds of: ${paths.join(', ')}`);
      for (const path of paths) await transfer(direction, path, bytes >> 2);
      for (let i = 0; i < reps; i++) {
        for (const path of paths) (runs[direction][path] ??= []).push(await transfer(direction, path, bytes));
      }
    }
  });
  const medians = (direction: Direction) =>
    Object.fromEntries(paths.map((path) => [path, round(median(runs[direction][path]!), 1)]));
  return {
    MBps: { download: medians('download'), upload: medians('upload') },
    runs,
    cpuPercent: {
      daemon: round((100 * cpu.daemon) / cpu.seconds, 1),
      manager: round((100 * cpu.manager) / cpu.seconds, 1),
    },
    peakRssMB,
  };
}
