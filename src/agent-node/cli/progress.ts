import { formatBytes } from "../../shared/bytes.js";
import cliProgress from "cli-progress";

export { formatBytes };

export interface Bar {
  add(bytes: number): void;
  done(): void;
}

/** Bytes per second over the last few seconds (a whole-life average would hide a stall). */
export class RateMeter {
  private readonly samples: { at: number; value: number }[] = [];

  constructor(private readonly windowMs = 5_000) {}

  record(value: number, at: number): void {
    this.samples.push({ at, value });
    while (this.samples.length > 2 && at - this.samples[1]!.at >= this.windowMs) this.samples.shift();
  }

  /** Undefined until half a second has been seen. */
  rate(): number | undefined {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last || last.at - first.at < 500) return undefined;
    return ((last.value - first.value) * 1000) / (last.at - first.at);
  }
}

/** 12s, 3m05s, 1h02m. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  if (s < 100 * 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return ">99h";
}

/** A name that fits `width`: the middle gives way, so the start and the extension stay readable. */
export function fitLabel(label: string, width: number): string {
  const chars = [...label];
  if (chars.length <= width) return label.padEnd(width);
  const tail = Math.floor((width - 1) / 2);
  return `${chars.slice(0, width - 1 - tail).join("")}…${chars.slice(chars.length - tail).join("")}`;
}

/** What goes right of the bar: " 100%  57.2 MiB/ 57.2 MiB  35.1 MiB/s ETA 1m05s" (its width is fixed). */
const TAIL_WIDTH = 46;

export interface BarState {
  label: string;
  value: number;
  size: number;
  /** Bytes per second, when known. */
  rate?: number;
  finished: boolean;
}

/**
 * One progress line, fitted to `columns`: the label and the bar share what the figures leave (the
 * label up to 64 characters, the bar up to 60), so the figures are never cut from 64 columns up.
 */
export function renderBar(state: BarState, columns: number): string {
  const available = columns - 1 - 1 - 1 - TAIL_WIDTH;
  const labelWidth = Math.min(64, Math.max(6, available - 8));
  const barWidth = Math.min(60, Math.max(4, available - labelWidth));
  const fraction = state.size > 0 ? Math.min(1, state.value / state.size) : state.finished ? 1 : 0;
  const filled = Math.round(fraction * barWidth);
  const bar = `${"█".repeat(filled)}${"░".repeat(barWidth - filled)}`;
  const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
  const amounts = `${formatBytes(state.value).padStart(8)}/${formatBytes(state.size).padStart(8)}`;
  const rate = state.rate === undefined ? "".padStart(10) : `${formatBytes(state.rate)}/s`.padStart(10);
  const eta = state.finished ? "done" : state.rate && state.rate > 0 ? `ETA ${formatDuration((state.size - state.value) / state.rate)}` : "";
  return ` ${fitLabel(state.label, labelWidth)} ${bar} ${percent} ${amounts} ${rate} ${eta.padEnd(9)}`.trimEnd();
}

/**
 * One progress bar per item (a layer, a file) on a terminal, each with its rate and time left;
 * nothing when the output is not a terminal (CI logs, pipes), where only the summary lines are printed.
 */
export class Progress {
  private readonly multi: cliProgress.MultiBar | undefined;

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly now: () => number = Date.now,
  ) {
    if (!stream.isTTY) return;
    this.multi = new cliProgress.MultiBar({
      stream,
      hideCursor: true,
      clearOnComplete: false,
      linewrap: false,
      // Rendered here, fitted to the terminal's width at every redraw (it may be resized).
      format: (_options, _params, payload: { state: BarState }) => renderBar(payload.state, stream.columns ?? 80),
    });
  }

  /** `transient`: the bar goes away once done (a hashing pass before the upload it prepares). */
  bar(label: string, size: number, options: { transient?: boolean } = {}): Bar {
    const state: BarState = { label, value: 0, size, finished: false };
    const meter = new RateMeter();
    const started = this.now();
    meter.record(0, started);
    const bar = this.multi?.create(Math.max(1, size), 0, { state });
    return {
      add: (bytes) => {
        state.value += bytes;
        meter.record(state.value, this.now());
        state.rate = meter.rate();
        bar?.update(Math.min(Math.max(1, size), state.value), { state });
      },
      done: () => {
        if (state.finished) return;
        state.finished = true;
        state.value = size;
        // The whole transfer's average, once it is over.
        const seconds = (this.now() - started) / 1000;
        state.rate = seconds > 0 ? size / seconds : undefined;
        bar?.update(Math.max(1, size), { state });
        if (options.transient && bar) this.multi?.remove(bar);
      },
    };
  }

  stop(): void {
    this.multi?.stop();
  }
}
