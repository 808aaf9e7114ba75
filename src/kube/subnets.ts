// The cluster's subnets, as the workstation routes them: Service CIDRs from ServiceCIDR objects
// (networking.k8s.io/v1), pod CIDRs from the nodes, or, where nodes carry none, the /16s that
// cover the pod IPs in use. Then --also-proxy added and --never-proxy taken out.
import { CoreV1Api, NetworkingV1Api, type KubeConfig } from '@kubernetes/client-node';
import { isIPv4 } from 'node:net';

export async function discoverSubnets(kc: KubeConfig): Promise<string[]> {
  const core = kc.makeApiClient(CoreV1Api);
  const subnets = new Set<string>();
  try {
    const cidrs = await kc.makeApiClient(NetworkingV1Api).listServiceCIDR();
    for (const item of cidrs.items) for (const cidr of item.spec?.cidrs ?? []) subnets.add(cidr);
  } catch {
    // Clusters before 1.33 have no ServiceCIDR objects: cover the kubernetes Service instead.
    const svc = await core.readNamespacedService({ name: 'kubernetes', namespace: 'default' });
    if (svc.spec?.clusterIP) subnets.add(coveringSlash16(svc.spec.clusterIP));
  }
  const nodes = await core.listNode();
  const podCidrs = nodes.items.flatMap((n) => n.spec?.podCIDRs ?? (n.spec?.podCIDR ? [n.spec.podCIDR] : []));
  if (podCidrs.length) podCidrs.forEach((c) => subnets.add(c));
  else {
    const pods = await core.listPodForAllNamespaces();
    for (const pod of pods.items) {
      const ip = pod.status?.podIP;
      if (ip && !pod.spec?.hostNetwork) subnets.add(coveringSlash16(ip));
    }
  }
  return [...subnets].filter((c) => isIPv4(c.split('/')[0]!)).sort();
}

export function coveringSlash16(ip: string): string {
  const [a, b] = ip.split('.');
  return `${a}.${b}.0.0/16`;
}

/** Adds --also-proxy and removes every subnet equal to or inside a --never-proxy CIDR. */
export function applyProxyFlags(subnets: string[], also: string[], never: string[]): string[] {
  const all = [...new Set([...subnets, ...also])];
  return all.filter((cidr) => !never.some((n) => contains(n, cidr)));
}

function toInt(ip: string): number {
  return ip.split('.').reduce((acc, part) => (acc << 8) + Number(part), 0) >>> 0;
}

function contains(outer: string, inner: string): boolean {
  const [oIp, oBits] = outer.split('/');
  const [iIp, iBits] = inner.split('/');
  const ob = Number(oBits ?? 32);
  if (Number(iBits ?? 32) < ob) return false;
  const mask = ob === 0 ? 0 : (~0 << (32 - ob)) >>> 0;
  return (toInt(oIp!) & mask) >>> 0 === (toInt(iIp!) & mask) >>> 0;
}

export function isCidr(value: string): boolean {
  const [ip, bits] = value.split('/');
  return isIPv4(ip ?? '') && bits !== undefined && /^\d+$/.test(bits) && Number(bits) <= 32;
}
