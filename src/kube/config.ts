// Loads the kubeconfig the way kubectl does: --kubeconfig, else $KUBECONFIG (a list of files,
// merged: the first file to name a cluster, user or context wins, and the first current-context
// set wins; missing files are skipped), else ~/.kube/config; then --context and the namespace
// (flag, else the context's, else default). The CLI loads it as the user and hands the root
// daemon the merged text: the daemon never reads the user's kubeconfig by path, and runs exec
// credential plugins as the user (credential-plugins.ts).
import { KubeConfig } from '@kubernetes/client-node';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, resolve } from 'node:path';
import { usageError } from '../protocol/errors.ts';
import { PooledKubeConfig } from './pooled-kubeconfig.ts';

export interface KubeSelection {
  kubeconfig?: string | undefined;
  context?: string | undefined;
  namespace?: string | undefined;
}

export interface LoadedKubeConfig {
  kc: KubeConfig;
  context: string;
  namespace: string;
}

/** The files a selection reads, in kubectl's order of precedence. */
export function kubeconfigFiles(selection: KubeSelection, env = process.env): string[] {
  if (selection.kubeconfig) return [selection.kubeconfig];
  const listed = (env.KUBECONFIG ?? '').split(delimiter).filter(Boolean);
  if (listed.length) {
    const present = listed.filter((file) => existsSync(file));
    if (!present.length)
      throw usageError(`none of the kubeconfig files in $KUBECONFIG exist: ${listed.join(', ')}`);
    return present;
  }
  return [`${env.HOME ?? homedir()}/.kube/config`];
}

/** An exec plugin named by a relative path with a slash runs from its kubeconfig's folder (as in kubectl). */
function absoluteExecCommands(kc: KubeConfig, folder: string): void {
  for (const user of kc.users) {
    const exec = user.exec as { command?: string } | undefined;
    if (exec?.command?.includes('/') && !isAbsolute(exec.command))
      exec.command = resolve(folder, exec.command);
  }
}

/** The files merged as kubectl merges them: the first definition of each name wins. */
export function mergedKubeconfig(files: string[]): KubeConfig {
  const merged = new PooledKubeConfig();
  merged.loadFromOptions({ clusters: [], users: [], contexts: [], currentContext: '' });
  for (const file of files) {
    const kc = new KubeConfig();
    kc.loadFromFile(file);
    absoluteExecCommands(kc, dirname(file));
    if (!merged.currentContext && kc.currentContext) merged.setCurrentContext(kc.currentContext);
    for (const cluster of kc.clusters) if (!merged.getCluster(cluster.name)) merged.addCluster(cluster);
    for (const user of kc.users) if (!merged.getUser(user.name)) merged.addUser(user);
    for (const context of kc.contexts) if (!merged.getContextObject(context.name)) merged.addContext(context);
  }
  return merged;
}

/** The context and namespace a selection picks in `kc`; a missing context is a usage error. */
function select(kc: KubeConfig, selection: KubeSelection): LoadedKubeConfig {
  if (selection.context) {
    if (!kc.getContextObject(selection.context)) {
      throw usageError(`context "${selection.context}" is not in the kubeconfig`);
    }
    kc.setCurrentContext(selection.context);
  }
  const context = kc.getCurrentContext();
  if (!context || !kc.getCurrentCluster())
    throw usageError('the kubeconfig names no current context or cluster');
  const namespace = selection.namespace ?? kc.getContextObject(context)?.namespace ?? 'default';
  return { kc, context, namespace };
}

/**
 * Puts the files a kubeconfig names (CA, client certificate and key) into it as data, read by
 * this process (the user): the root daemon reads no file for them.
 */
export function inlineFiles(kc: KubeConfig): void {
  const data = (file: string) => readFileSync(file).toString('base64');
  for (const cluster of kc.clusters) {
    if (cluster.caFile) Object.assign(cluster, { caData: data(cluster.caFile), caFile: undefined });
  }
  for (const user of kc.users) {
    if (user.certFile) Object.assign(user, { certData: data(user.certFile), certFile: undefined });
    if (user.keyFile) Object.assign(user, { keyData: data(user.keyFile), keyFile: undefined });
  }
}

/** Loads the selection's kubeconfig files (as the user running this process). */
export function loadKubeConfig(selection: KubeSelection): LoadedKubeConfig {
  let kc: KubeConfig;
  const files = kubeconfigFiles(selection);
  try {
    kc = mergedKubeconfig(files);
  } catch (err) {
    throw usageError(`cannot read the kubeconfig ${files.join(delimiter)}: ${(err as Error).message}`);
  }
  return select(kc, selection);
}

/** A kubeconfig the CLI merged and sent as text (what the daemon works with). */
export function kubeConfigFromText(
  text: string,
  selection: Omit<KubeSelection, 'kubeconfig'>,
): LoadedKubeConfig {
  const kc = new PooledKubeConfig();
  try {
    kc.loadFromString(text);
  } catch (err) {
    throw usageError(`the kubeconfig sent to the daemon is not valid: ${(err as Error).message}`);
  }
  return select(kc, selection);
}
