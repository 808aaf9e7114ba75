// `telepod doctor`'s checks of the cluster, with the developer's own kubeconfig: the API server,
// the rights telepod needs (as the API server answers "can I?"), the namespace's Pod Security
// level, the traffic manager and its version, and, when connected, the DNS hook-up.
import { CoreV1Api, VersionApi, type KubeConfig } from '@kubernetes/client-node';
import { lookup } from 'node:dns/promises';
import { canI, type AccessQuestion } from '../../kube/access-review.ts';
import { managerPods, ready } from '../../kube/manager-pods.ts';
import { runningVersion } from '../../kube/manager-install.ts';
import type { DaemonStatus } from '../../protocol/daemon-api.ts';
import { TELEPOD_VERSION } from '../../protocol/version.ts';
import type { Check } from './check.ts';

/** What telepod asks of the cluster as the developer, and for which command. */
function questions(namespace: string, managerNamespace: string): (AccessQuestion & { why: string })[] {
  const tunnel = 'connect (the tunnel to the manager)';
  return [
    { verb: 'list', resource: 'pods', namespace: managerNamespace, why: tunnel },
    { verb: 'get', resource: 'pods', subresource: 'portforward', namespace: managerNamespace, why: tunnel },
    {
      verb: 'create',
      resource: 'pods',
      subresource: 'portforward',
      namespace: managerNamespace,
      why: tunnel,
    },
    { verb: 'list', resource: 'deployments', group: 'apps', namespace, why: 'list' },
    { verb: 'list', resource: 'services', namespace, why: 'list' },
    {
      verb: 'patch',
      resource: 'deployments',
      group: 'apps',
      namespace,
      why: 'intercept and replace (a claim on the workload)',
    },
    {
      verb: 'create',
      resource: 'deployments',
      group: 'apps',
      namespace,
      why: 'run --swap-deployment / --expose',
    },
    { verb: 'create', resource: 'services', namespace, why: 'run --expose' },
  ];
}

async function podSecurity(kc: KubeConfig, namespace: string): Promise<Check> {
  const name = `Pod Security of ${namespace}`;
  try {
    const ns = await kc.makeApiClient(CoreV1Api).readNamespace({ name: namespace });
    const level = ns.metadata?.labels?.['pod-security.kubernetes.io/enforce'] ?? 'privileged (no label)';
    return {
      name,
      ok: true,
      detail: `enforces ${level}; the agent meets restricted (non-root, no capabilities, RuntimeDefault seccomp)`,
    };
  } catch (err) {
    return {
      name,
      ok: true,
      optional: true,
      detail: `not readable with your rights (${(err as Error).message.split('\n')[0]}): the agent meets restricted anyway`,
    };
  }
}

async function manager(kc: KubeConfig, namespace: string): Promise<Check> {
  const name = 'traffic manager';
  let pods;
  try {
    pods = await managerPods(kc, namespace);
  } catch (err) {
    return {
      name,
      ok: false,
      detail: `cannot look for it in ${namespace}: ${(err as Error).message.split('\n')[0]}`,
      fix: `ask a cluster admin for "list" on pods in ${namespace}`,
    };
  }
  if (!pods.length) {
    return {
      name,
      ok: false,
      detail: `none runs in namespace ${namespace}`,
      fix: `telepod connect installs it (a cluster admin: telepod install${namespace === 'telepod' ? '' : ` --manager-namespace ${namespace}`})`,
    };
  }
  const version = await runningVersion(kc, namespace).catch(() => undefined);
  if (!pods.some(ready))
    return {
      name,
      ok: false,
      detail: `its pod in ${namespace} is not ready`,
      fix: `kubectl -n ${namespace} describe pods`,
    };
  if (version !== TELEPOD_VERSION) {
    return {
      name,
      ok: false,
      detail: `runs telepod ${version ?? 'of an unknown version'}, this is ${TELEPOD_VERSION}`,
      fix: 'telepod install upgrades it for everyone (or use the same telepod version)',
    };
  }
  return { name, ok: true, detail: `ready in ${namespace}, telepod ${version}` };
}

async function dnsHookUp(status: DaemonStatus | undefined): Promise<Check> {
  const name = 'DNS hook-up';
  if (!status?.connected)
    return { name, ok: true, optional: true, detail: 'not connected: checked while connected' };
  const host = `kubernetes.default.svc.${status.dns?.clusterDomain ?? 'cluster.local'}`;
  try {
    const { address } = await lookup(host);
    return { name, ok: true, detail: `${host} resolves to ${address} through this machine's resolver` };
  } catch (err) {
    return {
      name,
      ok: false,
      detail: `${host} does not resolve: ${(err as Error).message}`,
      fix: 'telepod quit, then telepod connect; see telepod status',
    };
  }
}

/** The cluster's checks; the later ones are skipped when the API server cannot be reached. */
export async function clusterChecks(
  kc: KubeConfig,
  namespace: string,
  managerNamespace: string,
  status: DaemonStatus | undefined,
): Promise<Check[]> {
  const server = kc.getCurrentCluster()?.server ?? 'the API server';
  try {
    const version = await kc.makeApiClient(VersionApi).getCode();
    const api: Check = {
      name: 'API server',
      ok: true,
      detail: `${server} answers, Kubernetes ${version.gitVersion}`,
    };
    const asked = questions(namespace, managerNamespace);
    const answers = await canI(kc, asked);
    const rights = asked.map((q, i): Check => {
      const what = `${q.verb} ${q.resource}${q.subresource ? `/${q.subresource}` : ''} in ${q.namespace}`;
      return answers[i]!.allowed
        ? { name: `may ${what}`, ok: true, detail: `for ${q.why}` }
        : {
            name: `may ${what}`,
            ok: false,
            detail: `refused: ${q.why} will not work`,
            fix: `ask a cluster admin for "${q.verb}" on ${q.resource}${q.subresource ? `/${q.subresource}` : ''} in ${q.namespace}`,
          };
    });
    return [
      api,
      ...rights,
      await podSecurity(kc, namespace),
      await manager(kc, managerNamespace),
      await dnsHookUp(status),
    ];
  } catch (err) {
    return [
      {
        name: 'API server',
        ok: false,
        detail: `${server}: ${(err as Error).message.split('\n')[0]}`,
        fix: 'check the kubeconfig, the context and the network (kubectl version)',
      },
    ];
  }
}
