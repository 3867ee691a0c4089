import { Agent } from "undici";

/**
 * Timeouts for every request the CLI makes, so no command waits forever on an edge or agent that
 * stopped answering (one froze once mid-upload, and `shoal put` hung until killed).
 * `SHOAL_HTTP_TIMEOUT_SECONDS` sets how long a silent server is waited for (default 60 s for the
 * response to start, 120 s between bytes of a body: an agent may wait on peers that long).
 */
export function cliTimeouts(env: NodeJS.ProcessEnv = process.env): { connectMs: number; headersMs: number; bodyIdleMs: number } {
  const seconds = Number(env.SHOAL_HTTP_TIMEOUT_SECONDS);
  const given = Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : undefined;
  return { connectMs: 10_000, headersMs: given ?? 60_000, bodyIdleMs: given ?? 120_000 };
}

let dispatcher: Agent | undefined;

/** The CLI's connection pool with those timeouts (passed to fetch as its `dispatcher`). */
export function cliDispatcher(): Agent {
  const timeouts = cliTimeouts();
  dispatcher ??= new Agent({ connect: { timeout: timeouts.connectMs }, headersTimeout: timeouts.headersMs, bodyTimeout: timeouts.bodyIdleMs });
  return dispatcher;
}

const TIMEOUT_CODES: Record<string, (t: ReturnType<typeof cliTimeouts>) => string> = {
  UND_ERR_CONNECT_TIMEOUT: (t) => `no connection within ${t.connectMs / 1000} s`,
  UND_ERR_HEADERS_TIMEOUT: (t) => `no answer within ${t.headersMs / 1000} s`,
  UND_ERR_BODY_TIMEOUT: (t) => `it stopped sending for ${t.bodyIdleMs / 1000} s`,
};

/** "no answer within 60 s" when an error (or its cause) is one of undici's timeouts; else undefined. */
export function describeTimeout(error: unknown): string | undefined {
  for (let e = error as { code?: string; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    const describe = e.code ? TIMEOUT_CODES[e.code] : undefined;
    if (describe) return `${describe(cliTimeouts())} (SHOAL_HTTP_TIMEOUT_SECONDS sets the wait)`;
  }
  return undefined;
}
