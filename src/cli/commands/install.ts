// `telepod install` / `telepod uninstall`: the traffic manager's objects, applied or printed
// (`--dry-run`: YAML, or JSON with `-o json`), or removed with their namespace.
import { Option } from '@commander-js/extra-typings';
import { stringify } from 'yaml';
import { loadKubeConfig } from '../../kube/config.ts';
import {
  DEFAULT_IMAGE,
  DEFAULT_MANAGER_NAMESPACE,
  installManager,
  managerObjects,
  readManagerBundle,
  uninstallManager,
} from '../../kube/manager-install.ts';
import type { Program } from '../program.ts';

export function addInstallCommands(program: Program): void {
  program
    .command('install')
    .description('install or upgrade the traffic manager in the cluster')
    .option('--manager-namespace <ns>', 'namespace of the traffic manager', DEFAULT_MANAGER_NAMESPACE)
    .option('--image <image>', 'image with node for the in-cluster side', DEFAULT_IMAGE)
    .addOption(new Option('--dry-run', 'print the manifests instead of applying them'))
    .action(async (opts) => {
      const objects = managerObjects(readManagerBundle(), opts.image, opts.managerNamespace);
      const list = [
        objects.namespace,
        objects.serviceAccount,
        objects.clusterRole,
        objects.clusterRoleBinding,
        objects.configMap,
        objects.service,
        objects.deployment,
      ];
      if (opts.dryRun) {
        const json = program.opts().output === 'json';
        process.stdout.write(
          json ? `${JSON.stringify(list, null, 2)}\n` : list.map((o) => stringify(o)).join('---\n'),
        );
        return;
      }
      const changed = await installManager(loadKubeConfig(program.opts()).kc, objects);
      process.stdout.write(
        changed
          ? `traffic manager installed in namespace ${opts.managerNamespace}\n`
          : `traffic manager in namespace ${opts.managerNamespace} is up to date\n`,
      );
    });

  program
    .command('uninstall')
    .description('remove the traffic manager, its namespace and its ClusterRole from the cluster')
    .option('--manager-namespace <ns>', 'namespace of the traffic manager', DEFAULT_MANAGER_NAMESPACE)
    .action(async (opts) => {
      await uninstallManager(loadKubeConfig(program.opts()).kc, opts.managerNamespace);
      process.stdout.write(`traffic manager namespace ${opts.managerNamespace} deleted\n`);
    });
}
