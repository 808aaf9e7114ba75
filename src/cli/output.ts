// How commands print results: `-o text` for people, `-o json` or `-o yaml` for scripts (one
// document).
export const OUTPUT_FORMATS = ['text', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** Prints a command's result; yaml is loaded for `-o yaml` only (a third of the CLI's code). */
export async function printResult(format: OutputFormat, value: unknown, text: () => string): Promise<void> {
  if (format === 'json') process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  else if (format === 'yaml') process.stdout.write((await import('./yaml.ts')).stringify(value));
  else process.stdout.write(`${text()}\n`);
}

/** `text` with control characters (the terminal's escape sequences) replaced by `?`; tabs and newlines kept. */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '?'); // eslint-disable-line no-control-regex
}
