// The TCP ports a network namespace listens on for loopback clients, read from
// /proc/net/tcp and /proc/net/tcp6 (which show the namespace of the reading process): sockets in
// LISTEN state bound to 127.0.0.0/8, ::1, or any address.
import { readFile } from 'node:fs/promises';

const LISTEN = '0A';
/** Local addresses that a loopback client reaches (hex as /proc shows them, little-endian IPv4). */
function loopbackReachable(hexAddress: string): boolean {
  if (hexAddress.length === 8) {
    return hexAddress === '00000000' || hexAddress.endsWith('7F'); // 0.0.0.0 or 127.x.x.x
  }
  return /^0{32}$/.test(hexAddress) || hexAddress === '00000000000000000000000001000000'; // :: or ::1
}

/** The listening ports in the text of /proc/net/tcp or tcp6. */
export function parseListeningPorts(table: string): number[] {
  const ports = new Set<number>();
  for (const line of table.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    const [address, port] = (fields[1] ?? '').split(':');
    if (fields[3] !== LISTEN || !address || !port) continue;
    if (loopbackReachable(address)) ports.add(parseInt(port, 16));
  }
  return [...ports].sort((a, b) => a - b);
}

/** The ports this process's network namespace listens on for loopback clients. */
export async function listeningPorts(): Promise<number[]> {
  const tables = await Promise.all(
    ['/proc/net/tcp', '/proc/net/tcp6'].map((path) => readFile(path, 'utf8').catch(() => '')),
  );
  return [...new Set(tables.flatMap(parseListeningPorts))].sort((a, b) => a - b);
}
