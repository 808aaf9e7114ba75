// The bench's concurrent-connections measurement: `connections` downloads started at once, through
// the tunnel and through port-forward, in alternating rounds. One round of each is a noisy sample
// (single runs of 1,000 connections on the testbed moved between 0.9 and 1.5 s for either path),
// so the wall times reported are the medians of the rounds, and every round's errors count.
import { client, median, round } from './harness.ts';

interface Round {
  errors: number;
  MBps: number;
  seconds: number;
  firstError?: string;
}

/** What the bench reports for its concurrent connections (results.concurrency). */
export interface ConcurrencyResult {
  connections: number;
  rounds: number;
  errors: number;
  firstError?: string;
  aggregateMBps: number;
  seconds: number;
  runs: number[];
  portForward: { errors: number; seconds: number; runs: number[] };
  wallTimeVsPortForward: number;
}

/** Runs `rounds` rounds, each the tunnel's `connections` downloads of `bytes` and then port-forward's. */
export async function measureConcurrency(
  netns: string,
  urls: { telepod: string; portForward: string },
  { connections, bytes, rounds }: { connections: number; bytes: number; rounds: number },
): Promise<ConcurrencyResult> {
  const telepod: Round[] = [];
  const portForward: Round[] = [];
  const via = (url: string) => client<Round>(netns, 'concurrent', url, connections, bytes);
  for (let i = 0; i < rounds; i++) {
    telepod.push(await via(urls.telepod));
    portForward.push(await via(urls.portForward));
  }
  const seconds = median(telepod.map((r) => r.seconds));
  const portForwardSeconds = median(portForward.map((r) => r.seconds));
  const firstError = telepod.find((r) => r.firstError)?.firstError;
  return {
    connections,
    rounds,
    errors: telepod.reduce((sum, r) => sum + r.errors, 0),
    ...(firstError ? { firstError } : {}),
    aggregateMBps: round(median(telepod.map((r) => r.MBps)), 1),
    seconds: round(seconds),
    runs: telepod.map((r) => round(r.seconds)),
    portForward: {
      errors: portForward.reduce((sum, r) => sum + r.errors, 0),
      seconds: round(portForwardSeconds),
      runs: portForward.map((r) => round(r.seconds)),
    },
    wallTimeVsPortForward: round(seconds / portForwardSeconds),
  };
}
