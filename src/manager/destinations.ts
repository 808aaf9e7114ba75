// Where a session's CONNECT stream may go: the `:authority` is parsed strictly (an IP literal
// and a port; the daemon only ever sends the original destination of a captured connection),
// and addresses that belong to the manager's pod or node rather than to the cluster network —
// loopback, where the manager's own developer API listens; link-local, where clouds serve
// instance metadata and credentials; unspecified and multicast — are refused.
import net from 'node:net';
import { TelepodError, usageError } from '../protocol/errors.ts';

/** Refused because of where it goes, not how it was asked (HTTP 403). */
export class ForbiddenDestination extends TelepodError {
  readonly status = 403;
}

// One list per family: a BlockList also matches IPv4 addresses against IPv4-mapped IPv6 rules.
const refusedV4 = new net.BlockList();
refusedV4.addSubnet('0.0.0.0', 8, 'ipv4');
refusedV4.addSubnet('127.0.0.0', 8, 'ipv4');
refusedV4.addSubnet('169.254.0.0', 16, 'ipv4');
refusedV4.addSubnet('224.0.0.0', 4, 'ipv4');
refusedV4.addAddress('255.255.255.255', 'ipv4');
const refusedV6 = new net.BlockList();
refusedV6.addAddress('::', 'ipv6');
refusedV6.addAddress('::1', 'ipv6');
refusedV6.addSubnet('::ffff:0:0', 96, 'ipv6'); // IPv4-mapped: the IPv4 form is the one to ask for
refusedV6.addSubnet('fe80::', 10, 'ipv6');
refusedV6.addSubnet('ff00::', 8, 'ipv6');

export interface Destination {
  host: string;
  port: number;
}

/** `ip:port` or `[ipv6]:port`, checked; throws a usage error (400) or a ForbiddenDestination (403). */
export function parseDestination(authority: string | undefined): Destination {
  const match = /^(?:\[([0-9a-fA-F:.]{2,45})\]|([0-9.]{7,15})):(\d{1,5})$/.exec(authority ?? '');
  const host = match?.[1] ?? match?.[2] ?? '';
  const family = net.isIP(host);
  const port = Number(match?.[3]);
  if (!family || !(port >= 1 && port <= 65535)) {
    throw usageError(`"${String(authority).slice(0, 100)}" is not an address (ip:port or [ipv6]:port)`);
  }
  if (family === 4 ? refusedV4.check(host, 'ipv4') : refusedV6.check(host, 'ipv6')) {
    throw new ForbiddenDestination(`telepod does not connect to ${host}: not a cluster address`);
  }
  return { host, port };
}
