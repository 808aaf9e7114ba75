// Exec credential plugins (EKS `aws eks get-token`, `gke-gcloud-auth-plugin`, `kubelogin`, OIDC
// helpers) must run as the developer, with their HOME and environment, to find their cloud
// credentials — never as root with root's. And the developer's kubeconfig and environment must
// never reach a process that runs as root: a PATH, LD_PRELOAD or GCONV_PATH of theirs in a root
// process is root for them. So in the root daemon, plugins are spawned straight as the user who
// started it through sudo (Node's spawn with uid/gid: the child drops to the user before it
// executes anything, and keeps no supplementary groups), with the environment the CLI had; and
// a kubeconfig that would make root run a command or read a file for the user is refused.
import type { KubeConfig, User } from '@kubernetes/client-node';
import { spawn, type SpawnOptions } from 'node:child_process';
import { usageError } from '../protocol/errors.ts';

/** Who the plugins run as: the user who started the daemon through sudo. */
export interface PluginUser {
  uid: number;
  gid: number;
}

interface ExecConfig {
  command: string;
  args?: string[];
  env?: { name: string; value: string }[];
}

/** The user who started this (root) process through sudo, if any and not root. */
export function sudoUser(env = process.env): PluginUser | undefined {
  const uid = Number(env.SUDO_UID);
  const gid = Number(env.SUDO_GID);
  if (process.getuid?.() !== 0 || !Number.isInteger(uid) || uid <= 0 || !Number.isInteger(gid))
    return undefined;
  return { uid, gid };
}

/** Auth providers that run a command or read a file themselves (as whoever loads the kubeconfig). */
function rootOnlyAuth(user: User): string | undefined {
  const provider = user.authProvider as { name?: string; config?: Record<string, unknown> } | undefined;
  if (!provider) return undefined;
  if (
    ['gcp', 'azure'].includes(provider.name ?? '') ||
    provider.config?.['cmd-path'] ||
    provider.config?.exec
  ) {
    return `user ${user.name}: auth-provider ${provider.name ?? ''} runs commands itself; use an exec credential plugin (kubectl's replacement for it)`;
  }
  return undefined;
}

/** Files the kubeconfig still names (the CLI inlines them as data before it sends the kubeconfig). */
function fileReferences(kc: KubeConfig): string[] {
  return [
    ...kc.clusters.filter((c) => c.caFile).map((c) => `cluster ${c.name}: certificate-authority ${c.caFile}`),
    ...kc.users.flatMap((u) => [
      ...(u.certFile ? [`user ${u.name}: client-certificate ${u.certFile}`] : []),
      ...(u.keyFile ? [`user ${u.name}: client-key ${u.keyFile}`] : []),
    ]),
  ];
}

/** The authenticator client-node keeps on every KubeConfig for exec plugins: the one with `execFn`. */
function execAuthenticator(kc: KubeConfig): { execFn: typeof spawn } {
  const all = (kc as unknown as { authenticators: object[] }).authenticators;
  const found = all.find((a): a is { execFn: typeof spawn } => 'execFn' in a);
  if (!found) throw new Error('this @kubernetes/client-node has no exec authenticator to adapt');
  return found;
}

/**
 * Makes every exec plugin of `kc` run with `env` (the plugin's own env entries still win), and,
 * for a sudo user, spawned as that user; refuses what would run or read anything as root for them.
 */
export function runPluginsAs(
  kc: KubeConfig,
  env: Record<string, string>,
  user: PluginUser | undefined,
): void {
  for (const entry of kc.users) {
    const exec = entry.exec as ExecConfig | undefined;
    if (!exec?.command) continue;
    const withEnv = [...Object.entries(env).map(([name, value]) => ({ name, value })), ...(exec.env ?? [])];
    (entry as { exec?: ExecConfig }).exec = { ...exec, env: withEnv };
  }
  if (!user) return;
  const refused = [...kc.users.map(rootOnlyAuth).filter((r): r is string => !!r), ...fileReferences(kc)];
  if (refused.length)
    throw usageError(`the kubeconfig cannot be used by the root daemon: ${refused.join('; ')}`);
  const authenticator = execAuthenticator(kc);
  authenticator.execFn = ((command: string, args: readonly string[], options: SpawnOptions) =>
    spawn(command, args, {
      ...options,
      uid: user.uid,
      gid: user.gid,
      ...(env.HOME ? { cwd: env.HOME } : {}),
    })) as typeof spawn;
}
