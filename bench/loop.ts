// The development loop on the testbed (#17): a plain rollout of the target (the cluster's own
// floor for what restarts pods), intercept with a rollout, a second port with the
// agent present, the intercepted TTFB, leave and intercept again (three rounds, the agent dormant
// in between), leave --restore, and what a personal intercept costs everyone else's requests; a
// cluster client polls the intercepted port throughout and counts what failed, by phase.
import type { ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  kubectl,
  startInWorkstation,
  telepodInWorkstation,
  waitUntil,
  type TestbedStatus,
} from '../testbed/lib/testbed.ts';
import { client, kubectlGet, median, NODE_NETNS, round } from './harness.ts';
import { agentPid, processUsage } from './rss.ts';
import { startSwitchPoller } from './switch-poller.ts';

/** A server in the workstation netns answering `text` (the target of the intercepts). */
function startLocalServer(tb: TestbedStatus, port: number, text: string): ChildProcess {
  const script = `process.on('SIGTERM', () => process.exit(0)); require('http').createServer((q, s) => s.end(${JSON.stringify(text)})).listen(${port})`;
  return startInWorkstation(tb, script);
}

/** What the loop measured: seconds to the first request, failures by phase, TTFB samples (ms). */
export interface LoopResults {
  /** Medians of `coldRounds`, and each. */
  withRollout: number;
  withRolloutRuns: number[];
  /** The same Deployment's plain rollout to a cluster client's first answer from a new pod. */
  plainRollout: number;
  plainRolloutRuns: number[];
  agentPresent: number;
  afterLeave: number;
  afterLeaveRuns: number[];
  switching: Awaited<ReturnType<ReturnType<typeof startSwitchPoller>['stop']>>;
  interceptedTtfb: number[];
  noAgent: number[];
  filtered: number[];
  agentRssMB: number;
}

/**
 * Runs the loop against the Deployment `bench-target` in `NS` (ports 8000 and 8001), with
 * `sequential` new connections for each TTFB and `coldRounds` cold intercepts and plain
 * rollouts; leaves it restored.
 */
export async function measureLoop(
  tb: TestbedStatus,
  NS: string,
  { sequential, coldRounds }: { sequential: number; coldRounds: number },
  log: (line: string) => void,
): Promise<LoopResults> {
  const telepod = (...args: string[]) => telepodInWorkstation(tb, '-n', NS, ...args);
  const ws = tb.workstation.netns;
  let pollers = 0;
  /**
   * Seconds from starting `change` to the first request a poller in `netns` sees answered with
   * `text` at `url`. The poller is polling before the change starts, so neither its start nor
   * the CLI's is hidden from the figure.
   */
  const firstAnswer = async (netns: string, url: string, text: string, change: () => Promise<void>) => {
    const ready = path.join(os.tmpdir(), `telepod-bench-poller-${process.pid}-${++pollers}`);
    const poller = client<{ at: number }>(netns, 'until', url, text, 60_000, ready);
    await waitUntil('the poller to poll', 30_000, () => Promise.resolve(existsSync(ready)));
    rmSync(ready);
    const started = Date.now();
    await change();
    return round(((await poller).at - started) / 1000);
  };
  /** Seconds from running `telepod intercept <args>` to the first request the workstation sees. */
  const interceptToFirstRequest = (args: string[], url: string, text: string) =>
    firstAnswer(ws, url, text, async () => {
      const result = await telepod('intercept', ...args);
      if (result.code !== 0) throw new Error(result.stderr);
    });
  const children: ChildProcess[] = [];
  let switchPoller: ReturnType<typeof startSwitchPoller> | undefined;
  try {
    children.push(startLocalServer(tb, 18100, 'first'), startLocalServer(tb, 18101, 'second'));
    const targetIP = await kubectlGet(tb, NS, ['svc', 'bench-target'], '{.spec.clusterIP}');
    const inCluster = `http://${targetIP}:8000/`;
    // A rollout, a leave or an intercept rolls the pods: measure once no old pod is left and 20 new
    // connections in a row succeed (which also warms up JIT and pools, untimed).
    const settled = async (agent: boolean) => {
      await waitUntil(
        `bench-target's pods ${agent ? 'with' : 'without'} the agent, none terminating`,
        120_000,
        async () => {
          const pods = JSON.parse(
            await kubectl(tb, ['-n', NS, 'get', 'pods', '-l', 'app=bench-target', '-o', 'json']),
          ) as {
            items: { metadata: { deletionTimestamp?: string }; spec: { containers: { name: string }[] } }[];
          };
          return (
            pods.items.length > 0 &&
            pods.items.every(
              (p) =>
                !p.metadata.deletionTimestamp &&
                p.spec.containers.some((c) => c.name === 'telepod-agent') === agent,
            )
          );
        },
      );
      await waitUntil('20 connections in a row to succeed', 60_000, () =>
        client(NODE_NETNS, 'ttfb', inCluster, 20).then(
          () => true,
          () => false,
        ),
      );
    };
    // The cluster's own floor for a change that restarts the pods: a plain rollout (a new env
    // value in the pod template, kubectl on the host) until a cluster client's new
    // connection is answered by a new pod. One pod's start moves by a second on this VM (an
    // app's readiness probe that misses its first tick waits for the next). Since the manager
    // relays a cold intercept's connections during its rollout (src/manager/relay.ts), the
    // intercept's first request no longer waits for the new pod: medians (of three in a full run).
    log(`${coldRounds} plain rollouts of the same Deployment, to a cluster client reaching a new pod`);
    const plainRolloutRuns: number[] = [];
    for (let i = 1; i <= coldRounds; i++) {
      plainRolloutRuns.push(
        await firstAnswer(NODE_NETNS, `${inCluster}env`, `rolled-${i}`, async () => {
          await kubectl(tb, ['-n', NS, 'set', 'env', 'deployment/bench-target', `ROLLOUT=rolled-${i}`]);
        }),
      );
      await settled(false);
    }
    log(
      `intercept: ${coldRounds} with a rollout (restored between), then a second port with the agent present`,
    );
    // Everyone else's requests while the loop runs: a cluster client polls the intercepted port.
    switchPoller = startSwitchPoller(inCluster);
    const withRolloutRuns: number[] = [];
    for (let i = 0; i < coldRounds; i++) {
      if (i) {
        switchPoller.mark('leave --restore (rollout)');
        await telepod('leave', 'bench-target', '--restore');
        await settled(false);
      }
      switchPoller.mark('intercept (rollout)');
      withRolloutRuns.push(
        await interceptToFirstRequest(
          ['bench-target', '--port', '18100:8000'],
          'http://bench-target:8000/',
          'first',
        ),
      );
    }
    switchPoller.mark('intercept of a second port');
    const agentPresent = await interceptToFirstRequest(
      ['bench-target', '--port', '18101:8001'],
      'http://bench-target:8001/',
      'second',
    );
    const agentRest = processUsage(await agentPid());
    const interceptedTtfb = await client<{ samples: number[] }>(
      ws,
      'ttfb',
      'http://bench-target:8000/',
      sequential,
    );
    switchPoller.mark('leave');
    await telepod('leave', 'bench-target');
    await telepod('leave', 'bench-target');
    // The agent stays dormant after leave: intercepting again needs no rollout.
    log('re-intercept right after leave (the agent stayed, dormant)');
    switchPoller.mark('re-intercept');
    // Three rounds of leave and intercept again: one start of the CLI is a noisy sample here.
    const afterLeaveRuns: number[] = [];
    for (let i = 0; i < 3; i++) {
      if (i) await telepod('leave', 'bench-target');
      afterLeaveRuns.push(
        await interceptToFirstRequest(
          ['bench-target', '--port', '18100:8000'],
          'http://bench-target:8000/',
          'first',
        ),
      );
    }
    const afterLeave = median(afterLeaveRuns);
    switchPoller.mark('leave --restore (rollout)');
    await telepod('leave', 'bench-target', '--restore');

    // What a personal intercept costs everyone else: a cluster client's requests without the
    // header, through the agent's per-request router to the app, against no agent at all.
    log(`cluster client's TTFB, ${sequential} new connections, without and with a personal intercept`);
    await settled(false);
    const switching = await switchPoller.stop();
    const noAgent = await client<{ samples: number[] }>(NODE_NETNS, 'ttfb', inCluster, sequential);
    const personal = await telepod(
      'intercept',
      'bench-target',
      '--port',
      '18100:8000',
      '--http-header',
      'x-bench=me',
    );
    if (personal.code !== 0) throw new Error(personal.stderr);
    await settled(true);
    const filtered = await client<{ samples: number[] }>(NODE_NETNS, 'ttfb', inCluster, sequential);
    await telepod('leave', 'bench-target', '--restore');
    return {
      withRollout: median(withRolloutRuns),
      withRolloutRuns,
      plainRollout: median(plainRolloutRuns),
      plainRolloutRuns,
      agentPresent,
      afterLeave,
      afterLeaveRuns,
      switching,
      interceptedTtfb: interceptedTtfb.samples,
      noAgent: noAgent.samples,
      filtered: filtered.samples,
      agentRssMB: agentRest.rssMB,
    };
  } finally {
    await switchPoller?.stop().catch(() => undefined);
    for (const child of children) child.kill();
  }
}
