import { isOciErrorBody } from "../../shared/oci/errors.js";

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

/** A registry's error response as one line: `what: CODE: message` (the OCI error body), else the status. */
export async function responseError(res: Response, what: string, hint = ""): Promise<CliError> {
  const text = await res.text().catch(() => "");
  let detail = `HTTP ${res.status}`;
  try {
    const body = JSON.parse(text) as unknown;
    if (isOciErrorBody(body)) detail = `${body.errors[0]!.code}: ${body.errors[0]!.message}`;
  } catch {
    // not JSON
  }
  return new CliError(`${what}: ${detail}${hint}`);
}
