// Reads where a redirected TCP connection was going: getsockopt(SOL_IP, SO_ORIGINAL_DST) on the
// accepted socket, called through koffi (the kernel keeps it in conntrack after nft's redirect).
// koffi (a native add-on, the package's one runtime dependency) is loaded on first use, so the
// CLI's commands never load it; only the daemon's first redirected connection does.
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';

type Koffi = typeof import('koffi');

const SOL_IP = 0;
const SO_ORIGINAL_DST = 80;

type GetSockOpt = (fd: number, level: number, name: number, value: Buffer, length: number[]) => number;
let getsockopt: GetSockOpt | undefined;

/** Loads koffi and binds getsockopt once; the daemon calls it before it listens, to fail early. */
export function bindGetsockopt(): GetSockOpt {
  if (getsockopt) return getsockopt;
  const koffi = createRequire(import.meta.url)('koffi') as Koffi;
  getsockopt = koffi
    .load('libc.so.6')
    .func('int getsockopt(int fd, int level, int name, _Out_ uint8_t *value, _Inout_ uint32_t *length)');
  return getsockopt;
}

/** The descriptor behind a net.Socket; `_handle.fd` is internal but stable on POSIX for years. */
function socketFd(socket: Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('socket has no file descriptor');
  return fd;
}

export function originalDestination(socket: Socket): { host: string; port: number } {
  const value = Buffer.alloc(16);
  const length = [16];
  if (bindGetsockopt()(socketFd(socket), SOL_IP, SO_ORIGINAL_DST, value, length) !== 0) {
    throw new Error('getsockopt(SO_ORIGINAL_DST) failed: the connection was not redirected');
  }
  // struct sockaddr_in: family (2 bytes), port (network order), IPv4 address.
  return { host: `${value[4]}.${value[5]}.${value[6]}.${value[7]}`, port: value.readUInt16BE(2) };
}
