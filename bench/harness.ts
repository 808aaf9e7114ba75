// What the benchmark (bench/run.ts) and the chaos run (bench/chaos.ts) share: the client
// spawner, statistics, the pattern server's Deployment,
// and writing results.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { applyManifest, kubectl, waitForRollout, type TestbedStatus } from '../testbed/lib/testbed.ts';
import { serverScript } from './pattern.ts';

/** The repository's root folder. */
export const REPO = fileURLToPath(new URL('..', import.meta.url));

/** The node netns: inside the cluster, next to kube-proxy. */
export const NODE_NETNS = 'tpbed-node';

/** The smallest sample such that `p` percent of `values` are at most it. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** `value` with at most `digits` decimals. */
export const round = (value: number, digits = 2) => Number(value.toFixed(digits));

/** The middle value (the mean of the two middle ones for an even count). */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Runs one measurement of bench/client.ts in a network namespace (a name under /run/netns, or
 * the whole `nsenter` argument list to get there); its JSON answer.
 */
export function client<T>(netns: string | string[], ...args: (string | number)[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const enter = typeof netns === 'string' ? [`--net=/run/netns/${netns}`] : netns;
    const child = spawn(
      'nsenter',
      [...enter, '--', process.execPath, '--import', 'tsx', 'bench/client.ts', ...args.map(String)],
      { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('close', (code) =>
      code === 0
        ? resolve(JSON.parse(stdout) as T)
        : reject(new Error(`client ${args.join(' ')}: ${stderr.trim()}`)),
    );
  });
}

/**
 * A Deployment running the pattern server (bench/pattern.ts), and its Service on `ports`. The
 * server exits at SIGTERM; `preStopSeconds` gives it the pause before it that Kubernetes
 * recommends, so that its pods are out of every Service before it stops.
 */
export function patternServerManifest(
  tb: TestbedStatus,
  namespace: string,
  name: string,
  ports: number[],
  preStopSeconds?: number,
): string {
  return `apiVersion: apps/v1
kind: Deployment
metadata: { name: ${name}, namespace: ${namespace} }
spec:
  selector: { matchLabels: { app: ${name} } }
  template:
    metadata: { labels: { app: ${name} } }
    spec:
      containers:
        - name: server
          image: ${tb.images.node}
          imagePullPolicy: IfNotPresent
          command: [node, -e, ${JSON.stringify(serverScript)}]
          readinessProbe: { tcpSocket: { port: 8000 }, periodSeconds: 1 }${
            preStopSeconds
              ? `\n          lifecycle: { preStop: { sleep: { seconds: ${preStopSeconds} } } }`
              : ''
          }
---
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${namespace} }
spec:
  selector: { app: ${name} }
  ports: [${ports.map((p) => `{ name: p${p}, port: ${p}, targetPort: ${p} }`).join(', ')}]
`;
}

/** Applies the manifests (Deployment name → manifest) and waits for each rollout, in order. */
export async function deployServers(
  tb: TestbedStatus,
  namespace: string,
  servers: Record<string, string>,
): Promise<void> {
  await applyManifest(tb, Object.values(servers).join('---\n'));
  for (const name of Object.keys(servers)) await waitForRollout(tb, namespace, name);
}

/** `kubectl -n <namespace> get <what> -o jsonpath=<path>`, trimmed. */
export async function kubectlGet(
  tb: TestbedStatus,
  namespace: string,
  what: string[],
  path: string,
): Promise<string> {
  return (await kubectl(tb, ['-n', namespace, 'get', ...what, '-o', `jsonpath=${path}`])).trim();
}

/** Writes `results` as bench/results/<file>, indented. */
export async function writeResults(file: string, results: unknown): Promise<void> {
  await mkdir(new URL('results/', import.meta.url), { recursive: true });
  await writeFile(new URL(`results/${file}`, import.meta.url), `${JSON.stringify(results, null, 2)}\n`);
}

/** Rows (the first is the header) as a Markdown table with aligned columns. */
export function markdownTable(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const lines = rows.map((row) => `| ${row.map((cell, i) => cell.padEnd(widths[i]!)).join(' | ')} |`);
  lines.splice(1, 0, `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`);
  return lines.join('\n');
}

/** `kubectl port-forward` in the workstation netns, ready when it says it is forwarding. */
export async function startPortForward(
  tb: TestbedStatus,
  namespace: string,
  pod: string,
  localPort: number,
): Promise<ChildProcess> {
  const child = spawn(
    'nsenter',
    [
      `--net=/run/netns/${tb.workstation.netns}`,
      '--',
      tb.kubectl,
      '--kubeconfig',
      tb.workstation.kubeconfig,
      '-n',
      namespace,
      'port-forward',
      `pod/${pod}`,
      `${localPort}:8000`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (c: string) => c.includes('Forwarding from') && resolve());
    child.once('exit', (code) => reject(new Error(`kubectl port-forward exited with ${code}`)));
  });
  return child;
}
