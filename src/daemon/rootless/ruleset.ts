// The nftables table the rootless daemon's namespace holder installs inside the namespace it
// made (where the user is allowed to): every TCP connection and every DNS query of the
// programs in it goes to the daemon, which sends cluster destinations through the tunnel and
// everything else out from the machine's own network namespace. Loopback stays the
// namespace's own, except the ports the machine itself listens on (a database on the laptop).

/** The holder's table; the namespace (and with it the table) ends with the holder. */
export const NAMESPACE_TABLE = 'telepod';
/** The set of loopback ports that belong to the machine rather than to the namespace. */
export const HOST_PORTS_SET = 'host_ports';

/** The holder connects to the namespace's servers from this address, which is never redirected. */
export const HOLDER_SOURCE = '127.0.0.2';

/** The ports the holder listens on inside the namespace, for TCP and for DNS. */
export interface NamespaceListeners {
  tcpPort: number;
  dnsPort: number;
}

/** The table, with an empty set of host ports (filled by `hostPortsUpdate`). */
export function namespaceRuleset({ tcpPort, dnsPort }: NamespaceListeners): string {
  return [
    `table ip ${NAMESPACE_TABLE} {`,
    `  set ${HOST_PORTS_SET} { type inet_service; }`,
    '  chain output {',
    '    type nat hook output priority -100; policy accept;',
    `    ip saddr ${HOLDER_SOURCE} return`,
    `    udp dport 53 redirect to :${dnsPort}`,
    `    ip daddr 127.0.0.0/8 tcp dport ${tcpPort} return`,
    `    ip daddr 127.0.0.0/8 tcp dport @${HOST_PORTS_SET} redirect to :${tcpPort}`,
    '    ip daddr 127.0.0.0/8 return',
    `    meta l4proto tcp redirect to :${tcpPort}`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Replaces the set of host ports in one transaction. */
export function hostPortsUpdate(ports: readonly number[]): string {
  const lines = [`flush set ip ${NAMESPACE_TABLE} ${HOST_PORTS_SET}`];
  if (ports.length) lines.push(`add element ip ${NAMESPACE_TABLE} ${HOST_PORTS_SET} { ${ports.join(', ')} }`);
  return `${lines.join('\n')}\n`;
}
