// Progress of the steps that can take more than a second (daemon start, manager install, the
// tunnel, a rollout, the agent, a mount): a spinner on stderr with the step's elapsed time, and
// each finished step kept as one line with how long it took. Only on a terminal and only for
// text output: piped stderr and `-o json` see exactly what they saw before.
import type { Ora } from 'ora';
import { printable, type OutputFormat } from './output.ts';

/** Where the CLI reports steps; all methods are no-ops when progress is not shown. */
export interface Progress {
  /** Whether steps are shown at all (a sized terminal and text output). */
  readonly shown: boolean;
  /** A new step begins; the previous one (if any) is shown as done. */
  step(text: string): void;
  /** The last step is done (success) or failed; the spinner is gone either way. */
  end(ok: boolean): void;
}

const SILENT: Progress = { shown: false, step: () => undefined, end: () => undefined };

/** Seconds since `since`, as shown beside a step. */
export function elapsed(since: number, now = Date.now()): string {
  return `${((now - since) / 1000).toFixed(1)} s`;
}

/** The reporter for this command: a spinner when `stream` is a terminal and the output is text. */
export async function progressReporter(
  output: OutputFormat,
  stream: NodeJS.WriteStream = process.stderr,
): Promise<Progress> {
  // A terminal of no known width (a pty nobody sized) would make ora redraw without end.
  if (output !== 'text' || !stream.isTTY || !(stream.columns > 0)) return SILENT;
  // Loaded for a terminal only: scripts and pipes start without the spinner's code.
  const { default: ora } = await import('ora');
  let spinner: Ora | undefined;
  let current: { text: string; since: number } | undefined;
  let ticker: NodeJS.Timeout | undefined;
  const finish = (symbol: string) => {
    clearInterval(ticker);
    if (current) spinner?.stopAndPersist({ symbol, text: `${current.text} (${elapsed(current.since)})` });
    current = undefined;
  };
  return {
    shown: true,
    step(step) {
      // Steps name cluster objects: no escape sequence of theirs reaches the terminal.
      const text = printable(step).replace(/\s+/g, ' ');
      finish('✔');
      current = { text, since: Date.now() };
      // discardStdin off: a command run after connecting owns the terminal's input.
      spinner = ora({ text, stream, isEnabled: true, discardStdin: false }).start();
      const shown = current;
      ticker = setInterval(() => {
        if (spinner) spinner.text = `${shown.text} (${elapsed(shown.since)})`;
      }, 100);
      ticker.unref();
    },
    end(ok) {
      finish(ok ? '✔' : '✖');
    },
  };
}
