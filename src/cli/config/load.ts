// Finds and reads the config file: $TELEPOD_CONFIG (which must exist), else
// $XDG_CONFIG_HOME/telepod/config.yaml, else ~/.config/telepod/config.yaml (these two may be
// missing: no settings). Every problem is a usage error naming the file.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import * as z from 'zod/mini';
import { usageError } from '../../protocol/errors.ts';
import { configSchema, describeIssues, type Config } from './schema.ts';

/** Where the config file is, and whether the user named it ($TELEPOD_CONFIG). */
export function configPath(env: NodeJS.ProcessEnv = process.env): { file: string; explicit: boolean } {
  if (env.TELEPOD_CONFIG) return { file: path.resolve(env.TELEPOD_CONFIG), explicit: true };
  const xdg = env.XDG_CONFIG_HOME; // the XDG spec ignores a relative value
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(homedir(), '.config');
  return { file: path.join(base, 'telepod', 'config.yaml'), explicit: false };
}

/** A path in the file: `~/` is the home folder, a relative path is relative to the file's folder. */
function fromFile(value: string, file: string): string {
  if (value === '~' || value.startsWith('~/')) return path.join(homedir(), value.slice(1));
  return path.resolve(path.dirname(file), value);
}

/** The file's text, or undefined when the default file is missing. */
function read(file: string, explicit: boolean): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const { code, message } = err as NodeJS.ErrnoException;
    if (code === 'ENOENT' && !explicit) return undefined;
    if (code === 'ENOENT') throw usageError(`config file ${file} (from $TELEPOD_CONFIG) does not exist`);
    throw usageError(`config file ${file}: cannot read it: ${message}`);
  }
}

/** The config file's settings, checked, its paths made absolute; undefined when there is none. */
export async function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ file: string; config: Config } | undefined> {
  const { file, explicit } = configPath(env);
  const text = read(file, explicit);
  if (text === undefined) return undefined;
  let document: unknown;
  // Loaded only for a file: a third of the CLI's code, which most machines never need.
  const { parse } = await import('../yaml.ts');
  try {
    document = parse(text);
  } catch (err) {
    // yaml's message is the problem and its place, then a drawing of the line.
    const problem = (err as Error).message.split('\n')[0]?.replace(/:$/, '');
    throw usageError(`config file ${file}: not valid YAML: ${problem}`);
  }
  const result = z.safeParse(configSchema, document ?? {}, { reportInput: true }); // empty: no settings
  if (!result.success) throw usageError(`config file ${file}: ${describeIssues(result.error.issues)}`);
  const config = result.data;
  if (config.kubeconfig !== undefined) config.kubeconfig = fromFile(config.kubeconfig, file);
  // "true" and "false" are --mount's keywords, quoted or not.
  if (typeof config.mount === 'string' && config.mount !== 'true' && config.mount !== 'false')
    config.mount = fromFile(config.mount, file);
  return { file, config };
}
