// What an intercept's start and end cost everyone else: a client in the cluster (the node netns)
// opens a new connection to the workload's Service every 50 ms for the whole development loop
// (intercept with a rollout, leave, intercept again, leave --restore), and each failed or hung
// request is counted in the phase it started in.
import { rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { client, NODE_NETNS } from './harness.ts';

const INTERVAL_MS = 50;

/** A failed or hung request and when it started (epoch ms). */
interface Failure {
  at: number;
  error: string;
}

/** Per phase: requests answered, and the failures (at most a few named, with when: ms into it). */
export type SwitchResult = Record<string, { answered: number; failed: number; errors: string[] }>;

/** Splits a poll's failures among phases begun at `marks` (in order); the rest is 'before'. */
export function failuresByPhase(
  marks: { phase: string; at: number }[],
  failures: Failure[],
  answeredAt: number[],
): SwitchResult {
  const result: SwitchResult = {};
  const markOf = (at: number) => [...marks].reverse().find((m) => m.at <= at);
  const phaseOf = (at: number) => markOf(at)?.phase ?? 'before';
  for (const m of marks) result[m.phase] = { answered: 0, failed: 0, errors: [] };
  for (const at of answeredAt) {
    const entry = (result[phaseOf(at)] ??= { answered: 0, failed: 0, errors: [] });
    entry.answered++;
  }
  for (const f of failures) {
    const entry = (result[phaseOf(f.at)] ??= { answered: 0, failed: 0, errors: [] });
    entry.failed++;
    if (entry.errors.length < 5) entry.errors.push(`${f.error} at +${f.at - (markOf(f.at)?.at ?? f.at)} ms`);
  }
  return result;
}

/** A cluster client polling `url`; `mark` starts a phase, `stop` ends the poll and sorts. */
export function startSwitchPoller(url: string): {
  mark: (phase: string) => void;
  stop: () => Promise<SwitchResult>;
} {
  const stopFile = path.join(os.tmpdir(), `telepod-bench-switch-${process.pid}`);
  rmSync(stopFile, { force: true });
  const polled = client<{ answeredAt: number[]; failures: Failure[]; slowestMs: number }>(
    NODE_NETNS,
    'poll',
    url,
    INTERVAL_MS,
    stopFile,
  );
  const marks: { phase: string; at: number }[] = [];
  return {
    mark: (phase) => void marks.push({ phase, at: Date.now() }),
    stop: async () => {
      writeFileSync(stopFile, '');
      try {
        const { answeredAt, failures, slowestMs } = await polled;
        process.stderr.write(
          `bench: switch poller: ${answeredAt.length} answered, ${failures.length} failed, slowest ${slowestMs} ms\n`,
        );
        return failuresByPhase(marks, failures, answeredAt);
      } finally {
        rmSync(stopFile, { force: true });
      }
    },
  };
}
