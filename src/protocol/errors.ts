// The one error type of telepod: a message written for a person plus the exit code the CLI ends
// with. It lives in the protocol because the daemon and the cluster side report failures to the CLI.

export const ExitCode = {
  ok: 0,
  /** Something failed while doing what was asked. */
  failure: 1,
  /** The request itself was wrong (unknown flag, bad value); nothing was changed. */
  usage: 2,
} as const;

export class TelepodError extends Error {
  override readonly name = 'TelepodError';

  constructor(
    message: string,
    readonly exitCode: number = ExitCode.failure,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A bad request from the user: clear message, exit code 2. */
export function usageError(message: string): TelepodError {
  return new TelepodError(message, ExitCode.usage);
}
