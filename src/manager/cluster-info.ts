// What a workstation must know of the cluster to route to it, found with the manager's rights
// so that a developer needs none cluster-wide (docs/security.md): the subnets to capture and
// the namespaces (for `svc.ns` DNS names). Cluster-wide install: Service CIDRs from ServiceCIDR
// objects (or the /16 around the `kubernetes` Service), pod CIDRs from the nodes (or the /16s
// around pod IPs). Namespace-scoped install: the install's namespaces, and the /16s around the
// addresses the manager sees — its own pod and Service, the cluster DNS, the API Service, the
// pods of its namespaces.
import { isIPv4 } from 'node:net';
import type { ClusterInfo } from '../protocol/paths.ts';
import type { KubeApi, KubeObject } from './kube-api.ts';

type Pod = KubeObject & { spec?: { hostNetwork?: boolean }; status?: { podIP?: string } };
type Node = KubeObject & { spec?: { podCIDR?: string; podCIDRs?: string[] } };
type ServiceCIDR = KubeObject & { spec?: { cidrs?: string[] } };
type Service = KubeObject & { spec?: { clusterIP?: string } };

/** The /16 around an IPv4 address. */
export function coveringSlash16(ip: string): string {
  const [a, b] = ip.split('.');
  return `${a}.${b}.0.0/16`;
}

export interface ClusterInfoOptions {
  /** The install's namespaces; undefined for a cluster-wide install. */
  namespaces?: string[] | undefined;
  /** Addresses the manager knows without asking: its pod IP, the cluster DNS, the API Service. */
  knownAddresses: string[];
}

export class ClusterInfoSource {
  constructor(
    private readonly api: KubeApi,
    private readonly options: ClusterInfoOptions,
  ) {}

  /** Subnets and namespaces, found anew (a workstation asks once per connect). */
  get(): Promise<ClusterInfo> {
    return this.options.namespaces ? this.scoped(this.options.namespaces) : this.clusterWide();
  }

  private async clusterWide(): Promise<ClusterInfo> {
    const subnets = new Set<string>();
    try {
      const cidrs = await this.api.list<ServiceCIDR>('/apis/networking.k8s.io/v1/servicecidrs');
      for (const item of cidrs) for (const cidr of item.spec?.cidrs ?? []) subnets.add(cidr);
    } catch {
      // Clusters before 1.33 have no ServiceCIDR objects: cover the kubernetes Service instead.
      const svc = await this.api.get<Service>('/api/v1/namespaces/default/services/kubernetes');
      if (svc.spec?.clusterIP) subnets.add(coveringSlash16(svc.spec.clusterIP));
    }
    const nodes = await this.api.list<Node>('/api/v1/nodes');
    const podCidrs = nodes.flatMap((n) => n.spec?.podCIDRs ?? (n.spec?.podCIDR ? [n.spec.podCIDR] : []));
    if (podCidrs.length) podCidrs.forEach((c) => subnets.add(c));
    else this.addPodSubnets(subnets, await this.api.list<Pod>('/api/v1/pods'));
    const namespaces = (await this.api.list('/api/v1/namespaces')).map((n) => n.metadata?.name ?? '');
    return { subnets: ipv4Sorted(subnets), namespaces: namespaces.filter(Boolean).sort() };
  }

  private async scoped(namespaces: string[]): Promise<ClusterInfo> {
    const subnets = new Set<string>();
    for (const ip of this.options.knownAddresses) if (isIPv4(ip)) subnets.add(coveringSlash16(ip));
    for (const namespace of namespaces) {
      this.addPodSubnets(subnets, await this.api.list<Pod>(`/api/v1/namespaces/${namespace}/pods`));
      for (const svc of await this.api.list<Service>(`/api/v1/namespaces/${namespace}/services`)) {
        const ip = svc.spec?.clusterIP;
        if (ip && isIPv4(ip)) subnets.add(coveringSlash16(ip));
      }
    }
    return { subnets: ipv4Sorted(subnets), namespaces: [...namespaces].sort() };
  }

  private addPodSubnets(subnets: Set<string>, pods: Pod[]): void {
    for (const pod of pods) {
      const ip = pod.status?.podIP;
      if (ip && isIPv4(ip) && !pod.spec?.hostNetwork) subnets.add(coveringSlash16(ip));
    }
  }
}

function ipv4Sorted(subnets: Set<string>): string[] {
  return [...subnets].filter((c) => isIPv4(c.split('/')[0]!)).sort();
}
