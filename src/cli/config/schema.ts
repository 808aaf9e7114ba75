// The config file's keys: one optional setting per flag it gives a default for, each with the
// description docs/config.md shows (scripts/config-docs.ts) and the environment variable that
// overrides it. zod/mini, as everywhere in telepod: the CLI bundle stays small.
import * as z from 'zod/mini';
import { isCidr } from '../../kube/subnets.ts';
import { LOG_LEVELS } from '../../protocol/daemon-api.ts';
import { kubeLabel } from '../../protocol/requests.ts';

/** A string that `valid` accepts; `expected` says what it must be. */
function text(expected: string, valid: (value: string) => boolean = (value) => value.length > 0) {
  return z.string({ error: `expected ${expected}` }).check(z.refine(valid, `expected ${expected}`));
}

const namespaceName = text(
  'a namespace name (RFC 1123 label)',
  (value) => kubeLabel.safeParse(value).success,
);
const cidrs = z.array(text('an IPv4 CIDR such as 10.0.0.0/8', isCidr), {
  error: 'expected a list of IPv4 CIDRs such as [10.0.0.0/8]',
});
const about = (description: string) => z.meta({ description });

/** The config file: a YAML mapping of these keys, all optional, no others. */
export const configSchema = z.strictObject(
  {
    namespace: z.optional(namespaceName.check(about('the namespace to work in'))),
    managerNamespace: z.optional(namespaceName.check(about('the namespace of the traffic manager'))),
    image: z.optional(text('an image name').check(about('the image with node for the in-cluster side'))),
    logLevel: z.optional(
      z
        .enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.join(', ')}` })
        .check(about('log verbosity on stderr, and of a daemon the command starts')),
    ),
    alsoProxy: z.optional(cidrs.check(about('subnets (IPv4 CIDRs) also routed to the cluster'))),
    neverProxy: z.optional(cidrs.check(about('subnets (IPv4 CIDRs) never routed to the cluster'))),
    mount: z.optional(
      z
        .union([z.boolean(), text('a folder')], { error: 'expected true, false or a folder path' })
        .check(
          about(
            "where intercept, replace and run mount the pod's volumes: true (a fresh folder), false (none) or a folder",
          ),
        ),
    ),
    kubeconfig: z.optional(text('a file path').check(about('the kubeconfig file'))),
    context: z.optional(text('a context name').check(about('the kubeconfig context to use'))),
  },
  { error: 'expected a mapping of settings such as "namespace: my-ns"' },
);

/** The settings of a config file, as checked. */
export type Config = z.infer<typeof configSchema>;
/** A config key; also the attribute name of the flag it is the default for. */
export type ConfigKey = keyof Config;

/** How a setting reads from the environment. */
export interface Setting {
  /** The environment variable that overrides the config file. */
  env?: string;
  /** The variable holds a comma-separated list. */
  list?: boolean;
  /** kubectl's variable, read where kubectl reads it (src/kube/config.ts): set, it hides the file's value. */
  kubectl?: boolean;
}

/** Every key's environment variable (context has none: --context or the file). */
export const SETTINGS: Record<ConfigKey, Setting> = {
  namespace: { env: 'TELEPOD_NAMESPACE' },
  managerNamespace: { env: 'TELEPOD_MANAGER_NAMESPACE' },
  image: { env: 'TELEPOD_IMAGE' },
  logLevel: { env: 'TELEPOD_LOG_LEVEL' },
  alsoProxy: { env: 'TELEPOD_ALSO_PROXY', list: true },
  neverProxy: { env: 'TELEPOD_NEVER_PROXY', list: true },
  mount: { env: 'TELEPOD_MOUNT' },
  kubeconfig: { env: 'KUBECONFIG', kubectl: true },
  context: {},
};

/** The config keys, in the order of the schema. */
export const CONFIG_KEYS = Object.keys(configSchema.shape) as ConfigKey[];

/** Whether an option's attribute name is a config key. */
export function isConfigKey(name: string): name is ConfigKey {
  return Object.hasOwn(SETTINGS, name);
}

/** A found value, short: scalars as JSON, anything else by its kind. */
function shown(input: unknown): string {
  if (input === null || input === undefined) return 'nothing';
  if (Array.isArray(input)) return 'a list';
  return typeof input === 'object' ? 'a mapping' : JSON.stringify(input);
}

/**
 * zod's issues as one line: where each is (`alsoProxy[1]`, or `name` for a value read on its
 * own), what was expected and what was found (parse with `reportInput: true`).
 */
export function describeIssues(issues: readonly z.core.$ZodIssue[], name?: string): string {
  return issues
    .map((issue) => {
      if (issue.code === 'unrecognized_keys') {
        const keys = issue.keys.map((key) => `"${key}"`).join(', ');
        return `unknown key${issue.keys.length > 1 ? 's' : ''} ${keys} (the keys are ${CONFIG_KEYS.join(', ')})`;
      }
      const where =
        name ??
        issue.path
          .map((part, i) => (typeof part === 'number' ? `[${part}]` : `${i ? '.' : ''}${String(part)}`))
          .join('');
      const found = 'input' in issue ? `, not ${shown(issue.input)}` : '';
      return `${where ? `${where}: ` : ''}${issue.message}${found}`;
    })
    .join('; ');
}
