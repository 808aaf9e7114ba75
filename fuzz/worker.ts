// One target's fuzzing in its own process (started by fuzz/run.ts): a native abort or a blocked
// event loop in the code under test then ends this process, which the parent reports, instead
// of the whole run. Prints `HEARTBEAT` every second while the event loop turns, and the result
// as one `RESULT <json>` line at the end.
import { fuzzTarget } from './harness.ts';
import { TARGETS } from './targets.ts';

const [name, inputs, seconds, seed] = process.argv.slice(2);
const target = TARGETS.find((t) => t.name === name);
if (!target) throw new Error(`unknown target ${name}`);
const heartbeat = setInterval(() => process.stdout.write('HEARTBEAT\n'), 1000);
const result = await fuzzTarget(target, {
  inputs: inputs === 'full' ? target.fullInputs : Number(inputs),
  seconds: seconds === '-' ? undefined : Number(seconds),
  seed: Number(seed),
});
clearInterval(heartbeat);
process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
