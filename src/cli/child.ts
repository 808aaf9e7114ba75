// Runs the user's command (default: their shell) with the terminal, and answers its exit code.
// Ctrl-C goes to the command (same process group); telepod waits for it and then cleans up.
import { spawn } from 'node:child_process';
import { usageError } from '../protocol/errors.ts';

/** Runs `command` with the workstation's environment plus `env` (the pod's values win). */
export async function runChild(command: string[], env: Record<string, string> = {}): Promise<number> {
  const [file, ...args] = command.length ? command : [process.env.SHELL ?? '/bin/sh'];
  const ignore = () => undefined;
  process.on('SIGINT', ignore);
  try {
    return await new Promise<number>((resolve, reject) => {
      const child = spawn(file!, args, { stdio: 'inherit', env: { ...process.env, ...env } });
      child.on('error', (err) => reject(usageError(`cannot run ${file}: ${err.message}`)));
      child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    });
  } finally {
    process.off('SIGINT', ignore);
  }
}
