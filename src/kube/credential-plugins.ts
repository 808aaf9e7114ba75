// Exec credential plugins (EKS `aws eks get-token`, `gke-gcloud-auth-plugin`, `kubelogin`, OIDC
// helpers) must run as the developer, with their HOME and environment, to find their cloud
// credentials — never as root with root's. The root daemon therefore rewrites each plugin of the
// kubeconfig the CLI sent: it runs through `setpriv` as the invoking user, with the environment
// the CLI had (kubectl runs plugins with its own environment, which is the user's).
import type { KubeConfig } from '@kubernetes/client-node';

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

/**
 * Makes every exec plugin of `kc` run with `env` (the plugin's own env entries still win), and
 * as `user` when given (through util-linux's `setpriv`, with the user's supplementary groups).
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
    const asUser = user
      ? {
          command: 'setpriv',
          args: [
            '--reuid',
            String(user.uid),
            '--regid',
            String(user.gid),
            '--init-groups',
            '--',
            exec.command,
            ...(exec.args ?? []),
          ],
        }
      : {};
    (entry as { exec?: ExecConfig }).exec = { ...exec, ...asUser, env: withEnv };
  }
}
