// The daemon's tunnel to the traffic manager: HTTP/2 over one port-forward stream, with large
// flow-control windows. Opens a CONNECT stream per TCP connection and carries DNS queries.
import http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import {
  DNS_MESSAGE_TYPE,
  MANAGER_PATHS,
  SESSION_TOKEN_HEADER,
  type SessionGrant,
} from '../protocol/paths.ts';

export class Tunnel {
  private constructor(
    private readonly session: http2.ClientHttp2Session,
    readonly grant: SessionGrant,
    readonly managerVersion: string,
  ) {}

  static async open(transport: Duplex): Promise<Tunnel> {
    const session = http2.connect('http://telepod-manager', {
      createConnection: () => transport,
      settings: { initialWindowSize: 8 << 20 },
    });
    session.on('error', () => undefined); // surfaced through the requests that fail
    await new Promise<void>((resolve, reject) => {
      session.once('connect', () => resolve());
      session.once('error', reject);
    });
    session.setLocalWindowSize(64 << 20);
    const version = (
      JSON.parse((await request(session, 'GET', MANAGER_PATHS.version)).toString()) as { version: string }
    ).version;
    const grant = JSON.parse(
      (await request(session, 'POST', MANAGER_PATHS.sessions)).toString(),
    ) as SessionGrant;
    return new Tunnel(session, grant, version);
  }

  get closed(): boolean {
    return this.session.closed || this.session.destroyed;
  }

  onClose(listener: () => void): void {
    this.session.once('close', listener);
  }

  /** A stream to host:port in the cluster; rejects when the manager cannot connect. */
  connect(host: string, port: number): Promise<http2.ClientHttp2Stream> {
    const stream = this.session.request(
      { ':method': 'CONNECT', ':authority': `${host}:${port}`, [SESSION_TOKEN_HEADER]: this.grant.token },
      { endStream: false },
    );
    return new Promise((resolve, reject) => {
      stream.once('response', (headers) => {
        if (headers[':status'] === 200) resolve(stream);
        else {
          stream.destroy();
          reject(new Error(`manager could not connect to ${host}:${port} (HTTP ${headers[':status']})`));
        }
      });
      stream.once('error', reject);
    });
  }

  /** One DNS query in wire format, answered by the cluster's resolver. */
  async dns(query: Buffer): Promise<Buffer> {
    return request(this.session, 'POST', MANAGER_PATHS.dnsQuery, query, {
      'content-type': DNS_MESSAGE_TYPE,
      [SESSION_TOKEN_HEADER]: this.grant.token,
    });
  }

  async renewLease(): Promise<void> {
    await request(this.session, 'POST', MANAGER_PATHS.lease, undefined, {
      [SESSION_TOKEN_HEADER]: this.grant.token,
    });
  }

  close(): void {
    this.session.close();
  }
}

async function request(
  session: http2.ClientHttp2Session,
  method: string,
  path: string,
  body?: Buffer,
  headers: Record<string, string> = {},
): Promise<Buffer> {
  const stream = session.request({ ':method': method, ':path': path, ...headers });
  let status = 0;
  stream.once('response', (h) => (status = Number(h[':status'])));
  stream.end(body);
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  const data = Buffer.concat(chunks);
  if (status !== 200)
    throw new Error(`manager answered ${path} with HTTP ${status}: ${data.toString().trim()}`);
  return data;
}
