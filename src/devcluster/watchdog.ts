/**
 * Notices a server that stops answering while its process stays up (the edge froze once that way:
 * it logged a POST, then answered nothing, and every agent's announce timed out). It asks `url`
 * every `intervalMs`, each ask bounded by `timeoutMs`; after `failures` asks in a row without an
 * answer it calls `onStuck` once, and `onAnswering` when answers come back. Any HTTP status counts
 * as an answer (an edge with push tokens answers 401). Asks before the first answer do not count: a
 * server that is still starting is not stuck.
 */
export interface WatchdogOptions {
  url: string;
  intervalMs: number;
  timeoutMs: number;
  failures: number;
  onStuck(reason: string): void;
  onAnswering(): void;
}

/** The watchdog's requests carry ids with this prefix, so their log lines can go to debug. */
export const WATCHDOG_REQUEST_ID_PREFIX = "watchdog-";

export function startWatchdog(options: WatchdogOptions): { stop(): void } {
  let missed = 0;
  let answered = false;
  let stuck = false;
  let lastReason = "";
  let running = false;
  const check = async () => {
    if (running) return;
    running = true;
    try {
      const res = await fetch(options.url, { signal: AbortSignal.timeout(options.timeoutMs), headers: { "X-Request-Id": `${WATCHDOG_REQUEST_ID_PREFIX}${Date.now()}` } });
      await res.body?.cancel();
      missed = 0;
      answered = true;
      if (stuck) {
        stuck = false;
        options.onAnswering();
      }
    } catch (error) {
      if (!answered) return;
      missed += 1;
      const cause = (error as { cause?: { code?: string } }).cause?.code;
      lastReason = (error as Error).name === "TimeoutError" ? `no answer within ${options.timeoutMs / 1000} s` : (cause ?? (error as Error).message);
      if (missed >= options.failures && !stuck) {
        stuck = true;
        options.onStuck(`${missed} checks of ${options.url} failed (last: ${lastReason})`);
      }
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void check(), options.intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
