// How commands print results: `-o text` for people, `-o json` or `-o yaml` for scripts (one
// document).
import { stringify } from 'yaml';

export const OUTPUT_FORMATS = ['text', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export function printResult(format: OutputFormat, value: unknown, text: () => string): void {
  if (format === 'json') process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  else if (format === 'yaml') process.stdout.write(stringify(value));
  else process.stdout.write(`${text()}\n`);
}

/** `text` with control characters (the terminal's escape sequences) replaced by `?`; tabs and newlines kept. */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '?'); // eslint-disable-line no-control-regex
}
