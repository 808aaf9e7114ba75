// Whether this user may make user and network namespaces (rootless mode needs both), and if
// not, which setting says no and how to change it. Shared by `run --rootless` and `doctor`.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Why user namespaces cannot be made here, and what to change. */
export interface NamespaceBlocker {
  detail: string;
  fix: string;
}

function sysctl(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

const BLOCKERS = [
  ['/proc/sys/user/max_user_namespaces', '0', 'sysctl -w user.max_user_namespaces=15000'],
  ['/proc/sys/kernel/unprivileged_userns_clone', '0', 'sysctl -w kernel.unprivileged_userns_clone=1'],
  [
    '/proc/sys/kernel/apparmor_restrict_unprivileged_userns',
    '1',
    'sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 (or an AppArmor profile for telepod)',
  ],
] as const;

/** The setting that forbids them, read from /proc/sys; undefined when none does. */
export function namespaceSettingBlocker(): NamespaceBlocker | undefined {
  for (const [path, bad, fix] of BLOCKERS) {
    if (sysctl(path) === bad) return { detail: `${path} is ${bad}: not for unprivileged users`, fix };
  }
  return undefined;
}

/**
 * Tries it (`unshare --user --map-current-user --net true`): the settings above, or anything
 * else (a seccomp or LSM policy, a missing `unshare`), answered with the kernel's own words.
 */
export function userNamespaceBlocker(): NamespaceBlocker | undefined {
  const setting = namespaceSettingBlocker();
  if (setting) return setting;
  const tried = spawnSync('unshare', ['--user', '--map-current-user', '--net', 'true'], { encoding: 'utf8' });
  if (tried.status === 0) return undefined;
  const why = tried.error?.message ?? tried.stderr.trim();
  return {
    detail: `cannot make a user and network namespace: ${why || `unshare exited with ${tried.status}`}`,
    fix: 'allow unprivileged user namespaces (sysctl user.max_user_namespaces), and install util-linux',
  };
}
