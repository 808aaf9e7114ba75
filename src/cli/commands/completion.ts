// `telepod completion <bash|zsh|fish>` prints a shell's completion script; the hidden
// `telepod __complete -- <words...>` answers it (src/cli/completion/). Completing starts no
// daemon, needs no root and writes nothing; cluster lookups run as the user, for at most 2 s.
import { Argument } from '@commander-js/extra-typings';
import { complete, completionLines, type NameLister } from '../completion/candidates.ts';
import { completionScript, SHELLS } from '../completion/scripts.ts';
import type { Program } from '../program.ts';

/** Names from the kubeconfig and the cluster; the Kubernetes client library loads on first use. */
const names = () => import('../../kube/completion-names.ts');
const clusterNames: NameLister = {
  prepare: names, // loading the library is local work: the 2 s are for the cluster
  contexts: async (...args) => (await names()).contextNames(...args),
  namespaces: async (...args) => (await names()).namespaceNames(...args),
  workloads: async (...args) => (await names()).workloadNames(...args),
};

const usage = `
Load it into this shell, or add that line to the shell's startup file:
  bash   source <(telepod completion bash)
  zsh    source <(telepod completion zsh)      (after compinit; or save it as _telepod in a folder of $fpath)
  fish   telepod completion fish | source      (or save it as ~/.config/fish/completions/telepod.fish)`;

/** Adds `completion` and the hidden `__complete` the scripts call. */
export function addCompletionCommands(program: Program): void {
  program
    .command('completion')
    .description('print the shell completion script for bash, zsh or fish')
    .addArgument(new Argument('<shell>', 'the shell').choices(SHELLS))
    .addHelpText('after', usage)
    .action((shell) => {
      process.stdout.write(completionScript(shell));
    });

  program
    .command('__complete', { hidden: true })
    .description('print the candidates for the last word of a command line (for the completion scripts)')
    .argument('[words...]', 'the words after `telepod`, the last one the word being completed')
    .action(async (words) => {
      // The root's kubeconfig, context and namespace hold only settings (the words follow `--`).
      const { kubeconfig, context, namespace } = program.opts();
      const defaults = { kubeconfig, context, namespace };
      const lines = await complete(program, words, clusterNames, { defaults })
        .then(completionLines)
        .catch(() => '');
      // Exits at once: a lookup cut off by the timeout may still hold a socket or a plugin process.
      process.stdout.write(lines, () => process.exit(0));
    });
}
