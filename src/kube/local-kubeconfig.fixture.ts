// For tests: a KubeConfig whose cluster is a fake API server listening on 127.0.0.1 (plain
// HTTP, which client-node accepts only with skipTLSVerify).
import { KubeConfig } from '@kubernetes/client-node';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';

/** A KubeConfig for the fake API server `server` (listening), with a user that has no credentials. */
export function localKubeConfig(server: http.Server): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      {
        name: 'c',
        server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        skipTLSVerify: true,
      },
    ],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}
