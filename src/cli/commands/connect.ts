// `telepod connect`, `status`, `quit` and `run`: the outbound half of telepod — cluster
// Services, pod IPs and DNS names reachable from every process on the workstation.
import { Option, type Command, type OptionValues } from '@commander-js/extra-typings';
import { spawn } from 'node:child_process';
import { homedir } from 'node:os';
import { DEFAULT_IMAGE, DEFAULT_MANAGER_NAMESPACE } from '../../kube/manager-install.ts';
import { isCidr } from '../../kube/subnets.ts';
import { DAEMON_PATHS, type ConnectRequest, type DaemonStatus } from '../../protocol/daemon-api.ts';
import { usageError } from '../../protocol/errors.ts';
import { callDaemon, clearStaleState, daemonRunning, ensureDaemon, quitDaemon } from '../daemon-client.ts';
import { loadKubeConfig } from '../../kube/config.ts';
import { printResult } from '../output.ts';
import type { Program } from '../program.ts';

const collect = (value: string, previous: string[]) => {
  if (!isCidr(value)) throw usageError(`"${value}" is not an IPv4 CIDR such as 10.0.0.0/8`);
  return [...previous, value];
};

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- commander's own generic shape
function connectOptions<A extends any[], O extends OptionValues, G extends OptionValues>(
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
    .option('--image <image>', 'image with node for the in-cluster side', DEFAULT_IMAGE);
}

function warnStale(): void {
  process.stderr.write('telepod: removed the rules a crashed daemon had left behind\n');
}

function summary(s: DaemonStatus): string {
  return `connected to context ${s.context}, namespace ${s.namespace}; routing ${s.subnets?.join(', ')}`;
}

async function connect(
  program: Program,
  opts: { alsoProxy: string[]; neverProxy: string[]; managerNamespace: string; image: string },
) {
  const globals = program.opts();
  const request: ConnectRequest = {
    kubeconfig: globals.kubeconfig ?? process.env.KUBECONFIG ?? `${homedir()}/.kube/config`,
    context: globals.context,
    namespace: globals.namespace,
    alsoProxy: opts.alsoProxy,
    neverProxy: opts.neverProxy,
    managerNamespace: opts.managerNamespace,
    image: opts.image,
  };
  loadKubeConfig(request); // a bad kubeconfig or context fails here, before anything starts
  if (await clearStaleState()) warnStale();
  if (globals.output === 'text') process.stderr.write('telepod: starting the daemon and connecting ...\n');
  // Ctrl-C while connecting: undo whatever the daemon did so far and stop it.
  const interrupted = () => {
    void quitDaemon().finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  try {
    await ensureDaemon();
    return await callDaemon<DaemonStatus>(DAEMON_PATHS.connect, request);
  } finally {
    process.off('SIGINT', interrupted);
  }
}

export function addConnectCommands(program: Program): void {
  connectOptions(program.command('connect').description('connect the workstation to the cluster')).action(
    async (opts) => {
      const status = await connect(program, opts);
      printResult(program.opts().output, status, () => summary(status));
    },
  );

  program
    .command('status')
    .description('show whether telepod is connected, and to what')
    .action(async () => {
      if (await clearStaleState()) warnStale();
      const status: DaemonStatus = (await daemonRunning())
        ? await callDaemon<DaemonStatus>(DAEMON_PATHS.status)
        : { connected: false, daemonPid: 0 };
      printResult(program.opts().output, status, () =>
        status.connected
          ? `${summary(status)}\nmanager ${status.managerVersion} in ${status.managerNamespace}; ` +
            `DNS ${status.dns?.mode}; tunnel reconnects ${status.reconnects}; daemon pid ${status.daemonPid}`
          : 'not connected',
      );
    });

  program
    .command('quit')
    .description('disconnect, undo every change on this machine and stop the daemon')
    .action(async () => {
      const stale = await clearStaleState();
      if (stale) warnStale();
      const stopped = (await quitDaemon()) || stale;
      printResult(program.opts().output, { stopped }, () => (stopped ? 'disconnected' : 'not connected'));
    });

  connectOptions(
    program
      .command('run')
      .description('connect, run a command (default: your shell), then disconnect')
      .argument('[command...]', 'the command and its arguments, after --'),
  ).action(async (command, opts) => {
    await connect(program, opts);
    const [file, ...args] = command.length ? command : [process.env.SHELL ?? '/bin/sh'];
    try {
      const code = await new Promise<number>((resolve, reject) => {
        const child = spawn(file!, args, { stdio: 'inherit' });
        child.on('error', (err) => reject(usageError(`cannot run ${file}: ${err.message}`)));
        child.on('exit', (c, signal) => resolve(c ?? (signal ? 128 : 1)));
      });
      process.exitCode = code;
    } finally {
      await quitDaemon();
    }
  });

  program
    .command('daemon', { hidden: true })
    .description('run the root daemon (started by connect)')
    .action(async () => {
      const { runDaemon } = await import('../../daemon/main.ts');
      await runDaemon();
    });
}
