// `telepod list`, `intercept`, `replace` and `leave`: a workload's cluster traffic to the
// workstation. Each connects first when no session exists; with `-- cmd` the intercept lasts
// as long as the command (and a connection made for it ends with it too).
import { Command, Option } from '@commander-js/extra-typings';
import { DAEMON_PATHS, type DaemonInterceptRequest, type DaemonStatus } from '../../protocol/daemon-api.ts';
import { usageError } from '../../protocol/errors.ts';
import { DORMANT_AGENT_MINUTES, type InterceptInfo, type WorkloadInfo } from '../../protocol/intercept.ts';
import type { PortRequest } from '../../protocol/requests.ts';
import { runChild } from '../child.ts';
import {
  callDaemon,
  callDaemonWithProgress,
  daemonRunning,
  quitDaemon,
  rootlessNamespace,
  useRootlessDaemon,
} from '../daemon-client.ts';
import { progressReporter } from '../progress.ts';
import { printResult } from '../output.ts';
import { discardMount, podEnvironment, podOptions, prepareMount } from '../pod-context.ts';
import { portCollector } from '../ports.ts';
import { headerCollector, requestFilter } from '../request-filter.ts';
import { applyConfig } from '../config/apply.ts';
import type { Program } from '../program.ts';
import { connect, connectOptions, describeIntercept } from './connect.ts';

/**
 * Connects unless connected, as a `telepod connect` without flags would (defaults, environment,
 * config file); answers whether this call connected.
 */
async function ensureConnected(program: Program): Promise<boolean> {
  // One call: a daemon that does not answer is not running.
  const status = await callDaemon<DaemonStatus>(DAEMON_PATHS.status).catch(() => undefined);
  if (status?.connected) return false;
  const flags = connectOptions(new Command());
  await applyConfig(program, flags);
  await connect(program, flags.opts());
  return true;
}

function workloadLines(workloads: WorkloadInfo[]): string {
  if (!workloads.length) return 'no workloads';
  return workloads
    .map((w) => {
      const services = w.services
        .map(
          (s) =>
            `${s.name}(${s.ports.map((p) => `${p.port}${p.name ? `/${p.name}` : ''}->${p.targetPort}`).join(',')})`,
        )
        .join(' ');
      const state = w.intercepts.length
        ? w.intercepts
            .map((i) => {
              const how = [i.filter ? `requests with ${i.filter}` : '', i.mirror ? 'mirror' : '']
                .filter(Boolean)
                .join(', ');
              return `${i.mode}${how ? ` (${how})` : ''} by ${i.holder}: ${i.ports.join(', ')}`;
            })
            .join('; ')
        : w.dormantAgent
          ? 'not intercepted (agent kept for a quick re-intercept)'
          : 'not intercepted';
      return `${w.kind.padEnd(11)} ${w.name.padEnd(24)} ${(services || 'no Service').padEnd(32)} ${state}`;
    })
    .join('\n');
}

function addInterceptCommand(program: Program, name: 'intercept' | 'replace', description: string): void {
  const intercept = program
    .command(name)
    .description(description)
    .argument('<workload>', 'Deployment, StatefulSet or ReplicaSet name')
    .argument('[command...]', 'run this command (after --) for as long as the intercept lasts')
    .addOption(
      new Option(
        '--port <local[:remote]>',
        'local port to receive on, and the Service port name or number (repeatable)',
      )
        .argParser(portCollector('--port'))
        .default([] as PortRequest[]),
    )
    .option('--service <name>', 'the Service whose port to take, when several select the workload')
    .option('--container <name>', 'the app container (default: the one serving the port)')
    .option('--timeout <seconds>', 'how long to wait for the workload to roll out', '120')
    .addOption(
      new Option(
        '--http-header <name=value>',
        'intercept only: only requests with this header value come here, the rest go to the app (repeatable: all must match)',
      )
        .argParser(headerCollector)
        .default([] as [string, string][]),
    )
    .option('--http-path-prefix <path>', 'intercept only: only requests whose path starts with this')
    .option('--http-method <method>', 'intercept only: only requests with this method')
    .option('--mirror', 'intercept only: receive a copy of each (matching) request; the app still answers')
    .option(
      '--rootless',
      "without root, for the command after --: it runs in a network namespace of its own, with the user's own daemon (docs/rootless.md)",
    );
  podOptions(intercept).action(async (workload, command, opts) => {
    const timeout = Number(opts.timeout);
    if (!Number.isInteger(timeout) || timeout < 1 || timeout > 3600)
      throw usageError(`--timeout ${opts.timeout}: expected whole seconds from 1 to 3600`);
    if (opts.rootless && !command.length)
      throw usageError(`${name} --rootless: give the command to run after --, e.g. -- npm start`);
    if (opts.rootless) useRootlessDaemon(); // before anything changes
    const mount = await prepareMount(opts.mount);
    let connectedHere = false;
    const filter = requestFilter(opts);
    const mirror = opts.mirror === true;
    if (name === 'replace' && (filter || mirror))
      throw usageError('replace takes every request; filter (--http-*) or mirror with intercept instead');
    const request: DaemonInterceptRequest = {
      mode: name,
      ...(filter ? { filter } : {}),
      ...(mirror ? { mirror } : {}),
      workload,
      namespace: program.opts().namespace,
      ports: opts.port,
      service: opts.service,
      container: opts.container,
      timeoutSeconds: timeout,
      mount,
    };
    let info: InterceptInfo;
    try {
      connectedHere = await ensureConnected(program);
      info = await callDaemonWithProgress<InterceptInfo>(
        DAEMON_PATHS.intercept,
        request,
        await progressReporter(program.opts().output),
      );
    } catch (err) {
      await discardMount(mount);
      if (connectedHere) await quitDaemon();
      throw err;
    }
    const oneShot = command.length > 0;
    // Ends what this command started: the intercept of a one-shot, and a connection made for it.
    const end = async () => {
      await callDaemon(DAEMON_PATHS.leave, { id: info.id });
      if (connectedHere) await quitDaemon();
    };
    let env: Record<string, string>;
    try {
      env = await podEnvironment(info, opts, oneShot);
    } catch (err) {
      await end(); // e.g. an unwritable --env-file: nothing stays changed
      throw err;
    }
    if (!oneShot) return printResult(program.opts().output, info, () => describeIntercept(info));
    if (program.opts().output === 'text') process.stderr.write(`telepod: ${describeIntercept(info)}\n`);
    try {
      const rootless = opts.rootless
        ? rootlessNamespace(await callDaemon<DaemonStatus>(DAEMON_PATHS.status))
        : undefined;
      process.exitCode = await runChild(command, env, rootless);
    } finally {
      await end();
    }
  });
}

/** An idle time as `install --agent-idle` would give it: 90 s, 15 min, 2 h. */
function idleTime(seconds: number): string {
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  return seconds % 60 === 0 ? `${seconds / 60} min` : `${seconds} s`;
}

export function addInterceptCommands(program: Program): void {
  program
    .command('list')
    .description("the namespace's workloads, their Services, and who intercepts them")
    .action(async () => {
      await ensureConnected(program);
      const workloads = await callDaemon<WorkloadInfo[]>(DAEMON_PATHS.list, {
        namespace: program.opts().namespace,
      });
      await printResult(program.opts().output, workloads, () => workloadLines(workloads));
    });

  addInterceptCommand(
    program,
    'intercept',
    "send a workload's connections on some Service ports to local ports",
  );
  addInterceptCommand(
    program,
    'replace',
    "replace a workload's app container; its ports' traffic comes here",
  );

  program
    .command('leave')
    .description(
      `end an intercept (or replace); a replaced workload is restored, an intercepted one keeps its agent ` +
        `(passing requests to the app) for a re-intercept without rollout until you quit or the install's ` +
        `idle time passes (${DORMANT_AGENT_MINUTES} min unless \`install --agent-idle\` set another)`,
    )
    .argument('<workload>', 'the intercepted workload')
    .option('--restore', 'restore the workload now (its agent is taken out: a rollout)')
    .action(async (workload, opts) => {
      if (!(await daemonRunning())) throw usageError('not connected: there is no intercept to leave');
      const restore = opts.restore === true;
      const info = await callDaemon<InterceptInfo>(DAEMON_PATHS.leave, {
        name: workload,
        namespace: program.opts().namespace,
        ...(restore ? { restore } : {}),
      });
      const kept =
        info.dormantSeconds === undefined
          ? ''
          : ` (its agent stays for a quick re-intercept until quit or ${idleTime(info.dormantSeconds)} idle; --restore takes it out)`;
      await printResult(
        program.opts().output,
        info,
        () => `left ${info.kind} ${info.namespace}/${info.workload}${kept}`,
      );
    });
}
