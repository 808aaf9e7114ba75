// `telepod version`: the CLI's own version and wire protocol version.
import { PROTOCOL_VERSION, TELEPOD_VERSION } from '../../protocol/version.ts';
import { printResult } from '../output.ts';
import type { Program } from '../program.ts';

export function addVersionCommand(program: Program): void {
  program
    .command('version')
    .description('print the version of telepod')
    .action(async () => {
      const info = { version: TELEPOD_VERSION, protocol: PROTOCOL_VERSION, node: process.version };
      await printResult(
        program.opts().output,
        info,
        () => `telepod ${info.version} (protocol ${info.protocol}, node ${info.node})`,
      );
    });
}
