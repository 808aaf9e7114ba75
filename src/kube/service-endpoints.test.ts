// A Service port's pods from its EndpointSlices: matched by port name, only ready Pods that are
// not terminating, each with the number its own slice gives.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1EndpointSlice } from '@kubernetes/client-node';
import { podPorts } from './service-endpoints.ts';

const slice = (port: number, endpoints: V1EndpointSlice['endpoints'], name = 'http'): V1EndpointSlice => ({
  metadata: { labels: { 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } },
  addressType: 'IPv4',
  ports: [{ name, port, protocol: 'TCP' }],
  endpoints,
});
const pod = (name: string, conditions?: { ready?: boolean; terminating?: boolean }) => ({
  addresses: ['10.0.0.1'],
  targetRef: { kind: 'Pod', name },
  ...(conditions ? { conditions } : {}),
});

test('each Service port gets the ready pods of every slice, with that slice’s port number', () => {
  const ports = podPorts(
    [
      { port: 80, name: 'http' },
      { port: 53, name: 'dns', protocol: 'UDP' },
    ],
    [
      slice(8080, [pod('a'), pod('b', { ready: true }), pod('c', { ready: false })]),
      slice(9090, [pod('d', { ready: true, terminating: true }), pod('e')]),
      slice(7000, [pod('f')], 'other'),
      { ...slice(8080, [{ addresses: ['10.0.0.9'] }]) },
      // A pod name that is no name (it goes into a URL), and a slice someone else wrote.
      slice(8080, [pod('../../kube-system/pods/victim/exec?command=sh&x=')]),
      { ...slice(8080, [pod('planted')]), metadata: { labels: {} } },
    ],
  );
  assert.deepEqual(ports.get(80), [
    { pod: 'a', port: 8080 },
    { pod: 'b', port: 8080 },
    { pod: 'e', port: 9090 },
  ]);
  assert.equal(ports.has(53), false, 'UDP is not forwarded');
});
