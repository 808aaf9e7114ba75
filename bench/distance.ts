// New-connection TTFB when the cluster is some distance away: the workstation reaches the API
// server through bench/latency-proxy.ts, which adds `oneWayMs` each way, and both telepod and
// `kubectl port-forward` use that kubeconfig. On the testbed the API server is a veth away, so
// the plain TTFB measures only processing; this one also counts each tool's round trips per
// connection (kubectl waits for two stream replies before it forwards a byte; telepod sends
// the request with its CONNECT at once).
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { telepodInWorkstation, type TestbedStatus } from '../testbed/lib/testbed.ts';
import { client, REPO, startPortForward } from './harness.ts';

const PROXY_PORT = 16443;
const PORT_FORWARD_PORT = 18091;

/** The proxy in the workstation netns, forwarding to the API server's address and port. */
async function startProxy(tb: TestbedStatus, target: URL, oneWayMs: number) {
  const child = spawn(
    'nsenter',
    [
      `--net=/run/netns/${tb.workstation.netns}`,
      '--',
      process.execPath,
      '--import',
      'tsx',
      'bench/latency-proxy.ts',
      String(PROXY_PORT),
      target.hostname,
      target.port || '443',
      String(oneWayMs),
    ],
    { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (c: string) => c.includes('listening') && resolve());
    child.once('exit', (code) => reject(new Error(`latency proxy exited with ${code}`)));
  });
  return child;
}

/**
 * TTFB samples of `count` sequential new connections to `url` through telepod and to `pod`'s
 * port 8000 through port-forward, with `oneWayMs` added each way to the API server. Connects
 * telepod for the measurement and quits it afterwards.
 */
export async function ttfbAtDistance(
  tb: TestbedStatus,
  namespace: string,
  pod: string,
  url: string,
  count: number,
  oneWayMs: number,
): Promise<{ telepod: number[]; portForward: number[] }> {
  const original = await readFile(tb.workstation.kubeconfig, 'utf8');
  const server = /server: (https:\/\/\S+)/.exec(original)?.[1];
  if (!server) throw new Error(`no server in ${tb.workstation.kubeconfig}`);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'telepod-bench-distance-'));
  const kubeconfig = path.join(dir, 'kubeconfig');
  // The API server's certificate names 127.0.0.1: only the port changes.
  await writeFile(kubeconfig, original.replace(server, `https://127.0.0.1:${PROXY_PORT}`), { mode: 0o600 });
  const far: TestbedStatus = { ...tb, workstation: { ...tb.workstation, kubeconfig } };
  const telepod = (...args: string[]) => telepodInWorkstation(far, '-n', namespace, ...args);
  const proxy = await startProxy(tb, new URL(server), oneWayMs);
  try {
    const connected = await telepod('connect');
    if (connected.code !== 0) throw new Error(connected.stderr);
    const portForward = await startPortForward(far, namespace, pod, PORT_FORWARD_PORT);
    try {
      const ws = tb.workstation.netns;
      await client(ws, 'ttfb', url, 20); // untimed: the first connections' setup and JIT
      await client(ws, 'ttfb', `http://127.0.0.1:${PORT_FORWARD_PORT}`, 20);
      const telepodSamples = await client<{ samples: number[] }>(ws, 'ttfb', url, count);
      const portForwardSamples = await client<{ samples: number[] }>(
        ws,
        'ttfb',
        `http://127.0.0.1:${PORT_FORWARD_PORT}`,
        count,
      );
      return { telepod: telepodSamples.samples, portForward: portForwardSamples.samples };
    } finally {
      portForward.kill();
      await telepod('quit');
    }
  } finally {
    proxy.kill();
    await rm(dir, { recursive: true, force: true });
  }
}
