// The intercepted container's environment on the workstation: given to `-- cmd` (and the
// default subshell), and written with `--env-file` (docker/dotenv, or sh/json with
// `--env-syntax`) and `--env-json`. The files hold secrets, so they are created with mode 0600.
import { Option, type Command, type OptionValues } from '@commander-js/extra-typings';
import { chmod, writeFile } from 'node:fs/promises';
import { DAEMON_PATHS } from '../protocol/daemon-api.ts';
import { usageError } from '../protocol/errors.ts';
import type { InterceptInfo } from '../protocol/intercept.ts';
import { callDaemon } from './daemon-client.ts';

export const ENV_SYNTAXES = ['docker', 'sh', 'json'] as const;
export type EnvSyntax = (typeof ENV_SYNTAXES)[number];

export interface EnvFlags {
  envFile?: string | undefined;
  envSyntax: EnvSyntax;
  envJson?: string | undefined;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- commander's own generic shape
export function envOptions<A extends any[], O extends OptionValues, G extends OptionValues>(
  command: Command<A, O, G>,
) {
  return command
    .option('--env-file <path>', "write the pod's environment to this file (mode 0600)")
    .addOption(
      new Option('--env-syntax <syntax>', 'syntax of --env-file')
        .choices(ENV_SYNTAXES)
        .default<EnvSyntax>('docker'),
    )
    .option('--env-json <path>', "write the pod's environment as JSON to this file (mode 0600)");
}

const shQuote = (value: string) => `'${value.replaceAll("'", `'\\''`)}'`;

/**
 * The environment in a file syntax. Docker's --env-file has no quoting, so a value with a line
 * break cannot be written there: such names come back in `skipped`.
 */
export function formatEnv(
  env: Record<string, string>,
  syntax: EnvSyntax,
): { text: string; skipped: string[] } {
  const names = Object.keys(env).sort();
  if (syntax === 'json') return { text: `${JSON.stringify(env, null, 2)}\n`, skipped: [] };
  if (syntax === 'sh')
    return { text: names.map((n) => `export ${n}=${shQuote(env[n]!)}\n`).join(''), skipped: [] };
  const skipped = names.filter((n) => /[\r\n]/.test(env[n]!));
  const lines = names.filter((n) => !skipped.includes(n)).map((n) => `${n}=${env[n]}\n`);
  return { text: lines.join(''), skipped };
}

async function writeSecretFile(path: string, text: string): Promise<void> {
  try {
    await writeFile(path, text, { mode: 0o600 });
    await chmod(path, 0o600); // an existing file keeps its old mode otherwise
  } catch (err) {
    throw usageError(`cannot write ${path}: ${(err as Error).message}`);
  }
}

export async function writeEnvFiles(env: Record<string, string>, flags: EnvFlags): Promise<void> {
  if (flags.envFile) {
    const { text, skipped } = formatEnv(env, flags.envSyntax);
    await writeSecretFile(flags.envFile, text);
    if (skipped.length) {
      process.stderr.write(
        `telepod: left out of ${flags.envFile} (line breaks cannot be written in docker syntax): ${skipped.join(', ')}\n`,
      );
    }
  }
  if (flags.envJson) await writeSecretFile(flags.envJson, formatEnv(env, 'json').text);
}

/**
 * Fetches the intercepted container's environment when a command will run or a file is asked
 * for, writes the files, and answers the environment for the command.
 */
export async function podEnvironment(
  info: InterceptInfo,
  flags: EnvFlags,
  forCommand: boolean,
): Promise<Record<string, string>> {
  if (!forCommand && !flags.envFile && !flags.envJson) return {};
  const env = await callDaemon<Record<string, string>>(DAEMON_PATHS.env, { id: info.id });
  await writeEnvFiles(env, flags);
  return env;
}
