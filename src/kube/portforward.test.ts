// Proves the port-forward adapter against a local WebSocket server. Speaking
// v4.channel.k8s.io: channel bytes are added and removed, the port announcement is dropped even
// when it comes after the first data frame, and error-channel text fails the stream. Speaking
// the SPDY tunnel: error and data streams are opened with the port-forward headers (read back
// with zlib), data flows both ways in frames, and the kubelet's error text fails the stream.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { inflateSync, constants as zlibConstants } from 'node:zlib';
import {
  CHANNEL_PROTOCOL,
  NoSpdyTunnel,
  PortForwardRefused,
  SPDY_TUNNEL_PROTOCOL,
  openPortForward,
  openPortForwardSession,
} from './portforward.ts';
import { localKubeConfig } from './local-kubeconfig.fixture.ts';

const PORT = 8081;
const announce = (channel: number) => Buffer.from([channel, PORT & 0xff, PORT >> 8]);
const frame = (channel: number, text: string) => Buffer.concat([Buffer.of(channel), Buffer.from(text)]);

let onConnection: (socket: WebSocket) => void = () => undefined;
/** The subprotocol the fake API server picks from the ones the client offers. */
let serverProtocol = CHANNEL_PROTOCOL;
let offered = '';
/** An HTTP status the fake API server answers the upgrade with instead of accepting it. */
let refuseWith: number | undefined;
// ws (unlike the API server's Go WebSocket library) refuses `/` in a subprotocol, so the fake
// server renames the SPDY tunnel's protocol on the way in and back on the way out.
const TOKEN = 'spdy-tunnel-under-test';
const wss = new WebSocketServer({
  noServer: true,
  handleProtocols: (protocols) => {
    const wanted = serverProtocol === SPDY_TUNNEL_PROTOCOL ? TOKEN : serverProtocol;
    return protocols.has(wanted) && wanted;
  },
});
wss.on('headers', (lines) => {
  const i = lines.indexOf(`Sec-WebSocket-Protocol: ${TOKEN}`);
  if (i >= 0) lines[i] = `Sec-WebSocket-Protocol: ${SPDY_TUNNEL_PROTOCOL}`;
});
wss.on('connection', (socket) => onConnection(socket));
const server = http.createServer();
server.on('upgrade', (req, socket, head) => {
  if (refuseWith) return void socket.end(`HTTP/1.1 ${refuseWith} Refused\r\nContent-Length: 0\r\n\r\n`);
  offered = req.headers['sec-websocket-protocol'] ?? '';
  req.headers['sec-websocket-protocol'] = offered.replace(SPDY_TUNNEL_PROTOCOL, TOKEN);
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});
before(() => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve)));
after(() => {
  for (const client of wss.clients) client.terminate(); // a half-open test stream keeps its socket
  wss.close();
  server.close();
});

const kubeConfig = () => localKubeConfig(server);

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const chunk of stream) text += (chunk as Buffer).toString();
  return text;
}

test('data in both directions, with the port announced first', async () => {
  serverProtocol = CHANNEL_PROTOCOL;
  onConnection = (socket) => {
    socket.send(announce(0));
    socket.send(announce(1));
    socket.on('message', (msg: Buffer) => {
      assert.equal(msg[0], 0);
      socket.send(frame(0, `echo:${msg.subarray(1).toString()}`));
      socket.close();
    });
  };
  const stream = await openPortForward(kubeConfig(), 'ns', 'pod', PORT);
  stream.write('hello');
  assert.equal(await readAll(stream), 'echo:hello');
});

test('a port announcement arriving after the first data frame is not passed on', async () => {
  onConnection = (socket) => {
    socket.send(frame(0, 'first'));
    socket.send(announce(0));
    socket.send(frame(0, '-second'));
    socket.close();
  };
  const stream = await openPortForward(kubeConfig(), 'ns', 'pod', PORT);
  assert.equal(await readAll(stream), 'first-second');
});

test('text on the error channel fails the stream', async () => {
  onConnection = (socket) => {
    socket.send(announce(0));
    socket.send(announce(1));
    socket.send(frame(1, 'connection refused'));
    socket.close();
  };
  const stream = await openPortForward(kubeConfig(), 'ns', 'pod', PORT);
  await assert.rejects(readAll(stream), /port-forward: connection refused/);
});

/** The kubelet's side of the SPDY tunnel, as far as these tests need it. */
interface SynStream {
  id: number;
  headers: Record<string, string>;
}

function spdyFrames(
  messages: Buffer[],
): { control: number; type?: number; id: number; flags: number; body: Buffer }[] {
  const bytes = Buffer.concat(messages);
  const frames = [];
  for (let offset = 0; offset < bytes.length;) {
    const length = bytes.readUInt32BE(offset + 4) & 0xffffff;
    const control = bytes[offset]! & 0x80;
    const body = bytes.subarray(offset + 8, offset + 8 + length);
    frames.push({
      control,
      ...(control ? { type: bytes.readUInt16BE(offset + 2) } : {}),
      id: control ? body.readUInt32BE(0) & 0x7fffffff : bytes.readUInt32BE(offset) & 0x7fffffff,
      flags: bytes[offset + 4]!,
      body,
    });
    offset += 8 + length;
  }
  return frames;
}

/** Reads SYN_STREAM header blocks: one zlib stream across frames, the first with its header. */
function headersOf(blocks: Buffer[]): Record<string, string>[] {
  return blocks.map((block, i) => {
    const raw = inflateSync(i === 0 ? block : Buffer.concat([Buffer.of(0x78, 0x01), block]), {
      finishFlush: zlibConstants.Z_SYNC_FLUSH,
    });
    const headers: Record<string, string> = {};
    let offset = 4;
    for (let n = raw.readUInt32BE(0); n > 0; n--) {
      const nameLength = raw.readUInt32BE(offset);
      const name = raw.subarray(offset + 4, offset + 4 + nameLength).toString();
      offset += 4 + nameLength;
      const valueLength = raw.readUInt32BE(offset);
      headers[name] = raw.subarray(offset + 4, offset + 4 + valueLength).toString();
      offset += 4 + valueLength;
    }
    return headers;
  });
}

function dataFrame(id: number, text: string, fin = false): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32BE(id, 0);
  header.writeUInt32BE(Buffer.byteLength(text), 4);
  header[4] = fin ? 1 : 0;
  return Buffer.concat([header, Buffer.from(text)]);
}

/** A fake kubelet: collects the client's frames, answers once both streams are open. */
function spdyServer(answer: (socket: WebSocket, streams: SynStream[], data: string) => void) {
  onConnection = (socket) => {
    const messages: Buffer[] = [];
    socket.on('message', (message: Buffer) => {
      messages.push(message);
      const frames = spdyFrames(messages);
      const syn = frames.filter((f) => f.control && f.type === 1);
      if (syn.length < 2) return;
      const headers = headersOf(syn.map((f) => f.body.subarray(10)));
      const streams = syn.map((f, i) => ({ id: f.id, headers: headers[i]! }));
      const data = frames
        .filter((f) => !f.control && f.id === streams[1]!.id)
        .map((f) => f.body.toString())
        .join('');
      answer(socket, streams, data);
    });
  };
}

test('SPDY tunnel: error and data streams with the port-forward headers, data both ways', async () => {
  serverProtocol = SPDY_TUNNEL_PROTOCOL;
  const seen: SynStream[][] = [];
  spdyServer((socket, streams, data) => {
    if (data !== 'hello') return;
    seen.push(streams);
    const id = streams[1]!.id;
    socket.send(dataFrame(id, 'echo:'));
    socket.send(Buffer.concat([dataFrame(id, 'hel'), dataFrame(id, 'lo', true)]));
    socket.send(dataFrame(streams[0]!.id, '', true)); // the kubelet closes the error stream after
  });
  const stream = await openPortForward(kubeConfig(), 'ns', 'pod', PORT);
  stream.write('hello');
  assert.equal(await readAll(stream), 'echo:hello');
  assert.equal(offered, `${SPDY_TUNNEL_PROTOCOL}, ${CHANNEL_PROTOCOL}`);
  assert.deepEqual(seen[0], [
    { id: 1, headers: { streamtype: 'error', port: String(PORT), requestid: '0' } },
    { id: 3, headers: { streamtype: 'data', port: String(PORT), requestid: '0' } },
  ]);
});

test('SPDY tunnel: a data stream ended before the error stream says why fails, not ends', async () => {
  serverProtocol = SPDY_TUNNEL_PROTOCOL;
  spdyServer((socket, streams) => {
    socket.send(dataFrame(streams[1]!.id, '', true));
    setTimeout(
      () => socket.send(dataFrame(streams[0]!.id, 'dial tcp4 127.0.0.1:8000: connection refused', true)),
      50,
    );
  });
  const stream = await openPortForward(kubeConfig(), 'ns', 'pod', PORT);
  stream.write('x');
  await assert.rejects(readAll(stream), /port-forward: dial tcp4 127.0.0.1:8000: connection refused/);
});

test("SPDY tunnel: the kubelet's text on the error stream fails the stream", async () => {
  serverProtocol = SPDY_TUNNEL_PROTOCOL;
  spdyServer((socket, streams) => {
    socket.send(dataFrame(streams[0]!.id, 'connection refused', true));
  });
  const stream = await openPortForward(kubeConfig(), 'ns', 'pod', PORT);
  stream.write('x');
  await assert.rejects(readAll(stream), /port-forward: connection refused/);
});

test('a refused upgrade fails with its HTTP status; an API server without the SPDY tunnel with NoSpdyTunnel', async () => {
  refuseWith = 403;
  try {
    await assert.rejects(
      openPortForward(kubeConfig(), 'shop', 'web-1', PORT),
      (err: unknown) => err instanceof PortForwardRefused && err.status === 403,
    );
  } finally {
    refuseWith = undefined;
  }
  serverProtocol = CHANNEL_PROTOCOL;
  onConnection = () => undefined;
  await assert.rejects(openPortForwardSession(kubeConfig(), 'shop', 'web-1', PORT), NoSpdyTunnel);
});
