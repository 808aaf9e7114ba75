// What the daemon asks of the machine's own network when it connects: its resolvers, whether
// an address has a route, and which addresses belong to the cluster's subnets.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { BlockList, isIPv4 } from 'node:net';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The machine's IPv4 nameservers, in /etc/resolv.conf's order. */
export function machineNameservers(resolvConf = '/etc/resolv.conf'): string[] {
  return [...readFileSync(resolvConf, 'utf8').matchAll(/^nameserver\s+(\S+)/gm)]
    .map((m) => m[1]!)
    .filter((ip) => isIPv4(ip));
}

/** Whether the kernel has a route to `address` (`ip route get`). */
export function routed(address: string): Promise<boolean> {
  return run('ip', ['route', 'get', address]).then(
    () => true,
    () => false,
  );
}

/** Whether an address is in one of the subnets (IPv4 CIDRs). */
export function inSubnets(subnets: string[]): (address: string) => boolean {
  const list = new BlockList();
  for (const cidr of subnets) {
    const [net, bits] = cidr.split('/');
    list.addSubnet(net!, Number(bits), 'ipv4');
  }
  return (address) => isIPv4(address) && list.check(address, 'ipv4');
}
