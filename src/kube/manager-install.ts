// Installs and finds the traffic manager: a Namespace, a ConfigMap holding the in-cluster
// bundles (named by their content hash, so a new version rolls the Deployment), a Deployment
// running them on a stock Node image, a Service agents reach it by, and a ClusterRole that
// lets it change workloads and Services for intercepts and put them back.
import {
  AppsV1Api,
  CoreV1Api,
  RbacAuthorizationV1Api,
  type KubeConfig,
  type V1ClusterRole,
  type V1ClusterRoleBinding,
  type V1ConfigMap,
  type V1Deployment,
  type V1Namespace,
  type V1Secret,
  type V1Service,
  type V1ServiceAccount,
} from '@kubernetes/client-node';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { TelepodError } from '../protocol/errors.ts';
import { explainKubeError } from './errors.ts';
import { AGENT_API_PORT } from '../protocol/paths.ts';
import { FAILING_WAIT_REASONS } from '../protocol/pod-failures.ts';

export const DEFAULT_IMAGE = 'docker.io/library/node:22-bookworm-slim';
export const DEFAULT_MANAGER_NAMESPACE = 'telepod';
const NAME = 'telepod-manager';
const UNDO_KEY_SECRET = 'telepod-manager-undo-key';
const LABELS = { 'app.kubernetes.io/name': NAME, 'app.kubernetes.io/part-of': 'telepod' };

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
  clusterRole: V1ClusterRole;
  clusterRoleBinding: V1ClusterRoleBinding;
  configMap: V1ConfigMap;
  /** The key the manager signs its undo records with; made once, kept across upgrades. */
  undoKey: V1Secret;
  deployment: V1Deployment;
  service: V1Service;
}

/** What the manager may do: change workloads and Services for intercepts, and restore them. */
const MANAGER_RULES = [
  {
    apiGroups: ['apps'],
    resources: ['deployments', 'statefulsets', 'replicasets'],
    verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'],
  },
  {
    apiGroups: [''],
    resources: ['services', 'configmaps'],
    verbs: ['get', 'list', 'create', 'update', 'patch', 'delete'],
  },
  { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'delete'] },
  { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list'] },
  { apiGroups: ['apps'], resources: ['daemonsets'], verbs: ['get'] },
  { apiGroups: ['batch'], resources: ['jobs'], verbs: ['get'] },
];

/** Cluster-scoped names carry the namespace, so managers in two namespaces do not collide. */
function clusterScopedName(namespace: string): string {
  return `${NAME}-${namespace}`;
}

export function managerObjects(bundles: InClusterBundles, image: string, namespace: string): ManagerObjects {
  const hash = createHash('sha256').update(JSON.stringify(bundles)).digest('hex').slice(0, 10);
  const configMapName = `${NAME}-${hash}`;
  return {
    namespace: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace, labels: LABELS } },
    serviceAccount: {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: NAME, namespace, labels: LABELS },
    },
    clusterRole: {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: clusterScopedName(namespace), labels: LABELS },
      rules: MANAGER_RULES,
    },
    clusterRoleBinding: {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: clusterScopedName(namespace), labels: LABELS },
      roleRef: {
        apiGroup: 'rbac.authorization.k8s.io',
        kind: 'ClusterRole',
        name: clusterScopedName(namespace),
      },
      subjects: [{ kind: 'ServiceAccount', name: NAME, namespace }],
    },
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
    deployment: {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: NAME, namespace, labels: LABELS },
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
                command: ['node', '/opt/telepod/manager.mjs'],
                env: [
                  { name: 'TELEPOD_IMAGE', value: image },
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
    },
  };
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
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  // The role's rules change with telepod's version: an older role is replaced.
  const roleName = objects.clusterRole.metadata!.name!;
  await ensure(
    async () => {
      const role = await rbac.readClusterRole({ name: roleName });
      if (JSON.stringify(role.rules) !== JSON.stringify(objects.clusterRole.rules)) {
        await rbac.replaceClusterRole({ name: roleName, body: objects.clusterRole });
        changed = true;
      }
    },
    () => rbac.createClusterRole({ body: objects.clusterRole }),
  );
  await ensure(
    () => rbac.readClusterRoleBinding({ name: objects.clusterRoleBinding.metadata!.name! }),
    () => rbac.createClusterRoleBinding({ body: objects.clusterRoleBinding }),
  );
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
    const want = objects.deployment.spec!.template.spec!;
    const have = current.spec?.template.spec;
    if (
      have?.volumes?.[0]?.configMap?.name !== want.volumes![0]!.configMap!.name ||
      have?.containers[0]?.image !== want.containers[0]!.image
    ) {
      await apps.replaceNamespacedDeployment({ name: NAME, namespace, body: objects.deployment });
      changed = true;
    }
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await apps.createNamespacedDeployment({ namespace, body: objects.deployment });
    changed = true;
  }
  return changed;
}

export async function uninstallManager(kc: KubeConfig, namespace: string): Promise<void> {
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  const name = clusterScopedName(namespace);
  for (const remove of [
    () => kc.makeApiClient(CoreV1Api).deleteNamespace({ name: namespace }),
    () => rbac.deleteClusterRoleBinding({ name }),
    () => rbac.deleteClusterRole({ name }),
  ]) {
    try {
      await remove();
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}

/** The name of a ready manager pod of the current version, waiting up to `timeoutMs`. */
export async function waitForManagerPod(
  kc: KubeConfig,
  namespace: string,
  configMapName: string,
  timeoutMs: number,
) {
  const core = kc.makeApiClient(CoreV1Api);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const pods = await core.listNamespacedPod({ namespace, labelSelector: `app.kubernetes.io/name=${NAME}` });
    const ready = pods.items.find(
      (p) =>
        !p.metadata?.deletionTimestamp &&
        p.spec?.volumes?.some((v) => v.configMap?.name === configMapName) &&
        p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
    );
    if (ready?.metadata?.name) return ready.metadata.name;
    for (const pod of pods.items.filter((p) => !p.metadata?.deletionTimestamp)) {
      if (!pod.spec?.volumes?.some((v) => v.configMap?.name === configMapName)) continue;
      const stuck = pod.status?.containerStatuses?.find((c) =>
        FAILING_WAIT_REASONS.has(c.state?.waiting?.reason ?? ''),
      );
      const waiting = stuck?.state?.waiting;
      if (waiting) {
        throw new TelepodError(
          `the traffic manager in namespace ${namespace} cannot start: pod ${pod.metadata?.name}: ` +
            `${waiting.reason}: ${waiting.message ?? ''}`.trim(),
        );
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new TelepodError(
    `the traffic manager in namespace ${namespace} did not become ready in ${timeoutMs / 1000} s`,
  );
}
