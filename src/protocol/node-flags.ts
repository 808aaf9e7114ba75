// How every long-running telepod process keeps its memory down (the daemon on the workstation,
// the traffic manager and each agent in the cluster): the V8 flags each is started with, and
// what each sets for itself once running.
import { setFlagsFromString } from 'node:v8';
import { collectDeadBuffersPeriodically } from './dead-buffers.ts';

/**
 * A 1 MiB young generation (16 MiB by default): collected more often, it holds fewer of the
 * buffers that traffic leaves behind, and the heap itself stays 10 MB smaller under load.
 * Garbage collection on the main thread only and one V8 worker thread (four by default): each
 * thread that allocates gets a malloc arena of its own, which kept what it freed. Over 12 bulk
 * transfers the daemon's peak RSS was 84–91 MB with both, 92–104 without; the manager's, under
 * bulk transfers through it, 89–93 MB against 103–106, at the same rates. Under the chaos run's
 * 200 connections through an intercept the manager stayed at 82–83 MB and then 106–109 in a
 * second run (138 without), and at 90.7–92.0 in two runs with `keepMemoryLean` too (README,
 * Performance). They must be on the command line (V8 aborts when a running process turns its
 * GC threads off; the pool is made before any code runs), where a Node that does not know one
 * refuses to start: node-flags.test.ts starts this Node with them.
 */
export const LEAN_NODE_FLAGS = ['--max-semi-space-size=1', '--single-threaded-gc', '--v8-pool-size=1'];

/**
 * V8 flags each process sets for itself once running, rather than on the command line, where a
 * flag a later Node does not know would stop the process starting (here it is a warning):
 * - the young generation (1 MiB, from the command line) is scavenged when a tenth full, so
 *   traffic's buffers are freed soon after use;
 * - V8's heap growing factor is fixed at 1.5: the old generation may grow to 1.5 times what the
 *   last full collection left before the next (V8 otherwise picks 1.1–4 by itself, the low end
 *   when memory is tight or the process idles). A connection's objects (its sockets, streams,
 *   listeners: about 9 KB in the daemon) live longer than any young collection and die in the
 *   old generation: ten rounds of 1,000 concurrent connections back to back took the daemon's
 *   peak RSS to 118–126 MB in 9 of 10 runs, and to 89–93 MB in 4 of 4 with this (docs/connect.md,
 *   "Memory").
 */
export const RUNTIME_V8_FLAGS = ['--minor-gc-task-trigger=10', '--heap-growing-percent=50'];

/**
 * Called first thing by each process: `RUNTIME_V8_FLAGS`, and a full collection whenever array
 * buffers grew by 8 MiB (dead-buffers.ts).
 */
export function keepMemoryLean(): void {
  for (const flag of RUNTIME_V8_FLAGS) setFlagsFromString(flag);
  collectDeadBuffersPeriodically();
}
