// What `telepod gather-logs` collects for a bug report: the daemon's log (and the one before it),
// `status`, the traffic manager's log and the logs of the agents of this session's intercepts,
// with secret values redacted — the intercepted pods' environment values (which hold the
// Secrets they reference) and bearer tokens — written as a .tar.gz by the system's tar.
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DaemonStatus } from '../protocol/daemon-api.ts';
import { TelepodError } from '../protocol/errors.ts';
import { AGENT_CONTAINER } from '../protocol/intercept.ts';

/** What stands in for a redacted value. */
export const REDACTED = '[redacted]';

/**
 * `text` with every secret value replaced: each of `secrets` (values shorter than 4 characters
 * would redact ordinary words, and reveal little), and bearer tokens and JWTs wherever they are.
 */
export function redact(text: string, secrets: string[]): string {
  let out = text;
  // Each value as it is, and as a JSON string carries it (a log line escapes quotes and newlines).
  const forms = secrets.filter((s) => s.length >= 4).flatMap((s) => [s, JSON.stringify(s).slice(1, -1)]);
  for (const secret of [...new Set(forms)].sort((a, b) => b.length - a.length)) {
    out = out.split(secret).join(REDACTED);
  }
  return out
    .replace(/(bearer\s+)[A-Za-z0-9._~+/=-]{8,}/gi, `$1${REDACTED}`)
    .replace(/eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g, REDACTED);
}

/** One file of the archive: its name and text, or why it could not be had. */
export interface Gathered {
  name: string;
  text: string;
}

async function podLogs(
  kc: KubeConfig,
  namespace: string,
  selector: { label?: string; container?: string; workloads?: string[] },
): Promise<Gathered[]> {
  const core = kc.makeApiClient(CoreV1Api);
  const pods = (
    await core.listNamespacedPod({ namespace, ...(selector.label ? { labelSelector: selector.label } : {}) })
  ).items;
  const out: Gathered[] = [];
  for (const pod of pods) {
    const name = pod.metadata?.name ?? '';
    // A workload's pods are named after it: only the pods of this session's workloads.
    if (selector.workloads && !selector.workloads.some((w) => name.startsWith(`${w}-`))) continue;
    const containers = (pod.spec?.containers ?? [])
      .map((c) => c.name)
      .filter((c) => !selector.container || c === selector.container);
    for (const container of containers) {
      const text = await core
        .readNamespacedPodLog({ name, namespace, container, tailLines: 5000 })
        .catch((err: Error) => `(cannot read this log: ${err.message.split('\n')[0]})\n`);
      out.push({ name: `${namespace}/${name}/${container}.log`, text });
    }
  }
  return out;
}

/** The manager's and the agents' logs; a part that cannot be read says why instead. */
export async function clusterLogs(
  kc: KubeConfig,
  managerNamespace: string,
  status: DaemonStatus | undefined,
): Promise<Gathered[]> {
  const parts: Gathered[] = [];
  const attempt = async (what: string, work: () => Promise<Gathered[]>) => {
    try {
      const logs = await work();
      parts.push(...(logs.length ? logs : [{ name: `${what}.txt`, text: `no ${what} found\n` }]));
    } catch (err) {
      parts.push({
        name: `${what}.txt`,
        text: `cannot read the ${what}: ${(err as Error).message.split('\n')[0]}\n`,
      });
    }
  };
  await attempt('manager', () =>
    podLogs(kc, managerNamespace, { label: 'app.kubernetes.io/name=telepod-manager' }),
  );
  const intercepts = status?.intercepts ?? [];
  for (const namespace of new Set(intercepts.map((i) => i.namespace))) {
    const workloads = intercepts.filter((i) => i.namespace === namespace).map((i) => i.workload);
    await attempt(`agents in ${namespace}`, () =>
      podLogs(kc, namespace, { container: AGENT_CONTAINER, workloads }),
    );
  }
  return parts;
}

/** The daemon's log files, as they are on disk (readable by root; the CLI may be root or not). */
export function daemonLogs(file: string): Gathered[] {
  return [file, `${file}.1`]
    .filter((f) => existsSync(f))
    .map((f) => {
      try {
        return { name: f.endsWith('.1') ? 'daemon.log.1' : 'daemon.log', text: readFileSync(f, 'utf8') };
      } catch (err) {
        return { name: 'daemon.log.txt', text: `cannot read ${f}: ${(err as Error).message}\n` };
      }
    });
}

/**
 * Writes `parts` (redacted of `secrets`) into the .tar.gz `archive`, under a `telepod-logs/`
 * folder. The archive is created new (never through an existing file or link), mode 0600.
 */
export function writeArchive(archive: string, parts: Gathered[], secrets: string[]): void {
  const dir = mkdtempSync(join(tmpdir(), 'telepod-logs-'));
  try {
    const root = join(dir, 'telepod-logs');
    mkdirSync(root);
    for (const part of parts) {
      const safe = part.name.replace(/[^A-Za-z0-9._-]+/g, '_');
      writeFileSync(join(root, safe), redact(part.text, secrets), { mode: 0o600 });
    }
    let out: number;
    try {
      out = openSync(archive, 'wx', 0o600);
    } catch (err) {
      throw new TelepodError(`cannot create ${archive}: ${(err as Error).message}`);
    }
    try {
      const tar = spawnSync('tar', ['-cz', '-C', dir, 'telepod-logs'], {
        stdio: ['ignore', out, 'pipe'],
        encoding: 'utf8',
      });
      if (tar.status !== 0)
        throw new TelepodError(`cannot write ${archive}: ${tar.stderr || tar.error?.message}`);
    } finally {
      closeSync(out);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
