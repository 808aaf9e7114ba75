// The cluster's subnets as the workstation routes them: what the manager found
// (src/manager/cluster-info.ts), with --also-proxy added and --never-proxy taken out.
import { isIPv4 } from 'node:net';

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
