// The bench's concurrent-connections measurement: `connections` downloads started at once, through
// the tunnel and through port-forward, in rounds taking turns (and, for the daemon's memory,
// rounds of the tunnel alone, back to back). One round of each is a noisy sample
// (single runs of 1,000 connections on the testbed moved between 0.9 and 1.5 s for either path),
// so the wall times reported are the medians of the rounds, and every round's errors count.
// The rounds run with TIME-WAIT reuse on in the workstation netns (restored after): the client
// closes first, so each round leaves 1,000 TIME-WAIT sockets to its destination, and with Linux's
// default (`tcp_tw_reuse=2`: loopback only) only port-forward's 127.0.0.1 reuses them. Without it,
// once about 18,000 were left to the Service's address (the bench's earlier phases included),
// the client's own connect() calls searched the port range for a free port and a round took
// 2-3.5 s at 100 % CPU in the client, every other process idle (README, Performance).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { client, median, round } from './harness.ts';

const run = promisify(execFile);
const TW_REUSE = 'net.ipv4.tcp_tw_reuse';

/** Runs `what` with TIME-WAIT reuse for every destination in `netns`, then sets it back. */
async function withTimeWaitReuse<T>(netns: string, what: () => Promise<T>): Promise<T> {
  const sysctl = (...args: string[]) =>
    run('nsenter', [`--net=/run/netns/${netns}`, '--', 'sysctl', ...args]);
  const before = (await sysctl('-n', TW_REUSE)).stdout.trim();
  await sysctl('-qw', `${TW_REUSE}=1`);
  try {
    return await what();
  } finally {
    // A failed restore must not hide the rounds' own error; `testbed down` removes the netns.
    await sysctl('-qw', `${TW_REUSE}=${before}`).catch((err: Error) =>
      process.stderr.write(`bench: could not set ${TW_REUSE} back to ${before}: ${err.message}\n`),
    );
  }
}

interface Round {
  errors: number;
  MBps: number;
  seconds: number;
  firstError?: string;
}

/** The rounds' errors, summed. */
const errorsOf = (rounds: Round[]) => rounds.reduce((sum, r) => sum + r.errors, 0);
/** The first error any of the rounds met, as a field to spread into a result. */
function firstErrorOf(rounds: Round[]): { firstError?: string } {
  const firstError = rounds.find((r) => r.firstError)?.firstError;
  return firstError ? { firstError } : {};
}

/** What the bench reports for its concurrent connections (results.concurrency). */
export interface ConcurrencyResult {
  connections: number;
  rounds: number;
  /** Every round's, the unmeasured first round's included. */
  errors: number;
  firstError?: string;
  aggregateMBps: number;
  seconds: number;
  runs: number[];
  /** The first round of each path, before the measured ones: not in the medians. */
  firstRound: { telepod: number; portForward: number };
  portForward: { errors: number; seconds: number; runs: number[] };
  wallTimeVsPortForward: number;
}

/**
 * Runs a first round of each path, then `rounds` measured rounds of both (an even number, so
 * that each path goes first equally often), the tunnel's `connections` downloads of `bytes` and
 * port-forward's, in turns whose order swaps each round. The first round is reported apart (its
 * errors counted): in five full runs of 2026-12-02 telepod's first 1,000 connections after
 * connecting were its slowest round, at 1.2-1.7x of its later median, and port-forward's first
 * was mostly slower than its later rounds too (the API server, kubelet, runtime and app take
 * their first burst as well).
 */
export async function measureConcurrency(
  netns: string,
  urls: { telepod: string; portForward: string },
  { connections, bytes, rounds }: { connections: number; bytes: number; rounds: number },
): Promise<ConcurrencyResult> {
  const telepod: Round[] = [];
  const portForward: Round[] = [];
  const via = (url: string) => client<Round>(netns, 'concurrent', url, connections, bytes);
  if (rounds % 2) throw new Error(`an even number of rounds, not ${rounds}`);
  const first = await withTimeWaitReuse(netns, async () => {
    const firstRound = { telepod: await via(urls.telepod), portForward: await via(urls.portForward) };
    for (let i = 0; i < rounds; i++) {
      const swapped = i % 2 === 0; // port-forward went last in the first round
      if (swapped) portForward.push(await via(urls.portForward));
      telepod.push(await via(urls.telepod));
      if (!swapped) portForward.push(await via(urls.portForward));
    }
    return firstRound;
  });
  const seconds = median(telepod.map((r) => r.seconds));
  const portForwardSeconds = median(portForward.map((r) => r.seconds));
  const all = { telepod: [first.telepod, ...telepod], portForward: [first.portForward, ...portForward] };
  return {
    connections,
    rounds,
    errors: errorsOf(all.telepod),
    ...firstErrorOf(all.telepod),
    aggregateMBps: round(median(telepod.map((r) => r.MBps)), 1),
    seconds: round(seconds),
    runs: telepod.map((r) => round(r.seconds)),
    firstRound: { telepod: round(first.telepod.seconds), portForward: round(first.portForward.seconds) },
    portForward: {
      errors: errorsOf(all.portForward),
      seconds: round(portForwardSeconds),
      runs: portForward.map((r) => round(r.seconds)),
    },
    wallTimeVsPortForward: round(seconds / portForwardSeconds),
  };
}

/** What the bench reports for its rounds of the tunnel alone, back to back (results.sustained). */
export interface SustainedResult {
  connections: number;
  runs: number[];
  errors: number;
  firstError?: string;
}

/**
 * `rounds` rounds of the tunnel's `connections` downloads, one right after another with no
 * port-forward rounds between: the load under which the daemon's memory grew most (each
 * connection's objects die in V8's old generation; docs/connect.md, "Memory").
 */
export async function measureSustained(
  netns: string,
  url: string,
  { connections, bytes, rounds }: { connections: number; bytes: number; rounds: number },
): Promise<SustainedResult> {
  const runs = await withTimeWaitReuse(netns, async () => {
    const done: Round[] = [];
    for (let i = 0; i < rounds; i++)
      done.push(await client<Round>(netns, 'concurrent', url, connections, bytes));
    return done;
  });
  return {
    connections,
    runs: runs.map((r) => round(r.seconds)),
    errors: errorsOf(runs),
    ...firstErrorOf(runs),
  };
}
