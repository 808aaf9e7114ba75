// Proves the pod-template changes: a named targetPort is taken over by renaming the app's port,
// a numeric one by pointing the Service at the agent, probes follow renamed ports, and the
// replacement keeps the app container's ports, env and mounts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AGENT_CONFIG_ENV, type AgentConfig } from '../protocol/intercept.ts';
import { AGENT_CONTAINER } from '../protocol/intercept.ts';
import { pausesBeforeShutdown, replacementTemplate, sidecarPlan, volumeMountPaths } from './injection.ts';
import type { Container, Service, Workload } from './workloads.ts';

const agent = {
  image: 'node:22',
  configMap: 'telepod-agent-web',
  config: { manager: 'm:8082', injection: 'i' },
};

function workload(): Workload {
  return {
    kind: 'Deployment',
    metadata: { name: 'web' },
    spec: {
      selector: { matchLabels: { app: 'web' } },
      template: {
        metadata: { labels: { app: 'web' } },
        spec: {
          containers: [
            {
              name: 'app',
              ports: [{ name: 'http', containerPort: 8080 }, { containerPort: 9090 }],
              readinessProbe: { httpGet: { port: 'http', path: '/' } },
              env: [{ name: 'A', value: '1' }],
              volumeMounts: [{ name: 'data', mountPath: '/data' }],
            },
          ],
        },
      },
    },
  };
}

const service: Service = {
  metadata: { name: 'web' },
  spec: {
    selector: { app: 'web' },
    ports: [
      { name: 'web', port: 80, targetPort: 'http' },
      { name: 'metrics', port: 9090, targetPort: 9090 },
    ],
  },
};

function agentOf(containers: Container[]): Container & { ports: { name?: string; containerPort: number }[] } {
  return containers.find((c) => c.name === AGENT_CONTAINER) as never;
}

function configOf(container: Container): AgentConfig {
  const env = container.env as { name: string; value: string }[];
  return JSON.parse(env.find((e) => e.name === AGENT_CONFIG_ENV)!.value) as AgentConfig;
}

test('sidecar: named port renamed to the agent, numeric Service port moved to a name of the agent, probe follows', () => {
  const plan = sidecarPlan(workload(), [service], agent, 'app');
  const [app] = plan.template.spec.containers;
  assert.deepEqual(app!.ports, [{ name: 'tp-http', containerPort: 8080 }, { containerPort: 9090 }]);
  assert.deepEqual(app!.readinessProbe, { httpGet: { port: 'tp-http', path: '/' } });
  const sidecar = agentOf(plan.template.spec.containers);
  assert.deepEqual(sidecar.ports, [
    { name: 'http', containerPort: 19000 },
    { name: 'telepod-19001', containerPort: 19001 },
  ]);
  assert.deepEqual(plan.agentPorts, [
    { listen: 19000, forward: 8080 },
    { listen: 19001, forward: 9090 },
  ]);
  assert.deepEqual(plan.services, [
    {
      name: 'web',
      ports: [
        { name: 'web', port: 80, targetPort: 'http' },
        { name: 'metrics', port: 9090, targetPort: 'telepod-19001' },
      ],
      agentTargets: [19001],
    },
  ]);
  const config = configOf(sidecar);
  assert.equal(config.health, 19002);
  assert.deepEqual(
    (sidecar.env as { name: string }[]).map((e) => e.name),
    ['A', AGENT_CONFIG_ENV],
  );
  assert.deepEqual(
    (sidecar.volumeMounts as { name: string }[]).map((v) => v.name),
    ['data', 'telepod-agent-bundle', 'telepod-agent-token'],
  );
  assert.deepEqual(sidecar.readinessProbe, { tcpSocket: { port: 19002 }, periodSeconds: 1 });
  assert.ok(plan.template.spec.volumes?.some((v) => (v as { name: string }).name === 'telepod-agent-bundle'));
  // The agent's credential: a projected token for telepod's audience, bound to the pod.
  const token = plan.template.spec.volumes?.find(
    (v) => (v as { name: string }).name === 'telepod-agent-token',
  );
  assert.deepEqual(token, {
    name: 'telepod-agent-token',
    projected: {
      sources: [
        { serviceAccountToken: { audience: 'telepod-agent', expirationSeconds: 600, path: 'token' } },
      ],
    },
  });
  assert.deepEqual(volumeMountPaths(sidecar), ['/data']);
});

test('sidecar: a numeric target the agent also takes by name keeps that name; a declared telepod-N is skipped', () => {
  const w = workload();
  w.spec.template.spec.containers[0]!.ports!.push({ name: 'telepod-19000', containerPort: 7000 });
  const other: Service = {
    metadata: { name: 'direct' },
    spec: { selector: { app: 'web' }, ports: [{ name: 'd', port: 8080, targetPort: 8080 }] },
  };
  const plan = sidecarPlan(w, [other, service], agent, 'app');
  // 8080 is also the named target 'http': the agent's port for it is known by that name.
  assert.deepEqual(plan.services[0], {
    name: 'direct',
    ports: [{ name: 'd', port: 8080, targetPort: 'http' }],
    agentTargets: [19001],
  });
  assert.deepEqual(agentOf(plan.template.spec.containers).ports, [
    { name: 'http', containerPort: 19001 },
    { name: 'telepod-19002', containerPort: 19002 },
  ]);
});

test('the original workload object is not modified by planning', () => {
  const original = workload();
  const copy = structuredClone(original);
  sidecarPlan(original, [service], agent, 'app');
  replacementTemplate(original.spec.template, 'app', [7000], agent);
  assert.deepEqual(original, copy);
});

test('replacement: the agent takes the app container place, ports, env and mounts', () => {
  const { template, agentPorts } = replacementTemplate(workload().spec.template, 'app', [7000], agent);
  assert.deepEqual(
    template.spec.containers.map((c) => c.name),
    [AGENT_CONTAINER],
  );
  const sidecar = agentOf(template.spec.containers);
  assert.deepEqual(sidecar.ports, [
    { name: 'http', containerPort: 8080 },
    { containerPort: 9090 },
    { containerPort: 7000 },
  ]);
  assert.deepEqual(agentPorts, [{ listen: 8080 }, { listen: 9090 }, { listen: 7000 }]);
  assert.deepEqual(
    (sidecar.env as { name: string }[]).map((e) => e.name),
    ['A', AGENT_CONFIG_ENV],
  );
  assert.deepEqual(
    (sidecar.volumeMounts as { name: string }[]).map((v) => v.name),
    ['data', 'telepod-agent-bundle', 'telepod-agent-token'],
  );
  assert.equal(configOf(sidecar).health, 19000);
});

test("the volumes a running agent serves: the app's and admission's, not the agent's bundle", () => {
  const sidecar = agentOf(
    replacementTemplate(workload().spec.template, 'app', [7000], agent).template.spec.containers,
  );
  const running = {
    ...sidecar,
    volumeMounts: [
      ...(sidecar.volumeMounts as object[]),
      { name: 'kube-api-access-x', mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' },
    ],
  };
  assert.deepEqual(volumeMountPaths(running), ['/data', '/var/run/secrets/kubernetes.io/serviceaccount']);
});

test('app containers in pods with the agent pause before SIGTERM, unless they have a preStop', () => {
  const w = workload();
  const own = { exec: { command: ['drain'] } };
  w.spec.template.spec.containers.push({ name: 'side', lifecycle: { preStop: own, postStart: {} } });
  const plan = sidecarPlan(w, [], agent, 'app', true);
  const [app, side] = plan.template.spec.containers;
  assert.deepEqual(app!.lifecycle, { preStop: { sleep: { seconds: 3 } } });
  assert.deepEqual(side!.lifecycle, { preStop: own, postStart: {} }, 'its own preStop is kept');
  assert.equal(w.spec.template.spec.containers[0]!.lifecycle, undefined, 'the workload itself is untouched');
});

test('no pause where the API server lacks the sleep action or the grace period is short', () => {
  const w = workload();
  assert.equal(sidecarPlan(w, [], agent, 'app', false).template.spec.containers[0]!.lifecycle, undefined);
  assert.equal(pausesBeforeShutdown(w.spec.template, true), true, 'default grace period 30 s');
  for (const grace of [0, 2, 5, 6]) {
    const t = { ...w.spec.template, spec: { ...w.spec.template.spec, terminationGracePeriodSeconds: grace } };
    assert.equal(pausesBeforeShutdown(t, true), false, `grace ${grace} s`);
  }
});
