// The fuzzing loop shared by every target: fast-check draws inputs from the target's
// arbitrary, the target feeds each one to the code under test, and the oracles judge it: no
// exception escapes (thrown, uncaught or an unhandled rejection anywhere in the process), every
// input is done within its time limit (else a hang), the target's liveness probe passes, and
// the process stays under a memory ceiling. A failure is shrunk (a bounded number of steps),
// recorded, and the run goes on with the next seed, so one known crash does not hide others.
import fc from 'fast-check';

/** One input's outcome that is not a pass. */
export type FailureKind = 'crash' | 'hang';

export interface Failure {
  kind: FailureKind;
  /** The error (or the uncaught one), first stack lines included. */
  error: string;
  /** The shrunk input, as fast-check prints it. */
  input: string;
  /** How often the same error was seen. */
  count: number;
}

/** A target running: feeds inputs to the code under test, probes it, closes it. */
export interface Instance<T> {
  /** Feeds one input; throws when an oracle of the target fails. */
  run(input: T): Promise<void>;
  /** Checks that the code under test still works (a valid request is answered). */
  probe(): Promise<void>;
  close(): Promise<void>;
}

/** Something to fuzz. */
export interface Target<T> {
  name: string;
  /** Inputs in a full run (`npm run fuzz`). */
  fullInputs: number;
  /** The longest one input may take before it counts as a hang. */
  inputTimeoutMs: number;
  /** A probe after every this many inputs. */
  probeEvery: number;
  arbitrary: fc.Arbitrary<T>;
  start(): Promise<Instance<T>>;
}

export interface RunLimits {
  /** Inputs to feed; with `seconds`, whichever comes first. */
  inputs: number;
  seconds?: number | undefined;
  seed: number;
}

export interface TargetResult {
  name: string;
  inputs: number;
  crashes: number;
  hangs: number;
  failures: Failure[];
  seconds: number;
  /** The process's largest resident memory seen at a probe or at the end. */
  peakRssMiB: number;
}

/** Inputs per fast-check run; a failure ends a run, the next one starts with the next seed. */
const BATCH = 5000;
/** Shrinking steps at most for one failure, and the time they may take. */
const MAX_SHRINKS = 200;
const SHRINK_BUDGET_MS = 10_000;
/** The resident memory that counts as unbounded allocation. */
const MEMORY_CEILING = 1536 << 20;

/** Marks an input that took too long. */
class Hang extends Error {}

/** The first lines of an error, for reports. */
function describeError(err: unknown): string {
  const text = err instanceof Error ? (err.stack ?? err.message) : String(err);
  return text.split('\n').slice(0, 6).join('\n');
}

/**
 * Where an error that escapes to the process (an uncaught exception, an unhandled rejection)
 * goes: to the input running, or, between inputs, kept for the next one.
 */
let onEscape: (err: unknown) => void;
let escapedBetween: { err: unknown } | undefined;
const keepForNext = (err: unknown) => (escapedBetween ??= { err });
onEscape = keepForNext;
process.on('uncaughtException', (err) => onEscape(err));
process.on('unhandledRejection', (err) => onEscape(err));

/**
 * `work`, failed at once when an error escapes to the process meanwhile (or escaped just before
 * it), and with a Hang after `ms`. A turn of the event loop after `work` is part of it.
 */
async function guarded<T>(work: () => Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const failure = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Hang(`${what}: no result within ${ms} ms`)), ms);
    onEscape = (err) => {
      const escaped = new Error('escaped to the process');
      escaped.stack = `escaped to the process: ${describeError(err)}`; // the report shows where it came from
      reject(escaped);
    };
  });
  try {
    if (escapedBetween) onEscape(escapedBetween.err);
    escapedBetween = undefined;
    return await Promise.race([
      work().then(async (result) => {
        await new Promise((resolve) => setImmediate(resolve));
        return result;
      }),
      failure,
    ]);
  } finally {
    clearTimeout(timer);
    onEscape = keepForNext;
  }
}

/** Feeds a target inputs until the limits are reached; collects its failures. */
export async function fuzzTarget<T>(target: Target<T>, limits: RunLimits): Promise<TargetResult> {
  const started = Date.now();
  const deadline = limits.seconds === undefined ? Infinity : started + limits.seconds * 1000;
  let instance = await target.start();
  const failures = new Map<string, Failure>();
  let inputs = 0;
  let crashes = 0;
  let hangs = 0;
  let peakRss = 0;
  let batch = 0;
  /** When the current batch first failed: shrinking has begun. */
  let firstFailure: number | undefined;
  /** The input the code under test is working on (one that hung, or that fast-check's time limit left behind, may still run). */
  let running: Promise<unknown> | undefined;
  /** Closes the instance once the input left running has finished (or had its time). */
  const closeInstance = async () => {
    const settled = running?.then(
      () => undefined,
      () => undefined,
    );
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      settled,
      new Promise((resolve) => (timer = setTimeout(resolve, target.inputTimeoutMs))),
    ]);
    clearTimeout(timer);
    await instance.close();
  };

  const record = (kind: FailureKind, error: string, input: string) => {
    if (kind === 'hang') hangs++;
    else crashes++;
    // the same error at other offsets or lengths is the same failure
    const key = `${kind}|${error.split('\n').slice(0, 2).join('|').replace(/\d+/g, 'N')}`;
    const known = failures.get(key);
    if (known) known.count++;
    else failures.set(key, { kind, error, input, count: 1 });
  };

  const property = fc.asyncProperty<[T]>(fc.limitShrink(target.arbitrary, MAX_SHRINKS), async (input) => {
    // past the shrinking budget every candidate passes, which ends shrinking at the last failure
    if (firstFailure !== undefined && Date.now() - firstFailure > SHRINK_BUDGET_MS) return;
    inputs++;
    try {
      await guarded(() => (running = instance.run(input)), target.inputTimeoutMs, target.name);
      if (inputs % target.probeEvery === 0) {
        await guarded(() => instance.probe(), target.inputTimeoutMs, `${target.name} probe`);
        peakRss = Math.max(peakRss, process.memoryUsage.rss());
        if (peakRss > MEMORY_CEILING) throw new Error(`resident memory ${peakRss >> 20} MiB`);
      }
    } catch (err) {
      firstFailure ??= Date.now();
      throw err;
    }
  });

  while (inputs < limits.inputs && Date.now() < deadline) {
    const numRuns = Math.min(BATCH, limits.inputs - inputs);
    const remaining = deadline - Date.now();
    firstFailure = undefined;
    const details = await fc.check<[T]>(property, {
      numRuns,
      seed: limits.seed + batch++,
      plugins: Number.isFinite(remaining) ? [fc.interruptAfterTimeLimit(remaining)] : [],
    });
    if (details.failed && details.counterexample) {
      const kind = details.errorInstance instanceof Hang ? 'hang' : 'crash';
      record(
        kind,
        describeError(details.errorInstance),
        fc.stringify(details.counterexample[0]).slice(0, 2000),
      );
      // the code under test may be left broken by the failure: a fresh instance goes on
      await closeInstance().catch(() => undefined);
      instance = await target.start();
    }
  }
  await closeInstance();
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
  return {
    name: target.name,
    inputs,
    crashes,
    hangs,
    failures: [...failures.values()],
    seconds: (Date.now() - started) / 1000,
    peakRssMiB: peakRss >> 20,
  };
}
