// The traffic manager's rights, in its two install modes (docs/security.md lists them):
// - cluster-wide (default): one ClusterRole + ClusterRoleBinding: change and restore workloads
//   and Services in every namespace, and read what workstations route (ServiceCIDRs, nodes'
//   pod CIDRs, namespace names);
// - namespace-scoped (`install --namespaces a,b`): a Role + RoleBinding in each of those
//   namespaces with the same namespaced rules, and nothing cluster-wide;
// - in both, a Role in the manager's own namespace for the sessions' Leases.
// Applied, compared (a role whose rules changed is replaced) and removed here.
import {
  RbacAuthorizationV1Api,
  type KubeConfig,
  type V1ClusterRole,
  type V1ClusterRoleBinding,
  type V1PolicyRule,
  type V1Role,
  type V1RoleBinding,
} from '@kubernetes/client-node';

const NAME = 'telepod-manager';
const LABELS = { 'app.kubernetes.io/name': NAME, 'app.kubernetes.io/part-of': 'telepod' };

/** In each namespace the manager serves: change workloads and Services for intercepts, restore them. */
export const NAMESPACED_RULES: V1PolicyRule[] = [
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
  // Bridge slices keep a Service's old pods while its targetPort moves to the agent (written and
  // deleted only under telepod's own labels; src/manager/bridge-slices.ts).
  {
    apiGroups: ['discovery.k8s.io'],
    resources: ['endpointslices'],
    verbs: ['get', 'list', 'create', 'update', 'delete'],
  },
  // Only to say why a DaemonSet or Job of that name cannot be intercepted.
  { apiGroups: ['apps'], resources: ['daemonsets'], verbs: ['get'] },
  { apiGroups: ['batch'], resources: ['jobs'], verbs: ['get'] },
];

/** Cluster-wide only: what workstations route to, and which DNS names are namespaces. */
export const CLUSTER_INFO_RULES: V1PolicyRule[] = [
  { apiGroups: [''], resources: ['namespaces', 'nodes'], verbs: ['list'] },
  { apiGroups: ['networking.k8s.io'], resources: ['servicecidrs'], verbs: ['list'] },
];

/** In the manager's own namespace, in both modes: one Lease per session, which outlives the manager's pod. */
export const SESSION_RULES: V1PolicyRule[] = [
  {
    apiGroups: ['coordination.k8s.io'],
    resources: ['leases'],
    verbs: ['get', 'list', 'create', 'update', 'patch', 'delete'],
  },
];

/** The Role (and binding) for session Leases in the manager's namespace. */
export interface SessionRbac {
  role: V1Role;
  binding: V1RoleBinding;
}

export type ManagerRbac = { sessions: SessionRbac } & (
  | { mode: 'cluster'; role: V1ClusterRole; binding: V1ClusterRoleBinding }
  | { mode: 'namespaces'; roles: V1Role[]; bindings: V1RoleBinding[] }
);

/** Cluster-scoped names and the Roles carry the manager's namespace, so two installs do not collide. */
export function rbacName(managerNamespace: string): string {
  return `${NAME}-${managerNamespace}`;
}

/** The RBAC objects of an install: cluster-wide when `namespaces` is undefined. */
export function managerRbac(managerNamespace: string, namespaces: string[] | undefined): ManagerRbac {
  const name = rbacName(managerNamespace);
  const subjects = [{ kind: 'ServiceAccount', name: NAME, namespace: managerNamespace }];
  const roleRef = (kind: string, roleName = name) => ({
    apiGroup: 'rbac.authorization.k8s.io',
    kind,
    name: roleName,
  });
  const sessionsName = `${NAME}-sessions`;
  const sessionsMeta = { name: sessionsName, namespace: managerNamespace, labels: LABELS };
  const sessions: SessionRbac = {
    role: {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: sessionsMeta,
      rules: SESSION_RULES,
    },
    binding: {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: sessionsMeta,
      roleRef: roleRef('Role', sessionsName),
      subjects,
    },
  };
  if (!namespaces) {
    return {
      sessions,
      mode: 'cluster',
      role: {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: { name, labels: LABELS },
        rules: [...NAMESPACED_RULES, ...CLUSTER_INFO_RULES],
      },
      binding: {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name, labels: LABELS },
        roleRef: roleRef('ClusterRole'),
        subjects,
      },
    };
  }
  return {
    sessions,
    mode: 'namespaces',
    roles: namespaces.map((namespace) => ({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name, namespace, labels: LABELS },
      rules: NAMESPACED_RULES,
    })),
    bindings: namespaces.map((namespace) => ({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name, namespace, labels: LABELS },
      roleRef: roleRef('Role'),
      subjects,
    })),
  };
}

/** The objects in apply order, for `install --dry-run`. */
export function rbacObjects(rbac: ManagerRbac): object[] {
  const home = [rbac.sessions.role, rbac.sessions.binding];
  if (rbac.mode === 'cluster') return [rbac.role, rbac.binding, ...home];
  return [...rbac.roles.flatMap((role, i) => [role, rbac.bindings[i]!]), ...home];
}

const isNotFound = (err: unknown) => (err as { code?: number }).code === 404;
const ignoreNotFound = (err: unknown) => {
  if (!isNotFound(err)) throw err;
};

/** Creates the RBAC objects, replacing roles whose rules differ; answers whether anything changed. */
export async function applyRbac(kc: KubeConfig, rbac: ManagerRbac): Promise<boolean> {
  const api = kc.makeApiClient(RbacAuthorizationV1Api);
  let changed = false;
  const ensure = async (
    read: () => Promise<object>,
    want: V1PolicyRule[] | undefined,
    create: () => Promise<unknown>,
    replace: () => Promise<unknown>,
  ) => {
    try {
      const have = (await read()) as { rules?: V1PolicyRule[] };
      if (want && JSON.stringify(have.rules) !== JSON.stringify(want)) {
        await replace();
        changed = true;
      }
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await create();
      changed = true;
    }
  };
  const ensureRole = async (role: V1Role, binding: V1RoleBinding) => {
    const { name, namespace } = role.metadata as { name: string; namespace: string };
    await ensure(
      () => api.readNamespacedRole({ name, namespace }),
      role.rules,
      () => api.createNamespacedRole({ namespace, body: role }),
      () => api.replaceNamespacedRole({ name, namespace, body: role }),
    );
    await ensure(
      () => api.readNamespacedRoleBinding({ name, namespace }),
      undefined,
      () => api.createNamespacedRoleBinding({ namespace, body: binding }),
      () => Promise.resolve(),
    );
  };
  await ensureRole(rbac.sessions.role, rbac.sessions.binding);
  if (rbac.mode === 'cluster') {
    const name = rbac.role.metadata!.name!;
    await ensure(
      () => api.readClusterRole({ name }),
      rbac.role.rules,
      () => api.createClusterRole({ body: rbac.role }),
      () => api.replaceClusterRole({ name, body: rbac.role }),
    );
    await ensure(
      () => api.readClusterRoleBinding({ name }),
      undefined,
      () => api.createClusterRoleBinding({ body: rbac.binding }),
      () => Promise.resolve(),
    );
    return changed;
  }
  for (const [i, role] of rbac.roles.entries()) await ensureRole(role, rbac.bindings[i]!);
  return changed;
}

/** Removes an install's RBAC: the cluster-wide pair, and the Roles in `namespaces`. */
export async function removeRbac(
  kc: KubeConfig,
  managerNamespace: string,
  namespaces: string[],
): Promise<void> {
  const api = kc.makeApiClient(RbacAuthorizationV1Api);
  const name = rbacName(managerNamespace);
  await api.deleteClusterRoleBinding({ name }).catch(ignoreNotFound);
  await api.deleteClusterRole({ name }).catch(ignoreNotFound);
  for (const namespace of namespaces) {
    await api.deleteNamespacedRoleBinding({ name, namespace }).catch(ignoreNotFound);
    await api.deleteNamespacedRole({ name, namespace }).catch(ignoreNotFound);
  }
}
