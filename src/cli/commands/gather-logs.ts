// `telepod gather-logs [--file telepod-logs.tar.gz]`: the logs and state a bug report needs, in
// one archive, secrets redacted (src/cli/gather-logs.ts). `-o` stays the output format of every
// command, so the archive is named with --file.
import { TelepodError } from '../../protocol/errors.ts';
import type { PodContext } from '../../protocol/intercept.ts';
import { DEFAULT_MANAGER_NAMESPACE } from '../../kube/defaults.ts';
import { DAEMON_PATHS, daemonLog, type DaemonStatus } from '../../protocol/daemon-api.ts';
import { callDaemon, daemonRunning } from '../daemon-client.ts';
import type { Gathered } from '../gather-logs.ts';
import { printResult } from '../output.ts';
import type { Program } from '../program.ts';

export function addGatherLogsCommand(program: Program): void {
  program
    .command('gather-logs')
    .description(
      "the daemon's, the traffic manager's and the agents' logs and status, secrets redacted, for a bug report",
    )
    .option('--file <archive>', 'where to write the .tar.gz', 'telepod-logs.tar.gz')
    .option('--manager-namespace <ns>', "the traffic manager's namespace", DEFAULT_MANAGER_NAMESPACE)
    .action(async (opts) => {
      // Loaded here: the Kubernetes client library costs every other command's start.
      const { loadKubeConfig } = await import('../../kube/config.ts');
      const { clusterLogs, daemonLogs, writeArchive } = await import('../gather-logs.ts');
      const status = (await daemonRunning())
        ? await callDaemon<DaemonStatus>(DAEMON_PATHS.status)
        : undefined;
      // The intercepted pods' environment values hold the Secrets they reference: none may leave.
      const secrets: string[] = [];
      for (const intercept of status?.intercepts ?? []) {
        // Without the values to redact, nothing is written (fail closed).
        const context = await callDaemon<PodContext>(DAEMON_PATHS.context, { id: intercept.id }).catch(
          (err: Error) => {
            throw new TelepodError(
              `cannot read the environment of the intercept of ${intercept.workload} to redact it (${err.message}); nothing was written`,
            );
          },
        );
        secrets.push(...Object.values(context.env));
      }
      const parts: Gathered[] = [
        ...daemonLogs(daemonLog()),
        { name: 'status.json', text: `${JSON.stringify(status ?? { connected: false }, null, 2)}\n` },
      ];
      try {
        parts.push(...(await clusterLogs(loadKubeConfig(program.opts()).kc, opts.managerNamespace, status)));
      } catch (err) {
        parts.push({ name: 'cluster.txt', text: `no cluster logs: ${(err as Error).message}\n` });
      }
      writeArchive(opts.file, parts, secrets);
      const files = parts.map((p) => p.name);
      await printResult(
        program.opts().output,
        { archive: opts.file, files },
        () => `wrote ${opts.file}: ${files.join(', ')}`,
      );
    });
}
