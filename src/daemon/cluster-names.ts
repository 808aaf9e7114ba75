// Which DNS names belong to the cluster, and their fully qualified form: `svc`, `svc.ns`,
// `svc.ns.svc`, `pod.svc.ns`, `….svc.cluster.local`. Everything else is not the cluster's.

export interface ClusterNaming {
  /** The connected namespace, for short names. */
  namespace: string;
  namespaces: ReadonlySet<string>;
  domain: string;
}

export function clusterName(name: string, naming: ClusterNaming): string | undefined {
  const n = name.toLowerCase().replace(/\.$/, '');
  if (!n) return undefined;
  if (n === naming.domain || n.endsWith(`.${naming.domain}`)) return n;
  if (n.endsWith('.svc')) return `${n}.${naming.domain}`;
  const labels = n.split('.');
  if (labels.length === 1) return `${n}.${naming.namespace}.svc.${naming.domain}`;
  if (naming.namespaces.has(labels[labels.length - 1]!)) return `${n}.svc.${naming.domain}`;
  return undefined;
}
