import { formatBytes } from "../../shared/bytes.js";
import cliProgress from "cli-progress";

export { formatBytes };

export interface Bar {
  add(bytes: number): void;
  done(): void;
}

/**
 * One progress bar per item (a layer, a file) on a terminal; nothing when the output is not a
 * terminal (CI logs, pipes), where only the summary lines are printed.
 */
export class Progress {
  private readonly multi: cliProgress.MultiBar | undefined;

  constructor(stream: NodeJS.WriteStream = process.stderr) {
    if (!stream.isTTY) return;
    this.multi = new cliProgress.MultiBar(
      {
        stream,
        format: " {label} |{bar}| {percentage}% {done}/{size}",
        barCompleteChar: "█",
        barIncompleteChar: "░",
        hideCursor: true,
        clearOnComplete: false,
        autopadding: true,
        formatValue: (value, _options, type) => (type === "value" || type === "total" ? formatBytes(value) : String(value)),
      },
      cliProgress.Presets.shades_classic,
    );
  }

  bar(label: string, size: number): Bar {
    const bar = this.multi?.create(Math.max(1, size), 0, { label: label.padEnd(19).slice(0, 19), done: formatBytes(0), size: formatBytes(size) });
    let value = 0;
    return {
      add: (bytes) => {
        value += bytes;
        bar?.update(value, { done: formatBytes(value) });
      },
      done: () => bar?.update(Math.max(1, size), { done: formatBytes(size) }),
    };
  }

  stop(): void {
    this.multi?.stop();
  }
}
