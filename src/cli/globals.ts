// Global flags in kubectl's shape, shared by every command and accepted before or after the
// command name (commander keeps program options active after the subcommand).
import { Option, type Command } from '@commander-js/extra-typings';
import { LOG_LEVELS } from '../protocol/daemon-api.ts';
import { OUTPUT_FORMATS } from './output.ts';

export function addGlobalOptions<C extends Command>(program: C) {
  return program
    .option('--kubeconfig <file>', 'path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)')
    .option('--context <name>', 'the kubeconfig context to use')
    .option('-n, --namespace <ns>', 'the namespace to work in')
    .addOption(new Option('-o, --output <format>', 'output format').choices(OUTPUT_FORMATS).default('text'))
    .addOption(
      new Option(
        '--log-level <level>',
        'log verbosity on stderr, and of a daemon this command starts (its log)',
      )
        .choices(LOG_LEVELS)
        .default('warn'),
    );
}
