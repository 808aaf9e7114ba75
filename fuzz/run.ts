// The fuzzing entry point: `node --import tsx fuzz/run.ts [--inputs N] [--seconds S]
// [--target a,b] [--seed N] [--jobs J]`. Without --inputs and --seconds, a full run: each
// target's own input count (see docs/fuzzing.md). Each target runs in a worker process
// (fuzz/worker.ts), J at a time; a worker that dies (a native abort) counts as a crash, one
// whose event loop stops answering for HEARTBEAT_TIMEOUT_MS, or (with --seconds) one still
// running OVERTIME_MS after its time, as a hang. Prints a line per target
// (inputs, crashes, hangs, time, memory) with every distinct failure and its shrunk input, a
// total, and exits non-zero on any crash or hang.
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import type { TargetResult } from './harness.ts';
import { TARGETS } from './targets.ts';

/** A worker silent this long has a blocked event loop. */
const HEARTBEAT_TIMEOUT_MS = 60_000;
/** How long a worker may take to exit after its result (its handles should all be closed). */
const EXIT_GRACE_MS = 10_000;
/**
 * With --seconds, how much longer than that a worker may take in all (its last input, shrinking
 * a failure, restarting the target) before it counts as a hang, heartbeat or not.
 */
const OVERTIME_MS = 60_000;
/** Lines of a dead worker's output kept for the report. */
const TAIL_LINES = 30;

const { values } = parseArgs({
  options: {
    inputs: { type: 'string' },
    seconds: { type: 'string' },
    target: { type: 'string' },
    seed: { type: 'string' },
    jobs: { type: 'string' },
  },
});
const names = values.target?.split(',') ?? TARGETS.map((t) => t.name);
const unknown = names.filter((n) => !TARGETS.some((t) => t.name === n));
if (unknown.length) {
  process.stderr.write(
    `unknown target ${unknown.join(', ')}; targets: ${TARGETS.map((t) => t.name).join(', ')}\n`,
  );
  process.exit(2);
}
const seed = values.seed ?? String(Date.now() % 0x7fffffff);
const inputs = values.inputs ?? (values.seconds ? 'Infinity' : 'full');
const jobs = Number(values.jobs ?? Math.min(2, availableParallelism()));
process.stdout.write(`fuzzing ${names.join(', ')} with seed ${seed}, ${jobs} at a time\n`);

/** Runs one target in a worker; a worker that dies or stops answering becomes a failure. */
function runWorker(name: string): Promise<TargetResult> {
  const started = Date.now();
  const worker = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(import.meta.dirname, 'worker.ts'),
      name,
      inputs,
      values.seconds ?? '-',
      seed,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const tail: string[] = [];
  const keep = (line: string) => {
    tail.push(line);
    if (tail.length > TAIL_LINES) tail.shift();
  };
  let result: TargetResult | undefined;
  let silence: NodeJS.Timeout | undefined;
  let grace: NodeJS.Timeout | undefined;
  let killedForSilence = false;
  let killedForTime = false;
  const overtime = values.seconds
    ? setTimeout(
        () => {
          killedForTime = true;
          worker.kill('SIGKILL');
        },
        Number(values.seconds) * 1000 + OVERTIME_MS,
      )
    : undefined;
  const watch = () => {
    clearTimeout(silence);
    silence = setTimeout(() => {
      killedForSilence = true;
      worker.kill('SIGKILL');
    }, HEARTBEAT_TIMEOUT_MS);
  };
  watch();
  createInterface({ input: worker.stdout }).on('line', (line) => {
    if (line === 'HEARTBEAT') return watch();
    if (line.startsWith('RESULT ')) {
      result = JSON.parse(line.slice('RESULT '.length)) as TargetResult;
      clearTimeout(silence);
      grace = setTimeout(() => {
        process.stderr.write(`${name}: the worker left handles open; ended\n`);
        worker.kill('SIGKILL');
      }, EXIT_GRACE_MS);
      return;
    }
    keep(line);
  });
  createInterface({ input: worker.stderr }).on('line', keep);
  return new Promise((resolve) => {
    worker.once('close', (code, signal) => {
      clearTimeout(silence);
      clearTimeout(grace);
      clearTimeout(overtime);
      if (result) return resolve(result);
      const kind = killedForSilence || killedForTime ? 'hang' : 'crash';
      const why = killedForSilence
        ? `the worker's event loop stopped for ${HEARTBEAT_TIMEOUT_MS / 1000} s`
        : killedForTime
          ? `the worker did not finish within ${OVERTIME_MS / 1000} s of its ${values.seconds} s`
          : `the worker died (exit code ${code}, signal ${signal})`;
      resolve({
        name,
        inputs: 0,
        crashes: kind === 'crash' ? 1 : 0,
        hangs: kind === 'hang' ? 1 : 0,
        failures: [
          {
            kind,
            error: `${why}; its last output:\n${tail.join('\n')}`,
            input: `(rerun with --seed ${seed})`,
            count: 1,
          },
        ],
        seconds: (Date.now() - started) / 1000,
        peakRssMiB: 0,
      });
    });
  });
}

function report(result: TargetResult): void {
  process.stdout.write(
    `${result.name}: ${result.inputs} inputs, ${result.crashes} crashes, ${result.hangs} hangs, ` +
      `${result.seconds.toFixed(1)} s, peak RSS ${result.peakRssMiB} MiB\n`,
  );
  for (const failure of result.failures) {
    process.stdout.write(
      `  ${failure.kind} (seen ${failure.count}x): ${failure.error.replaceAll('\n', '\n    ')}\n` +
        `    input: ${failure.input}\n`,
    );
  }
}

const started = Date.now();
const queue = [...names];
const results: TargetResult[] = [];
await Promise.all(
  Array.from({ length: jobs }, async () => {
    for (let name = queue.shift(); name; name = queue.shift()) {
      const result = await runWorker(name);
      results.push(result);
      report(result);
    }
  }),
);
const total = (key: 'inputs' | 'crashes' | 'hangs') => results.reduce((sum, r) => sum + r[key], 0);
process.stdout.write(
  `total: ${total('inputs')} inputs, ${total('crashes')} crashes, ${total('hangs')} hangs, ` +
    `${((Date.now() - started) / 1000).toFixed(1)} s\n`,
);
process.exitCode = total('crashes') + total('hangs') ? 1 : 0;
