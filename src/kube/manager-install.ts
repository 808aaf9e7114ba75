// Installs and finds the traffic manager: a Namespace, a ConfigMap holding the in-cluster
// bundles (named by their content hash, so a new version rolls the Deployment), a Deployment
// running them on a stock Node image, a Service agents reach it by, the Secret keying its undo
// records, and its rights (src/kube/manager-rbac.ts: cluster-wide, or per namespace).
import {
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  type KubeConfig,
  type V1ConfigMap,
  type V1Deployment,
  type V1Namespace,
  type V1Pod,
  type V1Secret,
  type V1Service,
  type V1ServiceAccount,
} from '@kubernetes/client-node';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ProgressStep } from '../protocol/daemon-api.ts';
import { TelepodError } from '../protocol/errors.ts';
import { explainKubeError } from './errors.ts';
import { applyRbac, managerRbac, rbacObjects, removeRbac, type ManagerRbac } from './manager-rbac.ts';
import { AGENT_API_PORT } from '../protocol/paths.ts';
import { AGENT_IDLE_ENV } from '../protocol/intercept.ts';
import { LEAN_NODE_FLAGS } from '../protocol/node-flags.ts';
import { TELEPOD_VERSION } from '../protocol/version.ts';
import { managerPods, ready, runs } from './manager-pods.ts';

const NAME = 'telepod-manager';
const UNDO_KEY_SECRET = 'telepod-manager-undo-key';
/** On the manager Deployment: the hash of the spec telepod asked for (the API server adds defaults). */
const SPEC_HASH_ANNOTATION = 'telepod.io/spec-hash';
const LABELS = { 'app.kubernetes.io/name': NAME, 'app.kubernetes.io/part-of': 'telepod' };
/** On the manager Deployment: the telepod version it runs, for the messages of other versions. */
const VERSION_LABEL = 'app.kubernetes.io/version';
/** A session's Lease is renewed at most this long after its lease would otherwise have run out. */
const LEASE_RENEWAL_SLACK_S = 10;

/** The in-cluster bundles, by file name (manager.mjs, agent.mjs), read from beside telepod. */
export type InClusterBundles = Record<string, string>;

export function readManagerBundle(): InClusterBundles {
  const bundles: InClusterBundles = {};
  for (const file of ['manager.mjs', 'agent.mjs']) {
    try {
      bundles[file] = readFileSync(new URL(`./${file}`, import.meta.url), 'utf8');
    } catch {
      throw new TelepodError(
        `the in-cluster bundle ${file} is missing beside telepod: run \`npm run build\``,
      );
    }
  }
  return bundles;
}

export interface ManagerObjects {
  namespace: V1Namespace;
  serviceAccount: V1ServiceAccount;
  /** ClusterRole + binding, or a Role + binding per namespace (`--namespaces`). */
  rbac: ManagerRbac;
  configMap: V1ConfigMap;
  /** The key the manager signs its undo records with; made once, kept across upgrades. */
  undoKey: V1Secret;
  deployment: V1Deployment;
  service: V1Service;
}

/** What an install is asked for, besides the bundles. */
export interface InstallChoices {
  /** The image with node for the manager and agents (`--image`). */
  image: string;
  /** The manager's namespace (`--manager-namespace`). */
  namespace: string;
  /** The namespaces it serves (`--namespaces`); undefined: every namespace. */
  scope?: string[] | undefined;
  /** How long a dormant agent stays (`--agent-idle`); undefined: the manager's default. */
  agentIdleSeconds?: number | undefined;
}

/** The manager's objects for an install. */
export function managerObjects(bundles: InClusterBundles, choices: InstallChoices): ManagerObjects {
  const { namespace, scope } = choices;
  const hash = createHash('sha256').update(JSON.stringify(bundles)).digest('hex').slice(0, 10);
  const configMapName = `${NAME}-${hash}`;
  return {
    namespace: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace, labels: LABELS } },
    serviceAccount: {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: NAME, namespace, labels: LABELS },
    },
    rbac: managerRbac(namespace, scope),
    configMap: {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: configMapName, namespace, labels: LABELS },
      immutable: true,
      data: bundles,
    },
    undoKey: {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: UNDO_KEY_SECRET, namespace, labels: LABELS },
      stringData: { key: randomBytes(32).toString('base64url') },
    },
    service: {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: NAME, namespace, labels: LABELS },
      spec: {
        selector: LABELS,
        ports: [{ name: 'agents', port: AGENT_API_PORT, targetPort: AGENT_API_PORT }],
      },
    },
    deployment: managerDeployment(choices, configMapName),
  };
}

/** The manager's Deployment, annotated with the hash of its spec (compared on upgrade). */
function managerDeployment(
  { image, namespace, scope, agentIdleSeconds }: InstallChoices,
  configMapName: string,
): V1Deployment {
  const deployment: V1Deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: NAME, namespace, labels: { ...LABELS, [VERSION_LABEL]: TELEPOD_VERSION } },
    spec: {
      replicas: 1,
      // Never two managers at once: a starting manager restores what the previous one changed.
      strategy: { type: 'Recreate' },
      selector: { matchLabels: LABELS },
      template: {
        metadata: { labels: LABELS },
        spec: {
          serviceAccountName: NAME,
          automountServiceAccountToken: true,
          // Service links would name the manager's own Service as TELEPOD_MANAGER_* variables.
          enableServiceLinks: false,
          containers: [
            {
              name: 'manager',
              image,
              imagePullPolicy: 'IfNotPresent',
              command: ['node', ...LEAN_NODE_FLAGS, '/opt/telepod/manager.mjs'],
              env: [
                { name: 'TELEPOD_IMAGE', value: image },
                { name: 'TELEPOD_NAMESPACES', value: scope?.join(',') ?? '' },
                // Only when chosen: the default install's spec (and its hash) stays as it was.
                ...(agentIdleSeconds === undefined
                  ? []
                  : [{ name: AGENT_IDLE_ENV, value: String(agentIdleSeconds) }]),
                { name: 'TELEPOD_POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
                {
                  name: 'TELEPOD_UNDO_KEY',
                  valueFrom: { secretKeyRef: { name: UNDO_KEY_SECRET, key: 'key' } },
                },
              ],
              // The developer API listens on loopback (port-forward only) and is not declared.
              ports: [{ name: 'agents', containerPort: AGENT_API_PORT }],
              readinessProbe: { tcpSocket: { port: AGENT_API_PORT }, periodSeconds: 1 },
              securityContext: {
                runAsNonRoot: true,
                runAsUser: 1000,
                readOnlyRootFilesystem: true,
                allowPrivilegeEscalation: false,
              },
              volumeMounts: [{ name: 'bundle', mountPath: '/opt/telepod', readOnly: true }],
            },
          ],
          volumes: [{ name: 'bundle', configMap: { name: configMapName } }],
        },
      },
    },
  };
  const hash = createHash('sha256').update(JSON.stringify(deployment.spec)).digest('hex').slice(0, 16);
  deployment.metadata!.annotations = { [SPEC_HASH_ANNOTATION]: hash };
  return deployment;
}

function isNotFound(err: unknown): boolean {
  return (err as { code?: number }).code === 404;
}

/** Creates or updates the manager's objects; answers whether anything changed. */
export async function installManager(kc: KubeConfig, objects: ManagerObjects): Promise<boolean> {
  try {
    return await applyManagerObjects(kc, objects);
  } catch (err) {
    if ((err as { code?: number }).code !== 403) throw err;
    throw new TelepodError(
      `you may not install the traffic manager in namespace ${objects.namespace.metadata!.name!} ` +
        `(${explainKubeError(err, '').message}); ask a cluster admin to run \`telepod install\``,
    );
  }
}

async function applyManagerObjects(kc: KubeConfig, objects: ManagerObjects): Promise<boolean> {
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const namespace = objects.namespace.metadata!.name!;
  let changed = false;
  const ensure = async (read: () => Promise<unknown>, create: () => Promise<unknown>) => {
    try {
      await read();
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await create();
      changed = true;
    }
  };
  await ensure(
    () => core.readNamespace({ name: namespace }),
    () => core.createNamespace({ body: objects.namespace }),
  );
  await ensure(
    () => core.readNamespacedServiceAccount({ name: NAME, namespace }),
    () => core.createNamespacedServiceAccount({ namespace, body: objects.serviceAccount }),
  );
  // A change of mode or of namespaces takes the earlier install's rights away.
  const previous = await installedScope(kc, namespace);
  if (previous !== null && JSON.stringify(previous) !== JSON.stringify(scopeOf(objects.rbac))) {
    await removeRbac(kc, namespace, previous ?? []);
    changed = true;
  }
  if (await applyRbac(kc, objects.rbac)) changed = true;
  await ensure(
    async () => {
      const service = await core.readNamespacedService({ name: NAME, namespace });
      if (service.spec?.ports?.[0]?.port !== AGENT_API_PORT) {
        await core.replaceNamespacedService({
          name: NAME,
          namespace,
          body: { ...objects.service, spec: { ...service.spec, ...objects.service.spec } },
        });
        changed = true;
      }
    },
    () => core.createNamespacedService({ namespace, body: objects.service }),
  );
  await ensure(
    () => core.readNamespacedSecret({ name: UNDO_KEY_SECRET, namespace }),
    () => core.createNamespacedSecret({ namespace, body: objects.undoKey }),
  );
  await ensure(
    () => core.readNamespacedConfigMap({ name: objects.configMap.metadata!.name!, namespace }),
    () => core.createNamespacedConfigMap({ namespace, body: objects.configMap }),
  );
  try {
    const current = await apps.readNamespacedDeployment({ name: NAME, namespace });
    // The API server fills in defaults, so the specs are compared by the hash of what was asked.
    const have = current.metadata?.annotations?.[SPEC_HASH_ANNOTATION];
    if (have !== objects.deployment.metadata!.annotations![SPEC_HASH_ANNOTATION]) {
      await apps.replaceNamespacedDeployment({ name: NAME, namespace, body: objects.deployment });
      await removeOldBundles(core, namespace, objects.configMap.metadata!.name!);
      changed = true;
    }
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await apps.createNamespacedDeployment({ namespace, body: objects.deployment });
    changed = true;
  }
  return changed;
}

/** Deletes the bundle ConfigMaps of earlier versions (the running pods keep their files). */
async function removeOldBundles(core: CoreV1Api, namespace: string, current: string): Promise<void> {
  const labelSelector = Object.entries(LABELS)
    .map(([key, value]) => `${key}=${value}`)
    .join(',');
  const maps = await core.listNamespacedConfigMap({ namespace, labelSelector });
  for (const map of maps.items) {
    const name = map.metadata?.name;
    if (!name || name === current || !name.startsWith(`${NAME}-`)) continue;
    await core.deleteNamespacedConfigMap({ name, namespace }).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
  }
}

/** The namespaces of the installed manager (undefined: cluster-wide), null when none is installed. */
async function installedScope(kc: KubeConfig, namespace: string): Promise<string[] | undefined | null> {
  try {
    const deployment = await kc.makeApiClient(AppsV1Api).readNamespacedDeployment({ name: NAME, namespace });
    const env = deployment.spec?.template.spec?.containers[0]?.env ?? [];
    const value = env.find((e) => e.name === 'TELEPOD_NAMESPACES')?.value;
    return value ? value.split(',') : undefined;
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

function scopeOf(rbac: ManagerRbac): string[] | undefined {
  return rbac.mode === 'cluster' ? undefined : rbac.roles.map((r) => r.metadata!.namespace!);
}

/** Removes the manager: its RBAC (cluster-wide, or the Roles in its namespaces) and its namespace. */
export async function uninstallManager(kc: KubeConfig, namespace: string): Promise<void> {
  const scope = await installedScope(kc, namespace);
  await removeRbac(kc, namespace, scope ?? []);
  await kc
    .makeApiClient(CoreV1Api)
    .deleteNamespace({ name: namespace })
    .catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
}

/** Every object of an install, in the order they are applied (`install --dry-run`). */
export function manifests(objects: ManagerObjects): object[] {
  return [
    objects.namespace,
    objects.serviceAccount,
    ...rbacObjects(objects.rbac),
    objects.undoKey,
    objects.configMap,
    objects.service,
    objects.deployment,
  ];
}

/**
 * Sessions that use the manager in `namespace` now (their Leases were renewed lately), or
 * undefined when this user may not tell.
 */
async function liveSessions(kc: KubeConfig, namespace: string): Promise<number | undefined> {
  try {
    const leases = await kc
      .makeApiClient(CoordinationV1Api)
      .listNamespacedLease({ namespace, labelSelector: 'app.kubernetes.io/managed-by=telepod' });
    return leases.items.filter((lease) => {
      const renewed = lease.spec?.renewTime ? new Date(lease.spec.renewTime).getTime() : 0;
      return renewed + ((lease.spec?.leaseDurationSeconds ?? 0) + LEASE_RENEWAL_SLACK_S) * 1000 > Date.now();
    }).length;
  } catch {
    return undefined;
  }
}

/**
 * Makes sure a manager runs, installing it when there is none: then a developer needs no more
 * than to list the manager's pods and port-forward to one. A manager of another version is
 * upgraded only when no session uses it; otherwise it is used as it is (the tunnel checks that
 * its protocol matches) and the developer is told how to upgrade it for everyone. Answers the
 * bundle to wait for (undefined: whichever runs). `step` hears when an install begins.
 */
export async function ensureManager(
  kc: KubeConfig,
  objects: ManagerObjects,
  warn: (message: string) => void,
  step: ProgressStep = () => undefined,
): Promise<string | undefined> {
  const namespace = objects.namespace.metadata!.name!;
  const bundle = objects.configMap.metadata!.name!;
  const pods = await managerPods(kc, namespace).catch(() => []);
  const image = objects.deployment.spec!.template.spec!.containers[0]!.image;
  // A ready pod of this bundle is used as it is, whatever image the install chose; one still
  // starting (an install just made it) too, when it has this connect's image: either way the
  // install's own choices (`--image`, `--agent-idle`, `--namespaces`) stay. The caller waits.
  const usable = (p: V1Pod) =>
    runs(p, bundle) &&
    (ready(p) || (!p.metadata?.deletionTimestamp && p.spec?.containers[0]?.image === image));
  if (pods.some(usable)) return bundle;
  // Also while its pod restarts or takes its sessions back (not Ready): they are still its.
  if (pods.length) {
    const sessions = await liveSessions(kc, namespace);
    if (sessions !== 0) {
      const version = await runningVersion(kc, namespace);
      warn(
        `the traffic manager in ${namespace} runs telepod ${version ?? 'of another version'} and ` +
          `${sessions === undefined ? 'may serve' : `serves ${sessions}`} other sessions: using it as it is ` +
          `(\`telepod install\` upgrades it for everyone; their sessions and intercepts carry over)`,
      );
      return undefined;
    }
  }
  try {
    step(`installing or updating the traffic manager in namespace ${namespace}`);
    const changed = await installManager(kc, objects);
    if (changed) warn(`installed or upgraded the traffic manager in namespace ${namespace}`);
    return bundle;
  } catch (err) {
    if (!pods.some(ready)) throw err;
    warn(`using the traffic manager already running in ${namespace} (${(err as Error).message})`);
    return undefined;
  }
}

/** The telepod version of the manager Deployment in `namespace`, if there is one. */
export async function runningVersion(kc: KubeConfig, namespace: string): Promise<string | undefined> {
  const deployment = await kc
    .makeApiClient(AppsV1Api)
    .readNamespacedDeployment({ name: NAME, namespace })
    .catch(() => undefined);
  return deployment?.metadata?.labels?.[VERSION_LABEL];
}
