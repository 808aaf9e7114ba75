// The telepod command line: global flags plus one registration call per command.
import { Command } from '@commander-js/extra-typings';
import { TELEPOD_VERSION } from '../protocol/version.ts';
import { addCompletionCommands } from './commands/completion.ts';
import { addConnectCommands } from './commands/connect.ts';
import { addDoctorCommand } from './commands/doctor.ts';
import { addGatherLogsCommand } from './commands/gather-logs.ts';
import { addInstallCommands } from './commands/install.ts';
import { addInterceptCommands } from './commands/intercept.ts';
import { addVersionCommand } from './commands/version.ts';
import { applyConfig } from './config/apply.ts';
import { addGlobalOptions } from './globals.ts';

function createBaseProgram() {
  return addGlobalOptions(
    new Command('telepod')
      .description('develop one microservice on your machine against a remote Kubernetes cluster')
      .version(TELEPOD_VERSION, '--version', 'print the version of telepod')
      .helpCommand(false)
      .exitOverride()
      .configureOutput({
        outputError: (message, write) => write(`telepod: ${message.replace(/^error: /, '')}`),
      }),
  );
}

/** The root command; subcommands read the global flags with `program.opts()`. */
export type Program = ReturnType<typeof createBaseProgram>;

export function createProgram(): Program {
  const program = createBaseProgram();
  addConnectCommands(program);
  addInterceptCommands(program);
  addInstallCommands(program);
  addVersionCommand(program);
  addDoctorCommand(program);
  addGatherLogsCommand(program);
  addCompletionCommands(program);
  // Defaults from the environment and the config file (docs/config.md), before anything runs.
  program.hook('preAction', (_, command) => applyConfig(program, command));
  // A log level given (flag, $TELEPOD_LOG_LEVEL, config file) also sets the verbosity of a
  // daemon this command starts.
  program.hook('preAction', () => {
    if (program.getOptionValueSource('logLevel') !== 'default')
      process.env.TELEPOD_LOG_LEVEL = program.opts().logLevel;
  });
  return program;
}
