// `telepod doctor`'s checks of this machine: the kernel features and tools telepod uses, root
// or sudo for the daemon, and state a crashed daemon left behind.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { captureMarker, mountsFile } from '../../protocol/daemon-api.ts';
import { namespaceSettingBlocker } from '../user-namespaces.ts';
import type { Check } from './check.ts';

function found(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

/** Whether unprivileged user namespaces can be made, and if not, which setting says no. */
function userNamespaces(): Check {
  const name = 'user namespaces';
  const blocker = namespaceSettingBlocker();
  if (blocker) return { name, ok: false, optional: true, ...blocker };
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
