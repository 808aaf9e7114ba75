// The daemon's tunnel to the traffic manager as a session starts it: the manager installed or
// upgraded when this telepod's is not running (what that found is kept as notices for the
// developer), then a TunnelKeeper whose first dial waits for that manager's pod and whose
// redials take any ready one, presenting the session's token.
import type { KubeConfig } from '@kubernetes/client-node';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { ensureManager, managerObjects, readManagerBundle } from '../kube/manager-install.ts';
import { waitForManagerPod } from '../kube/manager-pods.ts';
import { openPortForward } from '../kube/portforward.ts';
import type { ConnectRequest, ProgressStep } from '../protocol/daemon-api.ts';
import { MANAGER_PORT } from '../protocol/paths.ts';
import { Tunnel } from './tunnel.ts';
import { TunnelKeeper } from './tunnel-keeper.ts';

/** Who holds this session's intercepts, as other developers see it. */
function holder(): string {
  return `${process.env.SUDO_USER ?? process.env.USER ?? 'root'}@${hostname()}`;
}

/** Makes sure the manager runs and opens the kept tunnel to it; `notices` are worth telling the developer. */
export async function openManagerTunnel(
  req: ConnectRequest,
  kc: KubeConfig,
  log: Logger,
  step: ProgressStep,
): Promise<{ tunnel: TunnelKeeper; notices: string[] }> {
  const objects = managerObjects(readManagerBundle(), {
    image: req.image,
    namespace: req.managerNamespace,
    scope: req.namespaces,
  });
  const notices: string[] = [];
  step(`checking the traffic manager in namespace ${req.managerNamespace}`);
  const version = await ensureManager(
    kc,
    objects,
    (message) => {
      log.warn(message);
      notices.push(message);
    },
    step,
  );
  // The first dial waits for the manager this telepod installed; a redial takes any ready
  // one (it may have been upgraded meanwhile), whose protocol the tunnel then checks.
  let firstDial: ProgressStep | undefined = step;
  const dial = async (resumeToken?: string) => {
    const bundle = resumeToken ? undefined : version;
    firstDial?.('waiting for the traffic manager pod to be ready');
    const pod = await waitForManagerPod(kc, req.managerNamespace, bundle, 120_000);
    firstDial?.(`opening the tunnel to ${pod}`);
    const transport = await openPortForward(kc, req.managerNamespace, pod, MANAGER_PORT);
    return Tunnel.open(transport, { holder: holder(), ...(resumeToken ? { resumeToken } : {}) });
  };
  const tunnel = await TunnelKeeper.start(dial, log);
  firstDial = undefined;
  return { tunnel, notices };
}
