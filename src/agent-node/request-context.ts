import { AsyncLocalStorage } from "node:async_hooks";

/**
 * The request a piece of work is for: set by the registry server around each request, read by the
 * edge client, which passes the id on (`X-Request-Id`) so the edge's log lines match the agent's.
 * Work a request starts (a blob download shared with later requests) keeps the first one's id.
 */
const context = new AsyncLocalStorage<{ requestId: string }>();

export function withRequestId<T>(requestId: string, run: () => T): T {
  return context.run({ requestId }, run);
}

export function currentRequestId(): string | undefined {
  return context.getStore()?.requestId;
}
