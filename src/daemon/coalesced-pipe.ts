// `source.pipe(socket)`, with the pieces that arrive in one go written together: the tunnel
// and the port-forward hand over each piece of a frame as it arrives (often under 16 KiB), and
// a write per piece was the daemon's largest cost in a download (57 % of its CPU, writes of
// 9.5 KB on average).
import type net from 'node:net';
import type { Readable } from 'node:stream';
import { corkUntilNextTick } from '../kube/coalesce.ts';

/** Pipes `source` into `socket`, corked until the next tick after each burst of data. */
export function pipeCoalesced(source: Readable, socket: net.Socket): void {
  source.on('data', corkUntilNextTick(socket));
  source.pipe(socket);
}
