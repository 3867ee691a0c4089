/**
 * The level of one request's log line, the same on the edge and the agent: server faults are
 * errors, client mistakes warnings — except a HEAD that finds nothing, which is how every push asks
 * whether a blob is there already (distribution-spec "checking if content exists"), not a problem.
 */
export function requestLogLevel(method: string, status: number): "info" | "warn" | "error" {
  if (status >= 500) return "error";
  if (method === "HEAD" && status === 404) return "info";
  return status >= 400 ? "warn" : "info";
}
