// Runs the user's command (default: their shell) with the terminal, and answers its exit code.
// Ctrl-C goes to the command (same process group); telepod waits for it and then cleans up.
// In rootless mode the command runs in the daemon's network namespace, entered with `nsenter`
// as the user (no capabilities there, the user's own uid).
import { spawn } from 'node:child_process';
import { usageError } from '../protocol/errors.ts';
import { commandEnvironment } from './daemon-client.ts';

/**
 * Runs `command` with the workstation's environment plus `env` (the pod's values win); with
 * `namespacePid`, inside that process's user and network namespace.
 */
export async function runChild(
  command: string[],
  env: Record<string, string> = {},
  namespacePid?: number,
): Promise<number> {
  const [file, ...args] = command.length ? command : [process.env.SHELL ?? '/bin/sh'];
  const enter = namespacePid
    ? ['nsenter', `--target=${namespacePid}`, '--user', '--net', '--preserve-credentials', '--']
    : [];
  const [program, ...programArgs] = [...enter, file!, ...args];
  const ignore = () => undefined;
  process.on('SIGINT', ignore);
  try {
    return await new Promise<number>((resolve, reject) => {
      const child = spawn(program!, programArgs, {
        stdio: 'inherit',
        env: { ...commandEnvironment(), ...env },
      });
      child.on('error', (err) => reject(usageError(`cannot run ${file}: ${err.message}`)));
      child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    });
  } finally {
    process.off('SIGINT', ignore);
  }
}
