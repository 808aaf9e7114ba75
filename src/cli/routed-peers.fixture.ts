// The two ends of the personal-intercept e2e test, run with node in a network namespace:
// - `serve <name> <http port> <h2c port> <log file>`: a developer's local servers — HTTP/1.1
//   with WebSocket on the first port, h2c on the second (plain streams, and a gRPC method framed
//   by hand; the gRPC client is grpc-js) — answering with
//   `name`, and logging every request they get (one JSON line each) to the log file;
// - `clients <cluster ip> <http port> <h2c port>`: the cluster client, run in the node netns: a
//   sequence of HTTP/1.1 requests on one kept-alive connection, h2c requests on one session, a
//   gRPC call, a WebSocket, each with and without the developers' headers; prints JSON results;
// - `mirror <cluster ip> <http port>`: three POSTs on one kept-alive connection.
import * as grpc from '@grpc/grpc-js';
import { appendFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import { WebSocket, WebSocketServer } from 'ws';

/** The gRPC method both ends use, with raw bytes as messages (no .proto needed). */
const ECHO = {
  path: '/telepod.Echo/Who',
  requestStream: false,
  responseStream: false,
  requestSerialize: (b: Buffer) => b,
  requestDeserialize: (b: Buffer) => b,
  responseSerialize: (b: Buffer) => b,
  responseDeserialize: (b: Buffer) => b,
} as const;

function serve(name: string, httpPort: number, h2Port: number, logFile: string): void {
  const record = (entry: object) => appendFileSync(logFile, `${JSON.stringify(entry)}\n`);
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      record({ proto: 'http1', method: req.method, url: req.url, dev: req.headers['x-dev'], body });
      res.end(`${name}:${req.url}`);
    });
  });
  new WebSocketServer({ server }).on('connection', (socket, req) => {
    record({ proto: 'ws', url: req.url, dev: req.headers['x-dev'] });
    socket.on('message', (data: Buffer) => socket.send(`${name}:${data.toString()}`));
  });
  // h2c: plain streams, and the gRPC method framed by hand (the client is grpc-js).
  const h2Server = http2.createServer().on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const dev = headers['x-dev'];
      if (!String(headers['content-type']).startsWith('application/grpc')) {
        record({ proto: 'h2', url: headers[':path'], dev });
        stream.respond({ ':status': 200 });
        return stream.end(`${name}:${headers[':path']}`);
      }
      record({ proto: 'grpc', url: headers[':path'], dev });
      const message = Buffer.from(`${name}:${Buffer.concat(chunks).subarray(5).toString()}`);
      const frame = Buffer.alloc(5);
      frame.writeUInt32BE(message.length, 1);
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(Buffer.concat([frame, message]));
    });
  });
  let ready = 0;
  const started = () => ++ready === 2 && process.stdout.write('ready\n');
  server.listen(httpPort, started);
  h2Server.listen(h2Port, started);
  process.on('SIGTERM', () => process.exit(0));
}

function http1(agent: http.Agent, host: string, port: number, path: string, dev?: string) {
  return new Promise<{ body: string; socket: number }>((resolve, reject) => {
    const req = http.request({ host, port, path, agent, headers: dev ? { 'x-dev': dev } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ body, socket: res.socket?.localPort ?? 0 }));
    });
    req.on('error', reject).end();
  });
}

function h2(session: http2.ClientHttp2Session, path: string, dev?: string) {
  return new Promise<string>((resolve, reject) => {
    const stream = session.request({ ':path': path, ...(dev ? { 'x-dev': dev } : {}) });
    let body = '';
    stream.setEncoding('utf8').on('data', (c: string) => (body += c));
    stream.on('end', () => resolve(body)).on('error', reject);
    stream.end();
  });
}

type WhoClient = grpc.Client & {
  Who(
    message: Buffer,
    metadata: grpc.Metadata,
    done: (err: grpc.ServiceError | null, reply?: Buffer) => void,
  ): void;
};

function grpcCall(target: string, dev?: string) {
  const Client = grpc.makeGenericClientConstructor({ Who: ECHO }, 'Echo');
  const client = new Client(target, grpc.credentials.createInsecure()) as unknown as WhoClient;
  const metadata = new grpc.Metadata();
  if (dev) metadata.set('x-dev', dev);
  return new Promise<string>((resolve, reject) => {
    client.Who(Buffer.from('hi'), metadata, (err, reply) => {
      client.close();
      if (err) reject(err);
      else resolve(reply!.toString());
    });
  });
}

function webSocket(url: string, dev: string) {
  return new Promise<string>((resolve, reject) => {
    const socket = new WebSocket(url, { headers: { 'x-dev': dev } });
    socket.once('open', () => socket.send('ping'));
    socket.once('message', (data: Buffer) => {
      resolve(data.toString());
      socket.close();
    });
    socket.once('error', reject);
  });
}

async function clients(host: string, httpPort: number, h2Port: number): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const http1Results = [];
  for (const dev of ['alice', 'bob', undefined, 'bob', 'alice', undefined]) {
    http1Results.push({ dev, ...(await http1(agent, host, httpPort, `/h1/${dev ?? 'none'}`, dev)) });
  }
  agent.destroy();
  const session = http2.connect(`http://${host}:${h2Port}`);
  const h2Results = [];
  try {
    for (const dev of ['alice', undefined, 'bob'])
      h2Results.push({ dev, body: await h2(session, `/h2/${dev ?? 'none'}`, dev) });
  } finally {
    session.close();
  }
  const grpcResults = [];
  for (const dev of ['alice', undefined, 'bob'])
    grpcResults.push({ dev, body: await grpcCall(`${host}:${h2Port}`, dev) });
  const ws = await webSocket(`ws://${host}:${httpPort}/socket`, 'alice');
  process.stdout.write(JSON.stringify({ http1: http1Results, h2: h2Results, grpc: grpcResults, ws }));
}

/** Three POSTs with bodies on one kept-alive connection: what the cluster client gets back. */
async function mirrorClient(host: string, httpPort: number): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const answers: string[] = [];
  for (let i = 0; i < 3; i++) {
    answers.push(
      await new Promise<string>((resolve, reject) => {
        const path = `/m/${i}`;
        const req = http.request({ host, port: httpPort, path, method: 'POST', agent }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (c: string) => (body += c));
          res.on('end', () => resolve(body));
        });
        req.on('error', reject).end(`body of ${path}`);
      }),
    );
  }
  agent.destroy();
  process.stdout.write(JSON.stringify({ mirror: answers }));
}

const [command, ...args] = process.argv.slice(2);
if (command === 'serve') serve(args[0]!, Number(args[1]), Number(args[2]), args[3]!);
else if (command === 'clients') await clients(args[0]!, Number(args[1]), Number(args[2]));
else if (command === 'mirror') await mirrorClient(args[0]!, Number(args[1]));
else
  throw new Error(`usage: serve <name> <http port> <h2c port> <log> | clients <ip> <http port> <h2c port>`);
