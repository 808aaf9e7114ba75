// Entry point of the `telepod` executable.
import { runCli } from './run.ts';

process.exitCode = await runCli(process.argv.slice(2));
