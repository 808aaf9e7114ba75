// The daemon's tunnel to the traffic manager: HTTP/2 over one port-forward stream, with large
// flow-control windows. Opens a CONNECT stream per TCP connection, carries DNS queries, the
// session's requests (intercepts), its inbound connections and volume streams.
import http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import { TelepodError } from '../protocol/errors.ts';
import { INBOUND_HEADER, VOLUMES_HEADER } from '../protocol/intercept.ts';
import {
  DNS_MESSAGE_TYPE,
  MANAGER_PATHS,
  SESSION_TOKEN_HEADER,
  type ClusterInfo,
  type ManagerError,
  type SessionGrant,
  HTTP2_CONNECTION_WINDOW,
  HTTP2_SESSION_OPTIONS,
} from '../protocol/paths.ts';
import type { SessionRequest } from '../protocol/requests.ts';
import { keepAlive } from '../protocol/liveness.ts';
import { PROTOCOL_VERSION, TELEPOD_VERSION, versionSkew, type Versions } from '../protocol/version.ts';

export class Tunnel {
  /** Why the session ended, once it did: the last session error or the manager's GOAWAY code. */
  private closeReason: string | undefined;

  private constructor(
    private readonly session: http2.ClientHttp2Session,
    readonly grant: SessionGrant,
    readonly managerVersion: string,
  ) {
    session.on('error', (err: NodeJS.ErrnoException) => (this.closeReason = err.code ?? err.message));
    session.on('goaway', (code: number) => (this.closeReason ??= `GOAWAY ${code}`));
  }

  static async open(transport: Duplex, sessionRequest: SessionRequest): Promise<Tunnel> {
    const session = http2.connect('http://telepod-manager', {
      ...HTTP2_SESSION_OPTIONS,
      createConnection: () => transport,
    });
    session.on('error', () => undefined); // surfaced through the requests that fail
    await new Promise<void>((resolve, reject) => {
      session.once('connect', () => resolve());
      session.once('error', reject);
    });
    session.setLocalWindowSize(HTTP2_CONNECTION_WINDOW);
    keepAlive(session, 3_000, 3); // through the API server: 9-12 s, well within the 20 s lease
    const manager = JSON.parse((await request(session, 'GET', MANAGER_PATHS.version)).toString()) as Versions;
    const skew = versionSkew({ version: TELEPOD_VERSION, protocol: PROTOCOL_VERSION }, manager);
    if (skew) {
      session.destroy();
      throw new TelepodError(skew);
    }
    const body = { ...sessionRequest, version: TELEPOD_VERSION, protocol: PROTOCOL_VERSION };
    const grant = JSON.parse(
      (await request(session, 'POST', MANAGER_PATHS.sessions, Buffer.from(JSON.stringify(body)))).toString(),
    ) as SessionGrant;
    return new Tunnel(session, grant, manager.version);
  }

  get closed(): boolean {
    return this.session.closed || this.session.destroyed;
  }

  /**
   * Calls `listener` once the session has closed, with why: a session error, the manager's
   * GOAWAY, or else the port-forward's end (the API server or the manager pod went away).
   */
  onClose(listener: (reason: string) => void): void {
    this.session.once('close', () => listener(this.closeReason ?? 'the port-forward ended'));
  }

  /**
   * A stream to host:port in the cluster. It may be written at once (the manager buffers until
   * its connection is up, sparing a round trip before the first byte); `connected` settles
   * when the manager has connected, or could not.
   */
  connect(host: string, port: number): { stream: http2.ClientHttp2Stream; connected: Promise<void> } {
    const stream = this.session.request(
      { ':method': 'CONNECT', ':authority': `${host}:${port}`, [SESSION_TOKEN_HEADER]: this.grant.token },
      { endStream: false },
    );
    const connected = new Promise<void>((resolve, reject) => {
      stream.once('response', (headers) => {
        if (headers[':status'] === 200) resolve();
        else {
          stream.destroy();
          reject(new Error(`manager could not connect to ${host}:${port} (HTTP ${headers[':status']})`));
        }
      });
      stream.once('error', reject);
    });
    return { stream, connected };
  }

  /** One DNS query in wire format, answered by the cluster's resolver. */
  async dns(query: Buffer): Promise<Buffer> {
    return request(this.session, 'POST', MANAGER_PATHS.dnsQuery, query, {
      'content-type': DNS_MESSAGE_TYPE,
      [SESSION_TOKEN_HEADER]: this.grant.token,
    });
  }

  /**
   * A session request with a JSON body and answer; the manager's refusals become TelepodErrors.
   * With `timeoutMs`, a request not answered by then fails.
   */
  async call<T>(path: string, body: unknown, timeoutMs?: number): Promise<T> {
    const stream = this.session.request({
      ':method': 'POST',
      ':path': path,
      'content-type': 'application/json',
      [SESSION_TOKEN_HEADER]: this.grant.token,
    });
    if (timeoutMs) {
      stream.setTimeout(timeoutMs, () =>
        stream.destroy(new Error(`no answer to ${path} within ${timeoutMs / 1000} s`)),
      );
    }
    let status = 0;
    stream.once('response', (h) => (status = Number(h[':status'])));
    stream.end(JSON.stringify(body));
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString();
    if (status === 200) return JSON.parse(text) as T;
    if (text.startsWith('{')) {
      const refusal = JSON.parse(text) as ManagerError;
      throw new TelepodError(refusal.error, refusal.exitCode);
    }
    throw new TelepodError(`the traffic manager answered ${path} with HTTP ${status}: ${text.trim()}`);
  }

  /** The session's stream of inbound-connection events (JSON lines), until the tunnel closes. */
  inboundEvents(): http2.ClientHttp2Stream {
    return this.session.request({
      ':path': MANAGER_PATHS.inboundEvents,
      [SESSION_TOKEN_HEADER]: this.grant.token,
    });
  }

  /** The stream for one inbound connection, once the manager has spliced it to the agent's. */
  /** The stream of one inbound connection, named by the manager's event. */
  inbound(conn: string): Promise<http2.ClientHttp2Stream> {
    return this.pairedStream({ [INBOUND_HEADER]: conn }, `inbound connection ${conn}`);
  }

  /** A stream on which an agent of the intercepted workload serves its volumes over SFTP. */
  volumes(interceptId: string): Promise<http2.ClientHttp2Stream> {
    return this.pairedStream({ [VOLUMES_HEADER]: interceptId }, 'the volume stream');
  }

  /** A CONNECT stream the manager splices to an agent's; resolves once the manager paired it. */
  private pairedStream(header: Record<string, string>, what: string): Promise<http2.ClientHttp2Stream> {
    const stream = this.session.request(
      {
        ':method': 'CONNECT',
        ':authority': 'paired:0',
        ...header,
        [SESSION_TOKEN_HEADER]: this.grant.token,
      },
      { endStream: false },
    );
    return new Promise((resolve, reject) => {
      stream.once('response', (headers) => {
        if (headers[':status'] === 200) return resolve(stream);
        stream.destroy();
        reject(new Error(`${what} failed (HTTP ${headers[':status']})`));
      });
      stream.once('error', reject);
    });
  }

  /** The subnets and namespaces the manager found for workstations. */
  async clusterInfo(): Promise<ClusterInfo> {
    const body = await request(this.session, 'GET', MANAGER_PATHS.cluster, undefined, {
      [SESSION_TOKEN_HEADER]: this.grant.token,
    });
    return JSON.parse(body.toString()) as ClusterInfo;
  }

  async renewLease(): Promise<void> {
    await request(this.session, 'POST', MANAGER_PATHS.lease, undefined, {
      [SESSION_TOKEN_HEADER]: this.grant.token,
    });
  }

  /** Ends the session at the manager, which restores everything the session changed. */
  async end(): Promise<void> {
    await request(this.session, 'POST', MANAGER_PATHS.sessionEnd, undefined, {
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
