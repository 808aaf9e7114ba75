// Runs the CLI for one argv and turns every outcome into an exit code: expected errors become
// one line on stderr, unexpected ones a stack trace (always, as they are bugs).
import { CommanderError } from '@commander-js/extra-typings';
import { ExitCode, TelepodError } from '../protocol/errors.ts';
import { createProgram } from './program.ts';

export async function runCli(argv: readonly string[]): Promise<number> {
  const program = createProgram();
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander has already printed its message (or the help text).
      return err.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    }
    const debug = program.opts().logLevel === 'debug';
    if (err instanceof TelepodError) {
      process.stderr.write(`telepod: ${debug ? (err.stack ?? err.message) : err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(
      `telepod: unexpected error (a bug, please report it):\n${String((err as Error).stack ?? err)}\n`,
    );
    return ExitCode.failure;
  }
}
