// Each setting's value below the command line: its environment variable, else the config file.
// Values come out as the flags' own values (lists of strings, --mount's "true"/"false"/path).
import * as z from 'zod/mini';
import { usageError } from '../../protocol/errors.ts';
import { loadConfig } from './load.ts';
import {
  CONFIG_KEYS,
  SETTINGS,
  configSchema,
  describeIssues,
  type Config,
  type ConfigKey,
} from './schema.ts';

/** A setting's value as its flag would give it, and where it came from (commander's source names). */
export interface Resolved {
  value: string | string[];
  source: 'env' | 'config';
}

/** The settings the environment or the config file give; a key neither gives is absent. */
export type Settings = Partial<Record<ConfigKey, Resolved>>;

/** A checked value as its flag's value: --mount's true and false are words there. */
function asFlag(value: NonNullable<Config[ConfigKey]>): string | string[] {
  return typeof value === 'boolean' ? String(value) : value;
}

/** The value of a setting's variable, checked as the file's value is; a bad one is a usage error. */
function fromEnv(key: ConfigKey, name: string, raw: string): string | string[] {
  const value = SETTINGS[key].list
    ? raw
        .split(',')
        .map((item) => item.trim())
        .filter(Boolean)
    : raw;
  const result = z.safeParse(configSchema.shape[key], value, { reportInput: true });
  if (!result.success) throw usageError(describeIssues(result.error.issues, `$${name}`));
  return value;
}

/** Reads the config file and the settings' variables (an empty variable counts as unset). */
export async function resolveSettings(env: NodeJS.ProcessEnv = process.env): Promise<Settings> {
  const config = (await loadConfig(env))?.config ?? {};
  const settings: Settings = {};
  for (const key of CONFIG_KEYS) {
    const { env: name, kubectl } = SETTINGS[key];
    const raw = name ? env[name] : undefined;
    if (name && raw) {
      if (!kubectl) settings[key] = { value: fromEnv(key, name, raw), source: 'env' };
      continue;
    }
    const value = config[key];
    if (value !== undefined) settings[key] = { value: asFlag(value), source: 'config' };
  }
  return settings;
}
