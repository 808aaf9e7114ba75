// What the workstation gets of the pod behind an intercept, besides its traffic: the
// environment (for `-- cmd`, the default subshell and the env files) and the volumes, mounted
// by the daemon under `$TELEPOD_ROOT`. The mount folder is checked (or made) here, before
// anything changes, so a bad `--mount` fails with nothing to undo.
import { Option, type Command, type OptionValues } from '@commander-js/extra-typings';
import { constants } from 'node:fs';
import { access, mkdir, mkdtemp, readdir, rmdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DAEMON_PATHS, type MountRequest } from '../protocol/daemon-api.ts';
import { usageError } from '../protocol/errors.ts';
import type { InterceptInfo, PodContext } from '../protocol/intercept.ts';
import { callDaemon } from './daemon-client.ts';
import { ENV_SYNTAXES, writeEnvFiles, type EnvFlags, type EnvSyntax } from './pod-env.ts';

export interface PodFlags extends EnvFlags {
  mount: string;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- commander's own generic shape
export function podOptions<A extends any[], O extends OptionValues, G extends OptionValues>(
  command: Command<A, O, G>,
) {
  return command
    .option('--env-file <path>', "write the pod's environment to this file (mode 0600)")
    .addOption(
      new Option('--env-syntax <syntax>', 'syntax of --env-file')
        .choices(ENV_SYNTAXES)
        .default<EnvSyntax>('docker'),
    )
    .option('--env-json <path>', "write the pod's environment as JSON to this file (mode 0600)")
    .option(
      '--mount <dir|true|false>',
      "mount the pod's volumes here (true: a fresh folder; false: do not mount)",
      'true',
    );
}

/** Who is to own the mounted files: the user behind sudo, or whoever runs telepod. */
function owner(): { uid: number; gid: number } {
  const sudo = { uid: Number(process.env.SUDO_UID), gid: Number(process.env.SUDO_GID) };
  if (Number.isInteger(sudo.uid) && Number.isInteger(sudo.gid)) return sudo;
  return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
}

/** Checks `--mount` (an empty, writable folder, made if missing) or makes a fresh folder. */
export async function prepareMount(flag: string): Promise<MountRequest | undefined> {
  if (flag === 'false') return undefined;
  if (flag === 'true')
    return { dir: await mkdtemp(path.join(tmpdir(), 'telepod-')), created: true, ...owner() };
  const dir = path.resolve(flag);
  const found = await stat(dir).catch(() => undefined);
  if (!found) {
    await mkdir(dir, { recursive: true }).catch((err: Error) => {
      throw usageError(`--mount ${flag}: cannot create the folder: ${err.message}`);
    });
    return { dir, created: true, ...owner() };
  }
  if (!found.isDirectory()) throw usageError(`--mount ${flag}: not a folder`);
  if ((await readdir(dir)).length) throw usageError(`--mount ${flag}: the folder is not empty`);
  await access(dir, constants.W_OK).catch(() => {
    throw usageError(`--mount ${flag}: the folder is not writable`);
  });
  return { dir, created: false, ...owner() };
}

/** Removes a folder prepareMount made, when the intercept it was for did not happen. */
export async function discardMount(mount: MountRequest | undefined): Promise<void> {
  if (mount?.created) await rmdir(mount.dir).catch(() => undefined);
}

/**
 * Fetches the pod's context when a command will run or a file is asked for, writes the files,
 * and answers the environment for the command: the pod's, plus `TELEPOD_ROOT` (where the
 * volumes are mounted) and `TELEPOD_MOUNTS` (their paths in the pod, colon-separated).
 */
export async function podEnvironment(
  info: InterceptInfo,
  flags: PodFlags,
  forCommand: boolean,
): Promise<Record<string, string>> {
  if (!forCommand && !flags.envFile && !flags.envJson) return {};
  const context = await callDaemon<PodContext>(DAEMON_PATHS.context, { id: info.id });
  const env = {
    ...context.env,
    TELEPOD_MOUNTS: context.mounts.join(':'),
    ...(info.volumes?.root ? { TELEPOD_ROOT: info.volumes.root } : {}),
  };
  await writeEnvFiles(env, flags);
  return env;
}
