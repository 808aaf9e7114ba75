// Proves which names are sent to the cluster and how they are completed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clusterName } from './cluster-names.ts';

const naming = { namespace: 'shop', namespaces: new Set(['shop', 'kube-system']), domain: 'cluster.local' };

test('short names complete in the connected namespace', () => {
  assert.equal(clusterName('service-b', naming), 'service-b.shop.svc.cluster.local');
});

test('name.namespace and name.namespace.svc complete for known namespaces', () => {
  assert.equal(clusterName('kube-dns.kube-system', naming), 'kube-dns.kube-system.svc.cluster.local');
  assert.equal(clusterName('kube-dns.kube-system.svc', naming), 'kube-dns.kube-system.svc.cluster.local');
  assert.equal(clusterName('pod-0.db.shop', naming), 'pod-0.db.shop.svc.cluster.local');
});

test('fully qualified cluster names pass unchanged, case and trailing dot folded', () => {
  assert.equal(clusterName('Service-B.Shop.svc.cluster.local.', naming), 'service-b.shop.svc.cluster.local');
});

test('other names are not the cluster’s', () => {
  assert.equal(clusterName('example.com', naming), undefined);
  assert.equal(clusterName('api.github.com', naming), undefined);
  assert.equal(clusterName('service-b.unknown-ns', naming), undefined);
  assert.equal(clusterName('', naming), undefined);
});
