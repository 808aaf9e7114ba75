// What may come next on a telepod command line, for `telepod __complete`: read off the commander
// tree (subcommands, flags, their choices and arguments), plus names a NameLister looks up — in
// the cluster, as the user — for the flags and arguments that name contexts, namespaces and
// workloads. A lookup that fails or is slow offers nothing.
import type { CommandUnknownOpts, Option } from '@commander-js/extra-typings';
import type { KubeSelection } from '../../kube/config.ts';
import type { WorkloadKind } from '../../kube/completion-names.ts';
import { printable } from '../output.ts';

/** One word to offer, with what it is (shells that show descriptions show it). */
export interface Candidate {
  value: string;
  description?: string;
}

/** The answer: words to offer, or "let the shell complete a file name". */
export type Completion = { files: true } | { files: false; candidates: Candidate[] };

/** Where dynamic names come from; any of them may throw, reject or hang. */
export interface NameLister {
  /** Local work before a lookup (loading the Kubernetes client library), not counted in its time. */
  prepare?(): Promise<unknown>;
  contexts(selection: KubeSelection): string[] | Promise<string[]>;
  namespaces(selection: KubeSelection): string[] | Promise<string[]>;
  workloads(selection: KubeSelection, kinds: readonly WorkloadKind[]): string[] | Promise<string[]>;
}

type NameSource = (lister: NameLister, selection: KubeSelection) => string[] | Promise<string[]>;

/** The flags whose values name something the cluster or the kubeconfig knows, by long name. */
const FLAG_NAMES: Record<string, NameSource> = {
  '--context': (lister, selection) => lister.contexts(selection),
  '--namespace': (lister, selection) => lister.namespaces(selection),
  '--manager-namespace': (lister, selection) => lister.namespaces(selection),
  '--swap-deployment': (lister, selection) => lister.workloads(selection, ['Deployment']),
};

/** The same for arguments, by argument name. */
const ARGUMENT_NAMES: Record<string, NameSource> = {
  workload: (lister, selection) => lister.workloads(selection, ['Deployment', 'StatefulSet']),
};

/** A flag whose value is a path, by its placeholder: `<file>`, `<path>`, `<dir|true|false>`... */
const PATH_PLACEHOLDER = /[<[](file|path|archive|dir)\b/;

/** What the words before the current one say. */
interface LineState {
  command: CommandUnknownOpts;
  /** Arguments given to `command` so far. */
  positionals: number;
  /** After `--`: only the command's own trailing arguments follow. */
  operands: boolean;
  /** The flag whose value the current word is. */
  pending?: Option;
  /** `--kubeconfig`, `--context` and `-n` as typed so far. */
  selection: KubeSelection;
}

const SELECTION_KEYS: readonly string[] = [
  'kubeconfig',
  'context',
  'namespace',
] satisfies (keyof KubeSelection)[];

function chain(command: CommandUnknownOpts): CommandUnknownOpts[] {
  return command.parent ? [command, ...chain(command.parent)] : [command];
}

/** The flags usable on `command`: its own, then its ancestors' (commander accepts them after it). */
function visibleFlags(command: CommandUnknownOpts): Option[] {
  return chain(command).flatMap((c) => c.createHelp().visibleOptions(c));
}

function findFlag(command: CommandUnknownOpts, flag: string): Option | undefined {
  return chain(command)
    .flatMap((c) => c.options)
    .find((option) => option.long === flag || option.short === flag);
}

const takesValue = (option: Option) => option.required || option.optional;

function findSubcommand(command: CommandUnknownOpts, word: string): CommandUnknownOpts | undefined {
  return command.commands.find((c) => c.name() === word || c.aliases().includes(word));
}

/** Walks the words before the current one as commander would parse them. */
function parseLine(root: CommandUnknownOpts, typed: readonly string[], defaults: KubeSelection): LineState {
  const state: LineState = { command: root, positionals: 0, operands: false, selection: { ...defaults } };
  const setValue = (option: Option, value: string | undefined) => {
    const key = option.attributeName();
    if (value !== undefined && SELECTION_KEYS.includes(key)) Object.assign(state.selection, { [key]: value });
  };
  for (let i = 0; i < typed.length; i++) {
    const word = typed[i] ?? '';
    if (state.operands) {
      state.positionals++;
    } else if (word === '--') {
      state.operands = true;
    } else if (word.startsWith('-') && word.length > 1) {
      const [flag, inline] = word.startsWith('--')
        ? splitAssignment(word)
        : [word.slice(0, 2), word.slice(2) || undefined];
      const option = findFlag(state.command, flag);
      if (!option || !takesValue(option) || inline !== undefined) {
        if (option) setValue(option, inline);
        continue;
      }
      if (i === typed.length - 1) state.pending = option;
      else setValue(option, typed[++i]);
    } else {
      const subcommand = state.positionals === 0 ? findSubcommand(state.command, word) : undefined;
      if (subcommand) state.command = subcommand;
      else state.positionals++;
    }
  }
  return state;
}

/** `--flag=value` as the flag and the value (undefined without `=`). */
function splitAssignment(word: string): [string, string | undefined] {
  const at = word.indexOf('=');
  return at < 0 ? [word, undefined] : [word.slice(0, at), word.slice(at + 1)];
}

/** The names a source gives within `timeoutMs`; nothing on any error or when it is slower. */
async function lookUp(source: NameSource, { lister, selection, timeoutMs }: Lookup): Promise<string[]> {
  try {
    await lister.prepare?.();
  } catch {
    return [];
  }
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string[]>((resolve) => {
    timer = setTimeout(() => resolve([]), timeoutMs);
  });
  try {
    const names = Promise.resolve()
      .then(() => source(lister, selection))
      .catch(() => []);
    return await Promise.race([names, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** What a name lookup needs: the lister, the line's kubeconfig selection, the time it may take. */
interface Lookup {
  lister: NameLister;
  selection: KubeSelection;
  timeoutMs: number;
}

/** Values for a flag's value: its choices, names looked up, or a file name (`files`). */
async function flagValues(option: Option, lookup: Lookup): Promise<string[] | 'files'> {
  if (option.argChoices) return option.argChoices;
  const source = option.long ? FLAG_NAMES[option.long] : undefined;
  if (source) return lookUp(source, lookup);
  return PATH_PLACEHOLDER.test(option.flags) ? 'files' : [];
}

/** The flags, each once (a short one matches only a current word of `-` or itself). */
function flagCandidates(command: CommandUnknownOpts): Candidate[] {
  const flags = visibleFlags(command).flatMap((option) =>
    [option.long, option.short].flatMap((flag) =>
      flag ? [{ value: flag, description: option.description }] : [],
    ),
  );
  return flags.filter((flag, i) => flags.findIndex((other) => other.value === flag.value) === i);
}

/** Subcommands (before any argument), and the values of the argument the current word is. */
async function argumentCandidates(state: LineState, lookup: Lookup): Promise<Candidate[]> {
  const { command, positionals } = state;
  const subcommands =
    positionals === 0 && !state.operands
      ? command
          .createHelp()
          .visibleCommands(command)
          .map((c) => ({ value: c.name(), description: c.description() }))
      : [];
  const argument = command.registeredArguments[positionals];
  if (!argument) return subcommands;
  const source = ARGUMENT_NAMES[argument.name()];
  const names = argument.argChoices ?? (source ? await lookUp(source, lookup) : []);
  return [...subcommands, ...names.map((value) => ({ value }))];
}

/** Words to offer for the current word, each starting with it. */
async function completeWord(state: LineState, current: string, lookup: Lookup): Promise<Completion> {
  const words = (candidates: Candidate[]): Completion => ({
    files: false,
    candidates: candidates.filter((c) => c.value.startsWith(current)),
  });
  if (state.pending) {
    const values = await flagValues(state.pending, lookup);
    return values === 'files' ? { files: true } : words(values.map((value) => ({ value })));
  }
  if (state.operands || !current.startsWith('-')) return words(await argumentCandidates(state, lookup));
  const [flag, inline] = splitAssignment(current);
  if (inline === undefined) return words(flagCandidates(state.command));
  const option = findFlag(state.command, flag);
  const values = option && takesValue(option) ? await flagValues(option, lookup) : [];
  return words(values === 'files' ? [] : values.map((value) => ({ value: `${flag}=${value}` })));
}

/** How names are looked up: the kubeconfig selection the line starts from, and for how long. */
export interface LookupOptions {
  /** Settings the line's `--kubeconfig`, `--context` and `-n` override (from the config file). */
  defaults?: KubeSelection;
  timeoutMs?: number;
}

/**
 * What to offer after `words` — the words typed after the program's name, the last one being
 * the word under the cursor (empty at a new word) — on the command line of `program`. A name
 * lookup that fails or takes longer than `timeoutMs` (2 s) offers nothing.
 */
export async function complete(
  program: CommandUnknownOpts,
  words: readonly string[],
  lister: NameLister,
  { defaults = {}, timeoutMs = 2000 }: LookupOptions = {},
): Promise<Completion> {
  const state = parseLine(program, words.slice(0, -1), defaults);
  const current = words.at(-1) ?? '';
  return completeWord(state, current, { lister, selection: state.selection, timeoutMs });
}

/** The one line that asks the shell to complete a file name. */
export const FILES_DIRECTIVE = ':files';

/**
 * The characters a candidate may have: those of flags, Kubernetes names and the usual context
 * names (`arn:aws:eks:…:cluster/x`, `gke_p_z_c`, `user@cluster`). bash inserts a candidate as it
 * is, so a name with shell syntax in it (a hostile kubeconfig's context `a;rm -rf ~`) or with
 * terminal control characters is never offered.
 */
const SAFE_CANDIDATE = /^[\w.:/@%+=,~-]+$/;

/** The protocol the shell scripts read: `value` or `value<TAB>description` per line, or `:files`. */
export function completionLines(completion: Completion): string {
  if (completion.files) return `${FILES_DIRECTIVE}\n`;
  return completion.candidates
    .filter((c) => SAFE_CANDIDATE.test(c.value))
    .map((c) => (c.description ? `${c.value}\t${printable(c.description).replace(/\s+/g, ' ')}` : c.value))
    .map((line) => `${line}\n`)
    .join('');
}
