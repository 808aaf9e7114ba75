// One target's fuzzing in its own process (started by fuzz/run.ts): a native abort or a blocked
// event loop in the code under test then ends this process, which the parent reports, instead
// of the whole run. Prints `HEARTBEAT` every second while the event loop turns, and the result
// as one `RESULT <json>` line at the end; a loop that fails exits 1 with the error on stderr.
import { fuzzTarget } from './harness.ts';
import { TARGETS } from './targets.ts';

const [name, inputs, seconds, seed] = process.argv.slice(2);
const target = TARGETS.find((t) => t.name === name);
if (!target) throw new Error(`unknown target ${name}`);
const heartbeat = setInterval(() => process.stdout.write('HEARTBEAT\n'), 1000);
try {
  const result = await fuzzTarget(target, {
    inputs: inputs === 'full' ? target.fullInputs : Number(inputs),
    seconds: seconds === '-' ? undefined : Number(seconds),
    seed: Number(seed),
  });
  clearInterval(heartbeat);
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
} catch (err) {
  // The harness keeps errors that escape to the process for the input running, so one that
  // ends the loop itself (a target that cannot start again) would be swallowed, and the
  // heartbeat would keep a worker with nothing left to do alive: it dies, saying why.
  process.stderr.write(
    `the fuzzing loop failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
}
