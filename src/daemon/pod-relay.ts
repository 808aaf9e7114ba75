// One TCP connection carried over a port-forward stream straight to a pod. Until the pod has
// answered, what the client sent is kept (up to REPLAY_LIMIT): a port-forward that could not be
// opened (no rights, pod gone) or whose dial the kubelet reports failed (the pod's port refused
// on loopback) hands the connection and those bytes to `fallback` (the traffic manager's path),
// so the client sees nothing of it. Any other failure resets the client: the app may have read
// the request already, and sending it twice could do its work twice.
// The client's half-close is not passed on: the container runtime ends a port-forward stream
// pair a second after either direction ends (containerd 1.6), which would cut an answer still
// coming; the pod's side ends the connection, or the client's full close does.
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { NO_REPLY } from '../kube/spdy.ts';
import { abort } from '../protocol/liveness.ts';
import { pipeCoalesced } from './coalesced-pipe.ts';

/** Bytes kept for a replay through the manager; a client that sent more before any answer is not replayed. */
export const REPLAY_LIMIT = 64 << 10;

/**
 * Whether a stream's failure says the kubelet never connected to the pod's port (its error
 * stream's words, as containerd and the kubelet put them), so that nothing reached the app.
 */
export function neverConnected(err: Error): boolean {
  if (err.message.startsWith(NO_REPLY)) return true; // the kubelet never accepted the stream
  return (
    err.message.startsWith('port-forward: ') &&
    /failed to connect to|connection refused|failed to find sandbox|not found|no such (pod|container)/i.test(
      err.message,
    )
  );
}

/** What a connection that could not go straight to its pod carries to the fallback path. */
export interface Unsent {
  /** What the client sent so far, in order. */
  chunks: Buffer[];
  /** Whether the client has ended its side already. */
  ended: boolean;
}

/**
 * Carries `socket` over the stream `opening` resolves to; calls `fallback` (once, with what the
 * client sent) when the stream cannot be opened or fails before the pod answered.
 */
export function relayThroughPod(
  socket: net.Socket,
  opening: Promise<Duplex>,
  fallback: (unsent: Unsent, reason: Error) => void,
): void {
  socket.pause(); // nothing is read until there is somewhere to send it
  opening.then(
    (stream) => relay(socket, stream, fallback),
    (err: Error) => (socket.destroyed ? undefined : fallback({ chunks: [], ended: false }, err)),
  );
}

function relay(socket: net.Socket, stream: Duplex, fallback: (unsent: Unsent, reason: Error) => void): void {
  if (socket.destroyed) return void stream.destroy();
  let kept: Buffer[] | undefined = [];
  let keptBytes = 0;
  let clientEnded = false;
  let handedOver = false;
  const toPod = (chunk: Buffer) => {
    if (kept) {
      keptBytes += chunk.length;
      if (keptBytes <= REPLAY_LIMIT) kept.push(chunk);
      else kept = undefined;
    }
    if (!stream.write(chunk)) {
      socket.pause();
      stream.once('drain', () => handedOver || socket.resume());
    }
  };
  const clientEnd = () => {
    clientEnded = true;
    if (stream.readableEnded) stream.end();
  };
  const clientGone = () => stream.destroy();
  socket.on('data', toPod);
  socket.on('end', clientEnd);
  socket.on('close', clientGone);
  stream.once('data', () => (kept = undefined)); // the pod answered: no replay from here on
  stream.once('end', () => {
    if (clientEnded) stream.end();
  });
  stream.on('error', (err: Error) => {
    if (handedOver) return;
    if (!kept || socket.destroyed || !neverConnected(err)) return void abort(socket);
    handedOver = true;
    socket.off('data', toPod);
    socket.off('end', clientEnd);
    socket.off('close', clientGone);
    stream.unpipe(socket);
    socket.pause();
    fallback({ chunks: kept, ended: clientEnded }, err);
  });
  stream.once('close', () => {
    // A stream reset or cut short resets the client: a transfer without a length of its own
    // must not look complete.
    if (!handedOver && !stream.readableEnded) abort(socket);
  });
  pipeCoalesced(stream, socket);
  socket.resume();
}
