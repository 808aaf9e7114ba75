// A KubeConfig whose API calls reuse their connections to the API server. client-node (1.4)
// gives every request a new https.Agent, so each call paid a TCP connect and a TLS handshake:
// the claims an intercept writes (a list, then patches that wait on it) took 66-103 ms on the
// testbed for three calls. The agent is kept while the TLS settings stay the same (a new client
// certificate from an exec plugin gets a new one), and its idle sockets never keep a process
// alive (Node unrefs them) and close after 30 s unused. Proxy agents (a kubeconfig's proxy-url) are left as client-node makes them.
import { KubeConfig, type RequestContext } from '@kubernetes/client-node';
import https from 'node:https';

/** The agent options that decide which server and client identity a connection has. */
const TLS_OPTIONS = ['ca', 'cert', 'key', 'pfx', 'passphrase', 'servername', 'rejectUnauthorized'] as const;

/** How long an unused connection to the API server stays open. */
const IDLE_SOCKET_MS = 30_000;

function sameValue(a: unknown, b: unknown): boolean {
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  if (Array.isArray(a) && Array.isArray(b))
    return a.length === b.length && a.every((x, i) => sameValue(x, b[i]));
  return a === b;
}

/** Whether connections made with `a` may serve requests that asked for `b`. */
export function sameTls(a: https.AgentOptions, b: https.AgentOptions): boolean {
  return TLS_OPTIONS.every((name) => sameValue(a[name], b[name]));
}

export class PooledKubeConfig extends KubeConfig {
  private pooled: { agent: https.Agent; options: https.AgentOptions } | undefined;

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const fresh = context.getAgent();
    if (!fresh || fresh.constructor !== https.Agent) return;
    const { options } = fresh;
    if (!this.pooled || !sameTls(this.pooled.options, options)) {
      // The old agent is not destroyed: a request on it may still be running. Its idle sockets
      // close after IDLE_SOCKET_MS like any (Node's timeout ends only sockets not in use).
      const agent = new https.Agent({ ...options, keepAlive: true, timeout: IDLE_SOCKET_MS });
      this.pooled = { agent, options };
    }
    context.setAgent(this.pooled.agent);
  }
}
