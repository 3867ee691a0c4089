/** A failure the CLI reports as one readable line (`shoal: …`) and an exit code, never a stack. */
export class CliError extends Error {
  override name = "CliError";

  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}
