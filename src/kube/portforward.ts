// A port-forward to one pod port as a Duplex stream: a WebSocket speaking v4.channel.k8s.io
// (channel 0 carries data, channel 1 errors; each channel's first frame is the port number).
// Own adapter instead of client-node's PortForward, which has no backpressure.
import type { KubeConfig } from '@kubernetes/client-node';
import type { RequestOptions } from 'node:https';
import { Duplex } from 'node:stream';
import WebSocket from 'ws';

const DATA = 0;
const ERROR = 1;

export async function openPortForward(
  kc: KubeConfig,
  namespace: string,
  pod: string,
  port: number,
): Promise<Duplex> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('no current cluster in the kubeconfig');
  const url = new URL(
    `/api/v1/namespaces/${namespace}/pods/${pod}/portforward?ports=${port}`,
    cluster.server,
  );
  url.protocol = url.protocol === 'http:' ? 'ws:' : 'wss:';
  const options: RequestOptions = {};
  await kc.applyToHTTPSOptions(options);
  const ws = new WebSocket(url, ['v4.channel.k8s.io'], {
    ca: options.ca,
    cert: options.cert,
    key: options.key,
    headers: options.headers as Record<string, string> | undefined,
    rejectUnauthorized: options.rejectUnauthorized,
    perMessageDeflate: false,
    // A zero mask, which ws recognises and skips: masking exists to protect proxies from
    // scripts in browsers; for this client it only cost a pass over every byte sent.
    generateMask: (mask: Buffer) => void mask.fill(0),
  });
  // Listen before the handshake completes: the server may send frames in the same packet as
  // its handshake answer, and they are emitted before an awaiting caller would resume.
  const duplex = websocketDuplex(ws, port);
  const untilOpen = () => undefined; // failures before `open` are reported by the rejection below
  duplex.on('error', untilOpen);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) =>
      reject(new Error(`port-forward to ${namespace}/${pod}:${port} refused: HTTP ${res.statusCode}`)),
    );
  }).catch((err: unknown) => {
    ws.terminate();
    throw err;
  });
  duplex.off('error', untilOpen);
  return duplex;
}

function websocketDuplex(ws: WebSocket, port: number): Duplex {
  const portAnnounced = new Set<number>();
  let errorText = '';
  const duplex = new Duplex({
    // Room for a few large HTTP/2 frames each way: with the 16 KiB default, the WebSocket was
    // paused and resumed many times per megabyte.
    readableHighWaterMark: 1 << 20,
    writableHighWaterMark: 1 << 20,
    // Chunks written together (HTTP/2 writes a frame header and its payload separately) go
    // out as one WebSocket message.
    writev(chunks, callback) {
      ws.send(Buffer.concat([Buffer.of(DATA), ...chunks.map((c) => c.chunk as Buffer)]), callback);
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
  ws.on('message', (raw: Buffer) => {
    const channel = raw[0];
    let payload = raw.subarray(1);
    if (channel === undefined) return;
    // Each channel announces its port (uint16 little-endian) once, normally in its first frame;
    // it is recognised by its value rather than its position, and never passed on as data.
    if (!portAnnounced.has(channel) && payload.length >= 2 && payload.readUInt16LE(0) === port) {
      portAnnounced.add(channel);
      payload = payload.subarray(2);
    }
    if (channel === DATA) {
      if (payload.length > 0 && !duplex.push(payload)) ws.pause();
    } else if (channel === ERROR) {
      errorText += payload.toString('utf8');
    }
  });
  ws.on('close', () => {
    if (errorText) duplex.destroy(new Error(`port-forward: ${errorText}`));
    else duplex.push(null);
  });
  ws.on('error', (err) => duplex.destroy(err));
  return duplex;
}
