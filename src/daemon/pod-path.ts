// The daemon's path straight to pods: Service addresses learned from cluster DNS answers, their
// ready pods read (and their slices watched) with the developer's rights, and a shared
// port-forward per pod. A connection takes it when its Service's pods are known; anything else,
// or a port-forward that fails before the pod answered, takes the traffic manager's tunnel
// (src/daemon/outbound.ts).
import type { KubeConfig } from '@kubernetes/client-node';
import type { Packet } from 'dns-packet';
import type { Logger } from 'pino';
import type { PodConnectionCounts } from '../protocol/daemon-api.ts';
import { PodPortForwards } from '../kube/pod-port-forwards.ts';
import { NoSpdyTunnel, PortForwardRefused } from '../kube/portforward.ts';
import { readServiceEndpoints, watchServiceSlices } from '../kube/service-endpoints.ts';
import type { PodPath } from './outbound.ts';
import { ServiceRoutes } from './service-routes.ts';

/** The pod path of one session: `learn` sees cluster DNS answers; `close` ends its port-forwards. */
export interface PodPathSession {
  path: PodPath;
  /** What `status` shows. */
  counts: PodConnectionCounts;
  learn(answer: Packet): void;
  close(): void;
}

/**
 * What a failed port-forward teaches: `path`, the API server has no SPDY tunnel (Kubernetes <
 * 1.31, a connection per port-forward), so the path ends; `namespace`, the developer may not
 * port-forward there (403); `pod`, anything else, about that pod's port.
 */
export function failureLesson(reason: Error): 'path' | 'namespace' | 'pod' {
  if (reason instanceof NoSpdyTunnel) return 'path';
  if (reason instanceof PortForwardRefused && reason.status === 403) return 'namespace';
  return 'pod';
}

/**
 * The pod path for one session with the developer's kubeconfig: routes learned from DNS answers
 * for `domain`, connection counts for `status`, and what a failed port-forward teaches (a 403
 * refuses the namespace, an API server without SPDY ends the path, anything else the pod's port).
 */
export function createPodPath(kc: KubeConfig, domain: string, log: Logger): PodPathSession {
  const routes = new ServiceRoutes({
    domain,
    read: (ns, service) => readServiceEndpoints(kc, ns, service),
    watch: (ns, service, version, changed, ended) =>
      watchServiceSlices(kc, ns, service, version, changed, ended),
    log,
  });
  const forwards = new PodPortForwards(kc);
  const counts = {
    direct: 0,
    fallbacks: 0,
    get watchedServices() {
      return routes.watchedServices;
    },
    get endpointChanges() {
      return routes.endpointChanges;
    },
  };
  let unavailable = false;
  return {
    counts,
    path: {
      route: (host, port) => (unavailable ? undefined : routes.route(host, port)),
      connect: (target) => {
        counts.direct++;
        return forwards.connect(target.namespace, target.pod, target.port);
      },
      failed: (target, reason) => {
        counts.fallbacks++;
        const lesson = failureLesson(reason);
        if (lesson === 'path') unavailable = true;
        else if (lesson === 'namespace') routes.refuse(target.namespace);
        else routes.failed(target);
      },
    },
    learn: (answer) => routes.learn(answer),
    close: () => {
      routes.close();
      forwards.close();
    },
  };
}
