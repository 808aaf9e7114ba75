// The traffic manager's own small Kubernetes API client: JSON over HTTPS with the pod's
// service-account token. Hand-written because @kubernetes/client-node would multiply the
// in-cluster bundle (which ships in a ConfigMap) by a hundred; the manager needs a handful of
// verbs on a handful of resources.
import { readFileSync } from 'node:fs';
import https from 'node:https';

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/** How long a request may wait for a connection, and then go without a byte. */
const TIMEOUT_MS = 30_000;

export class KubeApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export type KubeObject = Record<string, unknown> & {
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    resourceVersion?: string;
    generation?: number;
    ownerReferences?: { apiVersion?: string; kind: string; name: string; uid?: string }[];
  };
};

/** The verbs the manager uses; a fake stands in for it in unit tests. */
export interface KubeApi {
  get<T extends KubeObject>(path: string): Promise<T>;
  list<T extends KubeObject>(path: string): Promise<T[]>;
  create<T extends KubeObject>(path: string, body: KubeObject): Promise<T>;
  replace<T extends KubeObject>(path: string, body: KubeObject): Promise<T>;
  mergePatch<T extends KubeObject>(path: string, patch: unknown): Promise<T>;
  remove(path: string): Promise<void>;
}

export function isNotFound(err: unknown): boolean {
  return err instanceof KubeApiError && err.status === 404;
}

/** The manager's API client, as its pod's service account. */
export class InClusterKubeApi implements KubeApi {
  /**
   * Connections kept alive, at most 16 at once (more requests wait for one, up to 30 s) and 4 of
   * them idle: each TLS connection holds tens of kilobytes of native memory, and Node's defaults
   * (as many as requests at once, 256 idle) kept a burst's worth of them.
   */
  private readonly agent = new https.Agent({
    ca: readFileSync(`${SA_DIR}/ca.crt`),
    keepAlive: true,
    maxSockets: 16,
    maxFreeSockets: 4,
  });
  private readonly host = process.env.KUBERNETES_SERVICE_HOST ?? 'kubernetes.default.svc';
  private readonly port = Number(process.env.KUBERNETES_SERVICE_PORT ?? 443);

  private request<T>(
    method: string,
    path: string,
    body?: unknown,
    type = 'application/json',
    accept = 'application/json',
  ): Promise<T> {
    // Projected tokens rotate: read it for every request.
    const token = readFileSync(`${SA_DIR}/token`, 'utf8').trim();
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = https.request(
        {
          host: this.host,
          port: this.port,
          path,
          method,
          agent: this.agent,
          headers: {
            authorization: `Bearer ${token}`,
            accept,
            ...(payload ? { 'content-type': type, 'content-length': payload.length } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) return resolve((text ? JSON.parse(text) : {}) as T);
            const message = (() => {
              try {
                return (JSON.parse(text) as { message?: string }).message ?? text;
              } catch {
                return text;
              }
            })();
            reject(new KubeApiError(status, `${method} ${path}: ${message}`));
          });
        },
      );
      req.setTimeout(TIMEOUT_MS, () => req.destroy(new Error(`${method} ${path} timed out`)));
      // The timeout above starts once the request has a connection; waiting for one is bounded too.
      const waiting = setTimeout(
        () => req.destroy(new Error(`${method} ${path}: no connection to the API server free for 30 s`)),
        TIMEOUT_MS,
      );
      req.once('socket', () => clearTimeout(waiting));
      req.once('close', () => clearTimeout(waiting));
      req.on('error', reject);
      req.end(payload);
    });
  }

  get<T extends KubeObject>(path: string) {
    // The service-account issuer's key set is served as application/jwk-set+json only.
    return this.request<T>('GET', path, undefined, undefined, 'application/json, application/jwk-set+json');
  }
  async list<T extends KubeObject>(path: string) {
    return (await this.request<{ items: T[] }>('GET', path)).items;
  }
  create<T extends KubeObject>(path: string, body: KubeObject) {
    return this.request<T>('POST', path, body);
  }
  replace<T extends KubeObject>(path: string, body: KubeObject) {
    return this.request<T>('PUT', path, body);
  }
  mergePatch<T extends KubeObject>(path: string, patch: unknown) {
    return this.request<T>('PATCH', path, patch, 'application/merge-patch+json');
  }
  async remove(path: string) {
    await this.request('DELETE', path, { propagationPolicy: 'Background' });
  }
}
