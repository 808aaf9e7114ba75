// `telepod connect`, `status`, `quit` and `run`: the outbound half of telepod — cluster
// Services, pod IPs and DNS names reachable from every process on the workstation.
import { Option, type Command, type OptionValues } from '@commander-js/extra-typings';
import { DEFAULT_IMAGE, DEFAULT_MANAGER_NAMESPACE } from '../../kube/defaults.ts';
import { isCidr } from '../../kube/subnets.ts';
import { DAEMON_PATHS, type ConnectRequest, type DaemonStatus } from '../../protocol/daemon-api.ts';
import { usageError } from '../../protocol/errors.ts';
import { describeFilter, type InterceptInfo } from '../../protocol/intercept.ts';
import type { PortRequest } from '../../protocol/requests.ts';
import { runChild } from '../child.ts';
import { discardMount, podEnvironment, podOptions, prepareMount } from '../pod-context.ts';
import { portCollector } from '../ports.ts';
import { matchingRequests } from '../request-filter.ts';
import {
  callDaemon,
  callDaemonWithProgress,
  clearStaleState,
  daemonRunning,
  ensureDaemon,
  quitDaemon,
  rootlessNamespace,
  useRootlessDaemon,
} from '../daemon-client.ts';
import { progressReporter } from '../progress.ts';
import { printResult } from '../output.ts';
import type { Program } from '../program.ts';
import { namespacesOption } from './install.ts';

const collect = (value: string, previous: string[]) => {
  if (!isCidr(value)) throw usageError(`"${value}" is not an IPv4 CIDR such as 10.0.0.0/8`);
  return [...previous, value];
};

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- commander's own generic shape
export function connectOptions<A extends any[], O extends OptionValues, G extends OptionValues>(
  command: Command<A, O, G>,
) {
  return command
    .addOption(
      new Option('--also-proxy <cidr>', 'also route this subnet to the cluster (repeatable)')
        .argParser(collect)
        .default([] as string[]),
    )
    .addOption(
      new Option('--never-proxy <cidr>', 'never route this subnet to the cluster (repeatable)')
        .argParser(collect)
        .default([] as string[]),
    )
    .option('--manager-namespace <ns>', 'namespace of the traffic manager', DEFAULT_MANAGER_NAMESPACE)
    .option('--image <image>', 'image with node for the in-cluster side', DEFAULT_IMAGE)
    .addOption(namespacesOption());
}

function warnStale(): void {
  process.stderr.write('telepod: removed the rules a crashed daemon had left behind\n');
}

function summary(s: DaemonStatus): string {
  return `connected to context ${s.context}, namespace ${s.namespace}; routing ${s.subnets?.join(', ')}`;
}

export function describeIntercept(i: InterceptInfo): string {
  const ports = i.ports.map((p) => `${p.remote} -> localhost:${p.local}`).join(', ');
  const verb = { intercept: 'intercepted', replace: 'replaced', swap: 'swapped', expose: 'exposed' }[i.mode];
  const volumes = i.volumes?.root
    ? `; volumes at ${i.volumes.root}`
    : i.volumes?.warning
      ? `\n  warning: ${i.volumes.warning}`
      : '';
  const which = i.filter ? ` requests with ${describeFilter(i.filter)}` : '';
  const mirror = i.mirror ? ' (copies; the app answers)' : '';
  const requests = matchingRequests(i)
    .map((curl) => `\n  ${i.mirror ? 'mirrored' : 'taken'}: ${curl}`)
    .join('');
  return `${verb}${which}${mirror} ${i.kind} ${i.namespace}/${i.workload}: ${ports || 'no ports'} (ready in ${i.readySeconds?.toFixed(1)} s)${volumes}${requests}`;
}

function interceptLines(s: DaemonStatus): string {
  return (s.intercepts ?? [])
    .map(
      (i) =>
        `\n${describeIntercept(i)}` +
        (i.effective === false ? `\n  NOT EFFECTIVE: ${i.problem}` : '') +
        (i.warning ? `\n  warning: ${i.warning}` : ''),
    )
    .join('');
}

function tunnelLine(s: DaemonStatus): string {
  if (!s.tunnel || s.tunnel.up) return '';
  const down = ((Date.now() - (s.tunnel.downSince ?? Date.now())) / 1000).toFixed(0);
  return `\ntunnel DOWN for ${down} s, reconnecting${s.tunnel.lastError ? `: ${s.tunnel.lastError}` : ''}`;
}

export interface ConnectFlags {
  alsoProxy: string[];
  neverProxy: string[];
  managerNamespace: string;
  image: string;
  namespaces?: string[] | undefined;
}

export async function connect(program: Program, opts: ConnectFlags) {
  const globals = program.opts();
  // Loaded here: the Kubernetes client library costs the start of commands that need none.
  const { inlineFiles, loadKubeConfig } = await import('../../kube/config.ts');
  // Read and merged here, as the user (a bad kubeconfig or context fails before anything starts).
  const { kc } = loadKubeConfig(globals);
  inlineFiles(kc); // certificates and keys as data: the root daemon reads no file for the user
  const request: ConnectRequest = {
    kubeconfig: kc.exportConfig(),
    // For exec credential plugins; a value over 128 KiB is no credential setting.
    env: Object.fromEntries(
      Object.entries(process.env).filter(
        (entry): entry is [string, string] => entry[1] !== undefined && entry[1].length <= 128 * 1024,
      ),
    ),
    context: globals.context,
    namespace: globals.namespace,
    alsoProxy: opts.alsoProxy,
    neverProxy: opts.neverProxy,
    managerNamespace: opts.managerNamespace,
    image: opts.image,
    namespaces: opts.namespaces,
  };
  if (await clearStaleState()) warnStale();
  const progress = await progressReporter(globals.output);
  if (globals.output === 'text' && !progress.shown)
    process.stderr.write('telepod: starting the daemon and connecting ...\n');
  // Ctrl-C while connecting: undo whatever the daemon did so far and stop it.
  const interrupted = () => {
    progress.end(false);
    void quitDaemon().finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  try {
    await ensureDaemon(progress).catch((err: unknown) => {
      progress.end(false);
      throw err;
    });
    const status = await callDaemonWithProgress<DaemonStatus>(DAEMON_PATHS.connect, request, progress);
    for (const notice of status.notices ?? []) process.stderr.write(`telepod: ${notice}\n`);
    return status;
  } finally {
    process.off('SIGINT', interrupted);
  }
}

export function addConnectCommands(program: Program): void {
  connectOptions(program.command('connect').description('connect the workstation to the cluster')).action(
    async (opts) => {
      const status = await connect(program, opts);
      await printResult(program.opts().output, status, () => summary(status));
    },
  );

  program
    .command('status')
    .description('show whether telepod is connected, and to what')
    .option('--rootless', 'the rootless session of `run --rootless` (docs/rootless.md)')
    .action(async (opts) => {
      if (opts.rootless) useRootlessDaemon({ start: false });
      if (await clearStaleState()) warnStale();
      const status: DaemonStatus = (await daemonRunning())
        ? await callDaemon<DaemonStatus>(DAEMON_PATHS.status)
        : { connected: false, daemonPid: 0 };
      await printResult(program.opts().output, status, () =>
        status.connected
          ? `${summary(status)}\nmanager ${status.managerVersion} in ${status.managerNamespace}; ` +
            `DNS ${status.dns?.mode}; tunnel reconnects ${status.reconnects}; daemon pid ${status.daemonPid}` +
            (status.podConnections
              ? `\nconnections straight to pods ${status.podConnections.direct} (through the manager after all: ${status.podConnections.fallbacks}); ` +
                `Services watched ${status.podConnections.watchedServices} (changes seen ${status.podConnections.endpointChanges})`
              : '') +
            (status.rootless ? `; rootless, namespace held by pid ${status.rootless.namespacePid}` : '') +
            tunnelLine(status) +
            interceptLines(status)
          : 'not connected',
      );
    });

  program
    .command('quit')
    .description('disconnect, undo every change on this machine and stop the daemon')
    .option('--rootless', 'the rootless session of `run --rootless` (docs/rootless.md)')
    .action(async (opts) => {
      if (opts.rootless) useRootlessDaemon({ start: false });
      const stale = await clearStaleState();
      if (stale) warnStale();
      const stopped = (await quitDaemon()) || stale;
      await printResult(program.opts().output, { stopped }, () =>
        stopped ? 'disconnected' : 'not connected',
      );
    });

  podOptions(
    connectOptions(
      program
        .command('run')
        .description('connect, run a command (default: your shell), then disconnect')
        .argument('[command...]', 'the command and its arguments, after --'),
    ),
  )
    .option(
      '--swap-deployment <deployment[:container]>',
      'replace the deployment by a proxy that sends its traffic here (scaled back on exit)',
    )
    .addOption(
      new Option(
        '--expose <local[:remote]>',
        "send the cluster's connections to <remote> to this local port (repeatable)",
      )
        .argParser(portCollector('--expose', true))
        .default([] as PortRequest[]),
    )
    .option(
      '--rootless',
      "without root: the command runs in a network namespace of its own, with the user's own daemon (docs/rootless.md)",
    )
    .action(async (command, opts) => {
      const swap = opts.swapDeployment?.split(':');
      if (swap && (!swap[0] || swap.length > 2)) {
        throw usageError(`--swap-deployment ${opts.swapDeployment}: expected <deployment>[:<container>]`);
      }
      if (opts.rootless) useRootlessDaemon(); // before anything changes
      const mount = await prepareMount(opts.mount);
      let info: InterceptInfo;
      let namespacePid: number | undefined;
      try {
        const status = await connect(program, opts);
        if (opts.rootless) namespacePid = rootlessNamespace(status);
        // Without --swap-deployment, a proxy pod of the session's own (exposing --expose ports,
        // if any) gives the command its environment and volumes.
        info = await callDaemonWithProgress<InterceptInfo>(
          DAEMON_PATHS.intercept,
          {
            mode: swap ? 'swap' : 'expose',
            workload: swap?.[0] ?? '',
            container: swap?.[1],
            ports: opts.expose,
            namespace: program.opts().namespace,
            mount,
          },
          await progressReporter(program.opts().output),
        );
      } catch (err) {
        await discardMount(mount);
        await quitDaemon();
        throw err;
      }
      try {
        if (program.opts().output === 'text') process.stderr.write(`telepod: ${describeIntercept(info)}\n`);
        const env = await podEnvironment(info, opts, true);
        process.exitCode = await runChild(command, env, namespacePid);
      } finally {
        await quitDaemon();
      }
    });

  program
    .command('daemon', { hidden: true })
    .description('run the root daemon (started by connect)')
    .option('--rootless', "run as the user, capturing in a network namespace of the daemon's own")
    .action(async (opts) => {
      const { runDaemon } = await import('../../daemon/main.ts');
      await runDaemon({ rootless: opts.rootless === true });
    });

  program
    .command('__netns-holder', { hidden: true })
    .description("hold a rootless daemon's network namespace (started by that daemon)")
    .action(async () => {
      const { runNamespaceHolder } = await import('../../daemon/rootless/holder.ts');
      await runNamespaceHolder();
    });
}
