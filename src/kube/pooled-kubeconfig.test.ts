// PooledKubeConfig hands every API call of one TLS identity the same keep-alive agent, and a
// new one when the identity changes (a client certificate an exec plugin renewed).
import assert from 'node:assert/strict';
import https from 'node:https';
import { test } from 'node:test';
import { RequestContext } from '@kubernetes/client-node';
import { PooledKubeConfig, sameTls } from './pooled-kubeconfig.ts';

function kubeconfig(cert: string): PooledKubeConfig {
  const kc = new PooledKubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: 'https://10.0.0.1:6443', caData: Buffer.from('ca').toString('base64') }],
    users: [
      {
        name: 'u',
        certData: Buffer.from(cert).toString('base64'),
        keyData: Buffer.from('key').toString('base64'),
      },
    ],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

async function agentOf(kc: PooledKubeConfig): Promise<https.Agent> {
  const context = new RequestContext('https://10.0.0.1:6443/api/v1/namespaces', 'GET' as never);
  await kc.applySecurityAuthentication(context);
  return context.getAgent() as https.Agent;
}

test('calls of one identity share one keep-alive agent; a renewed certificate gets a new one', async () => {
  const kc = kubeconfig('cert-1');
  const first = await agentOf(kc);
  assert.equal(first.options.keepAlive, true);
  assert.equal(await agentOf(kc), first);
  kc.users[0] = { ...kc.users[0]!, certData: Buffer.from('cert-2').toString('base64') };
  const renewed = await agentOf(kc);
  assert.notEqual(renewed, first);
  assert.equal(String(renewed.options.cert), 'cert-2');
  assert.equal(await agentOf(kc), renewed);
});

test('TLS options are compared by value, buffers and lists included', () => {
  assert.ok(sameTls({ ca: Buffer.from('a'), cert: 'c' }, { ca: Buffer.from('a'), cert: 'c' }));
  assert.ok(sameTls({ ca: [Buffer.from('a')] }, { ca: [Buffer.from('a')] }));
  assert.ok(!sameTls({ ca: Buffer.from('a') }, { ca: Buffer.from('b') }));
  assert.ok(!sameTls({ servername: 'x' }, {}));
});
