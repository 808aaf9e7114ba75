// A port-forward to one pod port as a Duplex stream, over one WebSocket to the API server.
// It offers two subprotocols and the API server picks:
// - `SPDY/3.1+portforward.k8s.io` (Kubernetes ≥ 1.31, as kubectl does): the WebSocket carries
//   a SPDY session to the kubelet's port-forward server, on which the port's data and error
//   streams are opened (src/kube/spdy.ts). The kubelet's SPDY server moves bulk data about
//   twice as fast as its WebSocket one.
// - `v4.channel.k8s.io` (older clusters): channel 0 carries data, channel 1 errors; each
//   channel's first frame is the port number.
// Own adapter instead of client-node's PortForward, which has no backpressure.
import type { KubeConfig } from '@kubernetes/client-node';
import type { RequestOptions } from 'node:https';
import { Duplex } from 'node:stream';
import WebSocket from 'ws';
import { coalesceSmall } from './coalesce.ts';
import { NO_REPLY, SpdySession } from './spdy.ts';

/** The API server answered a port-forward's upgrade with an HTTP status (403: no right to it). */
export class PortForwardRefused extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'PortForwardRefused';
  }
}

/** The API server chose the older WebSocket protocol (Kubernetes < 1.31): one connection per port-forward. */
export class NoSpdyTunnel extends Error {
  override name = 'NoSpdyTunnel';
}

export const SPDY_TUNNEL_PROTOCOL = 'SPDY/3.1+portforward.k8s.io';
export const CHANNEL_PROTOCOL = 'v4.channel.k8s.io';
/**
 * ws accepts only RFC 6455 tokens as subprotocols, and `/` is not one. The real list is set on
 * the request, and the server's choice of the SPDY tunnel is shown to ws under this name.
 */
const SPDY_TUNNEL_ALIAS = 'spdy-tunnel.telepod';
const DATA = 0;
const ERROR = 1;
/** How long a data stream's end waits for the error stream's (the kubelet closes it right after). */
const ERROR_VERDICT_MS = 500;
/** How long the kubelet may take to accept a stream (its SYN_REPLY; it replies at once). */
const REPLY_TIMEOUT_MS = 5_000;
/**
 * How long opening a shared port-forward to a pod may take: its first connection waits for it,
 * then takes the manager's path (a stalled upgrade would otherwise hold it, and the next ones).
 */
const SESSION_HANDSHAKE_MS = 5_000;

/** How a WebSocket's messages map to a byte stream. */
interface Codec {
  /** The messages that carry chunks written together. */
  encode(chunks: Buffer[]): Buffer[];
  /** The bytes a message carries for the stream, if any. */
  decode(message: Buffer): Buffer | undefined;
  /** Why the stream failed, known when the WebSocket closes. */
  failure(): Error | undefined;
}

export async function openPortForward(
  kc: KubeConfig,
  namespace: string,
  pod: string,
  port: number,
): Promise<Duplex> {
  const opened = await openTransport(kc, namespace, pod, port);
  return opened instanceof SpdySession ? portStreams(opened, port) : opened;
}

/** One port-forward connection to a pod, carrying a stream pair per TCP connection (as kubectl does). */
export interface PortForwardSession {
  /** A connection to `port` in the pod; it may be written at once. */
  connect(port: number): Duplex;
  /** Whether the connection ended: connect() would fail. */
  readonly closed: boolean;
  /** Called once when the connection ends. */
  onClose(listener: () => void): void;
  close(): void;
}

/**
 * A port-forward connection to a pod on which connections to any of its ports are opened, each
 * a data and error stream pair with its own request id. Only the SPDY tunnel (Kubernetes ≥ 1.31)
 * can carry more than one; an older API server's choice fails here.
 */
export async function openPortForwardSession(
  kc: KubeConfig,
  namespace: string,
  pod: string,
  port: number,
): Promise<PortForwardSession> {
  const opened = await openTransport(kc, namespace, pod, port, SESSION_HANDSHAKE_MS);
  if (!(opened instanceof SpdySession)) {
    opened.destroy();
    throw new NoSpdyTunnel('the API server offers no SPDY port-forward tunnel (Kubernetes < 1.31)');
  }
  let requests = 0;
  return {
    connect: (p) => portStreams(opened, p, String(requests++), false),
    get closed() {
      return opened.closed;
    },
    onClose: (listener) => opened.onClose(listener),
    close: () => opened.close(),
  };
}

async function openTransport(
  kc: KubeConfig,
  namespace: string,
  pod: string,
  port: number,
  handshakeTimeout?: number,
): Promise<Duplex | SpdySession> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('no current cluster in the kubeconfig');
  const path = `namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}`;
  const url = new URL(`/api/v1/${path}/portforward?ports=${port}`, cluster.server);
  url.protocol = url.protocol === 'http:' ? 'ws:' : 'wss:';
  const options: RequestOptions = {};
  await kc.applyToHTTPSOptions(options);
  const ws = new WebSocket(url, [SPDY_TUNNEL_ALIAS, CHANNEL_PROTOCOL], {
    ca: options.ca,
    cert: options.cert,
    key: options.key,
    headers: options.headers as Record<string, string> | undefined,
    rejectUnauthorized: options.rejectUnauthorized,
    perMessageDeflate: false,
    ...(handshakeTimeout ? { handshakeTimeout } : {}),
    // A zero mask, which ws recognises and skips: masking exists to protect proxies from
    // scripts in browsers; for this client it only cost a pass over every byte sent.
    generateMask: (mask: Buffer) => void mask.fill(0),
    finishRequest: (request) => {
      request.setHeader('Sec-WebSocket-Protocol', `${SPDY_TUNNEL_PROTOCOL}, ${CHANNEL_PROTOCOL}`);
      request.prependListener('upgrade', (response) => {
        if (response.headers['sec-websocket-protocol'] === SPDY_TUNNEL_PROTOCOL) {
          response.headers['sec-websocket-protocol'] = SPDY_TUNNEL_ALIAS;
        }
      });
      request.end();
    },
  });
  // Listen before the handshake completes: the server may send frames in the same packet as
  // its handshake answer, and they are emitted before an awaiting caller would resume.
  const early: Buffer[] = [];
  const keep = (message: Buffer) => early.push(message);
  ws.on('message', keep);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) =>
      reject(
        new PortForwardRefused(
          `port-forward to ${namespace}/${pod}:${port} refused: HTTP ${res.statusCode}`,
          res.statusCode ?? 0,
        ),
      ),
    );
  }).catch((err: unknown) => {
    ws.terminate();
    throw err;
  });
  ws.off('message', keep);
  if (ws.protocol !== SPDY_TUNNEL_ALIAS) return websocketDuplex(ws, channelCodec(port), early);
  return new SpdySession(websocketDuplex(ws, bytesCodec, early));
}

/**
 * The port-forward protocol on a SPDY session: an error stream (closed for writing at once; the
 * kubelet writes a failure there) and a data stream, paired by a request id. With
 * `closeSession`, the session ends with the data stream (a port-forward of one connection).
 */
function portStreams(session: SpdySession, port: number, requestid = '0', closeSession = true): Duplex {
  const common = { port: String(port), requestid };
  const errors = session.open({ streamtype: 'error', ...common });
  errors.end();
  const data = session.open({ streamtype: 'data', ...common });
  let errorText = '';
  errors.on('data', (chunk: Buffer) => (errorText += chunk.toString('utf8')));
  errors.on('end', () => {
    if (errorText) data.destroy(new Error(`port-forward: ${errorText}`));
  });
  errors.on('error', (err: Error) => data.destroy(err));
  // The kubelet may end the data stream before it writes why (a refused dial): its end counts
  // only once the error stream has ended without a word (or ERROR_VERDICT_MS later), or a
  // failure would look like an empty answer.
  const errorsClosed = new Promise<void>((resolve) => errors.once('close', resolve));
  data.endAfter(() =>
    Promise.race([
      errorsClosed,
      new Promise<void>((resolve) => setTimeout(resolve, ERROR_VERDICT_MS).unref()),
    ]),
  );
  // A kubelet that does not even accept the stream (SYN_REPLY, sent before it forwards a byte)
  // within REPLY_TIMEOUT_MS is stuck: the stream fails as never connected, and so does the
  // session, so that the next connection opens a new one.
  // While a slow reader holds the connection paused, a reply may be waiting unread: not counted.
  const watch = (): NodeJS.Timeout =>
    setTimeout(() => {
      if (session.heldUp) return void (stuck = watch());
      data.destroy(new Error(`${NO_REPLY}: no reply from the kubelet within ${REPLY_TIMEOUT_MS / 1000} s`));
      session.close();
    }, REPLY_TIMEOUT_MS).unref();
  let stuck = watch();
  data.once('reply', () => clearTimeout(stuck));
  data.once('close', () => {
    clearTimeout(stuck);
    if (closeSession) session.close();
  });
  return data;
}

const bytesCodec: Codec = {
  // The SPDY session's frames as a byte stream: short pieces written together share a message.
  encode: coalesceSmall,
  decode: (message) => message,
  failure: () => undefined,
};

function channelCodec(port: number): Codec {
  const portAnnounced = new Set<number>();
  let errorText = '';
  return {
    // One message for chunks written together (HTTP/2 writes a frame header and payload apart).
    encode: (chunks) => [Buffer.concat([Buffer.of(DATA), ...chunks])],
    decode(message) {
      const channel = message[0];
      let payload = message.subarray(1);
      if (channel === undefined) return undefined;
      // Each channel announces its port (uint16 little-endian) once, normally in its first
      // frame; it is recognised by its value rather than its position, and never passed on.
      if (!portAnnounced.has(channel) && payload.length >= 2 && payload.readUInt16LE(0) === port) {
        portAnnounced.add(channel);
        payload = payload.subarray(2);
      }
      if (channel === ERROR) errorText += payload.toString('utf8');
      return channel === DATA ? payload : undefined;
    },
    failure: () => (errorText ? new Error(`port-forward: ${errorText}`) : undefined),
  };
}

function websocketDuplex(ws: WebSocket, codec: Codec, early: Buffer[]): Duplex {
  const duplex = new Duplex({
    // Room for a few large HTTP/2 frames each way: with the 16 KiB default, the WebSocket was
    // paused and resumed many times per megabyte.
    readableHighWaterMark: 1 << 20,
    writableHighWaterMark: 1 << 20,
    writev(chunks, callback) {
      const messages = codec.encode(chunks.map((c) => c.chunk as Buffer));
      if (!messages.length) return callback(); // only empty chunks: nothing to send
      messages.forEach((message, i) => ws.send(message, i === messages.length - 1 ? callback : undefined));
    },
    final(callback) {
      ws.close(1000);
      callback();
    },
    read() {
      if (ws.isPaused) ws.resume();
    },
    destroy(err, callback) {
      ws.terminate();
      callback(err);
    },
  });
  const receive = (message: Buffer) => {
    const payload = codec.decode(message);
    if (payload?.length && !duplex.push(payload)) ws.pause();
  };
  early.forEach(receive);
  ws.on('message', receive);
  ws.on('close', () => {
    const failure = codec.failure();
    if (failure) duplex.destroy(failure);
    else duplex.push(null);
  });
  ws.on('error', (err) => duplex.destroy(err));
  return duplex;
}
