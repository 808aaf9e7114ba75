// `telepod doctor`: checks this machine and the cluster for what telepod needs, each with OK or
// the fix; exits 1 when a check that every command needs fails.
import { DEFAULT_MANAGER_NAMESPACE } from '../../kube/defaults.ts';
import { DAEMON_PATHS, type DaemonStatus } from '../../protocol/daemon-api.ts';
import { callDaemon, daemonRunning } from '../daemon-client.ts';
import { failed, reportLines, type Check } from '../doctor/check.ts';
import { localChecks } from '../doctor/local-checks.ts';
import { printResult } from '../output.ts';
import type { Program } from '../program.ts';

export function addDoctorCommand(program: Program): void {
  program
    .command('doctor')
    .description('check this machine and the cluster for what telepod needs, with the fix for each problem')
    .option('--manager-namespace <ns>', "the traffic manager's namespace", DEFAULT_MANAGER_NAMESPACE)
    .action(async (opts) => {
      // Loaded here: the Kubernetes client library costs every other command's start.
      const { loadKubeConfig } = await import('../../kube/config.ts');
      const { clusterChecks } = await import('../doctor/cluster-checks.ts');
      const running = await daemonRunning();
      const status = running ? await callDaemon<DaemonStatus>(DAEMON_PATHS.status) : undefined;
      let checks: Check[] = localChecks(running);
      try {
        const { kc, namespace } = loadKubeConfig(program.opts());
        checks = [...checks, ...(await clusterChecks(kc, namespace, opts.managerNamespace, status))];
      } catch (err) {
        checks.push({
          name: 'kubeconfig',
          ok: false,
          detail: (err as Error).message,
          fix: 'give --kubeconfig, or set $KUBECONFIG',
        });
      }
      await printResult(program.opts().output, { ok: !failed(checks), checks }, () => reportLines(checks));
      if (failed(checks)) process.exitCode = 1;
    });
}
