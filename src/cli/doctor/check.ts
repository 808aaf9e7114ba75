// What one `telepod doctor` check reports, and how the report reads.

/** One check: whether it passed, what was found, and what to do when it did not. */
export interface Check {
  name: string;
  ok: boolean;
  /** Only some features need it (volumes, rootless): a failure is a warning, not an error. */
  optional?: boolean;
  detail: string;
  fix?: string;
}

/** The report as text: one line per check (OK / WARN / FAIL), the fix under each failure. */
export function reportLines(checks: Check[]): string {
  return checks
    .map((c) => {
      const mark = c.ok ? 'OK  ' : c.optional ? 'WARN' : 'FAIL';
      return `${mark} ${c.name}: ${c.detail}${!c.ok && c.fix ? `\n     fix: ${c.fix}` : ''}`;
    })
    .join('\n');
}

/** Whether the report has a failure that is not optional. */
export function failed(checks: Check[]): boolean {
  return checks.some((c) => !c.ok && !c.optional);
}
