// `telepod doctor`'s checks of this machine: the kernel features and tools telepod uses, root
// or sudo for the daemon, and state a crashed daemon left behind.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { captureMarker, mountsFile } from '../../protocol/daemon-api.ts';
import type { Check } from './check.ts';

function found(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

function sysctl(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Whether unprivileged user namespaces can be made, and if not, which setting says no. */
function userNamespaces(): Check {
  const name = 'user namespaces';
  const blockers = [
    ['/proc/sys/user/max_user_namespaces', '0', 'sysctl -w user.max_user_namespaces=15000'],
    ['/proc/sys/kernel/unprivileged_userns_clone', '0', 'sysctl -w kernel.unprivileged_userns_clone=1'],
    [
      '/proc/sys/kernel/apparmor_restrict_unprivileged_userns',
      '1',
      'sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 (or an AppArmor profile for telepod)',
    ],
  ] as const;
  for (const [path, bad, fix] of blockers) {
    if (sysctl(path) === bad) {
      return {
        name,
        ok: false,
        optional: true,
        detail: `${path} is ${bad}: not for unprivileged users`,
        fix,
      };
    }
  }
  return { name, ok: true, optional: true, detail: 'unprivileged users may create them' };
}

/** Who can start the root daemon: root itself, or sudo. */
function privilege(): Check {
  const name = 'root for the daemon';
  if (process.getuid?.() === 0) return { name, ok: true, detail: 'running as root' };
  if (!found('sudo'))
    return {
      name,
      ok: false,
      detail: 'not root, and sudo is missing',
      fix: 'install sudo, or run telepod as root',
    };
  const cached = spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore' }).status === 0;
  return {
    name,
    ok: true,
    detail: cached ? 'sudo works without a password now' : 'sudo asks for your password once',
  };
}

/** The checks of this machine; `daemonRunning` says whether a daemon answers now. */
export function localChecks(daemonRunning: boolean): Check[] {
  const tool = (name: string, command: string, detail: string, fix: string, optional = false): Check =>
    found(command)
      ? { name, ok: true, ...(optional ? { optional } : {}), detail: `${command} found: ${detail}` }
      : {
          name,
          ok: false,
          ...(optional ? { optional } : {}),
          detail: `${command} is missing: ${detail}`,
          fix,
        };
  const fuse = existsSync('/dev/fuse');
  const leftovers = [captureMarker(), mountsFile()].filter((file) => existsSync(file));
  return [
    tool('nftables', 'nft', 'the daemon captures cluster traffic with it', 'apt install nftables'),
    tool('conntrack', 'conntrack', 'a reconnect forgets stale DNS redirects', 'apt install conntrack', true),
    fuse
      ? tool('FUSE', 'sshfs', "the pod's volumes are mounted with it", 'apt install sshfs', true)
      : {
          name: 'FUSE',
          ok: false,
          optional: true,
          detail: "/dev/fuse is missing: the pod's volumes cannot be mounted",
          fix: 'modprobe fuse',
        },
    userNamespaces(),
    privilege(),
    !leftovers.length || daemonRunning
      ? { name: 'leftovers', ok: true, detail: 'no state of a crashed daemon' }
      : {
          name: 'leftovers',
          ok: false,
          detail: `a daemon was killed and left ${leftovers.join(', ')} (capture rules or mounts)`,
          fix: 'telepod connect clears them first',
        },
  ];
}
