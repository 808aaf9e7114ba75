// `telepod install` / `telepod uninstall`: the traffic manager's objects, applied or printed
// (`--dry-run`: YAML, or JSON with `-o json`), or removed with their namespace.
import { Option } from '@commander-js/extra-typings';
import { DEFAULT_IMAGE, DEFAULT_MANAGER_NAMESPACE } from '../../kube/defaults.ts';
import { DORMANT_AGENT_MINUTES, MAX_AGENT_IDLE_SECONDS } from '../../protocol/intercept.ts';
import { kubeLabel } from '../../protocol/requests.ts';
import { usageError } from '../../protocol/errors.ts';
import type { Program } from '../program.ts';

/** `--namespaces a,b`: the manager gets Roles in those namespaces only, and no cluster-wide rights. */
export function namespacesOption() {
  return new Option(
    '--namespaces <a,b>',
    'install the traffic manager for these namespaces only (Roles, no ClusterRole)',
  ).argParser((value: string) => {
    const names = value.split(',').map((n) => n.trim());
    const bad = names.find((n) => !kubeLabel.safeParse(n).success);
    if (bad !== undefined) throw usageError(`--namespaces ${value}: "${bad}" is not a namespace name`);
    return [...new Set(names)];
  });
}

const UNIT_SECONDS = { s: 1, m: 60, h: 3600 } as const;

/** `--agent-idle`: `90s`, `15m`, `2h` or `0` as seconds; a usage error for anything else or over a day. */
export function parseIdleTime(value: string): number {
  const match = /^(?:0|(\d{1,6})(s|m|h))$/.exec(value.trim());
  const seconds = !match
    ? NaN
    : match[1] === undefined
      ? 0
      : Number(match[1]) * UNIT_SECONDS[match[2] as keyof typeof UNIT_SECONDS];
  if (!(seconds <= MAX_AGENT_IDLE_SECONDS)) {
    throw usageError(
      `--agent-idle ${value}: give a time such as 90s, 15m or 2h (at most 24h), or 0 to restore at leave`,
    );
  }
  return seconds;
}

export function addInstallCommands(program: Program): void {
  program
    .command('install')
    .description('install or upgrade the traffic manager in the cluster')
    .option('--manager-namespace <ns>', 'namespace of the traffic manager', DEFAULT_MANAGER_NAMESPACE)
    .option('--image <image>', 'image with node for the in-cluster side', DEFAULT_IMAGE)
    .addOption(namespacesOption())
    .addOption(
      new Option(
        '--agent-idle <time>',
        `how long an intercepted workload keeps its agent after the last leave, for a re-intercept without rollout (default ${DORMANT_AGENT_MINUTES}m; 0: restore at leave)`,
      ).argParser(parseIdleTime),
    )
    .addOption(new Option('--dry-run', 'print the manifests instead of applying them'))
    .action(async (opts) => {
      const { loadKubeConfig } = await import('../../kube/config.ts');
      const { installManager, managerObjects, manifests, readManagerBundle } =
        await import('../../kube/manager-install.ts');
      const objects = managerObjects(readManagerBundle(), {
        image: opts.image,
        namespace: opts.managerNamespace,
        scope: opts.namespaces,
        agentIdleSeconds: opts.agentIdle,
      });
      const list = manifests(objects);
      if (opts.dryRun) {
        const json = program.opts().output === 'json';
        const { stringify } = await import('../yaml.ts');
        process.stdout.write(
          json ? `${JSON.stringify(list, null, 2)}\n` : list.map((o) => stringify(o)).join('---\n'),
        );
        return;
      }
      const changed = await installManager(loadKubeConfig(program.opts()).kc, objects);
      process.stdout.write(
        changed
          ? `traffic manager installed or upgraded in namespace ${opts.managerNamespace} (sessions and intercepts carry over)\n`
          : `traffic manager in namespace ${opts.managerNamespace} is up to date\n`,
      );
    });

  program
    .command('uninstall')
    .description('remove the traffic manager, its namespace and its rights from the cluster')
    .option('--manager-namespace <ns>', 'namespace of the traffic manager', DEFAULT_MANAGER_NAMESPACE)
    .action(async (opts) => {
      const { loadKubeConfig } = await import('../../kube/config.ts');
      const { uninstallManager } = await import('../../kube/manager-install.ts');
      await uninstallManager(loadKubeConfig(program.opts()).kc, opts.managerNamespace);
      process.stdout.write(`traffic manager namespace ${opts.managerNamespace} deleted\n`);
    });
}
