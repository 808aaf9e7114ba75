// The pod's environment in files: `--env-file` (docker/dotenv, or sh/json with `--env-syntax`)
// and `--env-json`. The files hold secrets, so they are created with mode 0600.
import { chmod, writeFile } from 'node:fs/promises';
import { usageError } from '../protocol/errors.ts';

export const ENV_SYNTAXES = ['docker', 'sh', 'json'] as const;
export type EnvSyntax = (typeof ENV_SYNTAXES)[number];

export interface EnvFlags {
  envFile?: string | undefined;
  envSyntax: EnvSyntax;
  envJson?: string | undefined;
}

const shQuote = (value: string) => `'${value.replaceAll("'", `'\\''`)}'`;

/** A name a shell can export (the pod may have others: Kubernetes allows most printable names). */
const SHELL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The environment in a file syntax. Docker's --env-file has no quoting, so a value with a line
 * break cannot be written there, and a sh file takes only names a shell can export (a name is
 * never quoted, so it must not be code): such names come back in `skipped`.
 */
export function formatEnv(
  env: Record<string, string>,
  syntax: EnvSyntax,
): { text: string; skipped: string[] } {
  const names = Object.keys(env).sort();
  if (syntax === 'json') return { text: `${JSON.stringify(env, null, 2)}\n`, skipped: [] };
  if (syntax === 'sh') {
    const skipped = names.filter((n) => !SHELL_NAME.test(n));
    const lines = names.filter((n) => SHELL_NAME.test(n)).map((n) => `export ${n}=${shQuote(env[n]!)}\n`);
    return { text: lines.join(''), skipped };
  }
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
        `telepod: left out of ${flags.envFile} (not expressible in ${flags.envSyntax} syntax): ${skipped.join(', ')}\n`,
      );
    }
  }
  if (flags.envJson) await writeSecretFile(flags.envJson, formatEnv(env, 'json').text);
}
