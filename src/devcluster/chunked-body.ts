/**
 * Where a chunked message body (RFC 9112 §7.1) ends, found by scanning its bytes as they pass:
 * chunk-size lines (with extensions), chunk data and its CRLF, the last chunk, trailer lines and
 * the empty line after them. Nothing is decoded or copied; the front forwards the bytes as they came.
 */
export type ChunkedScan = { consumed: number; done: boolean } | { error: string };

/** The most a chunk-size line or a trailer line may take. */
const MAX_LINE_BYTES = 4 * 1024;
const CR = 0x0d;
const LF = 0x0a;

type State = { at: "size"; line: string } | { at: "data"; left: number } | { at: "data-end"; left: number } | { at: "trailer"; line: string };

export class ChunkedBody {
  private state: State = { at: "size", line: "" };

  /** Scans `data`; `consumed` bytes of it belong to the body (all of them until `done`). */
  scan(data: Uint8Array): ChunkedScan {
    let at = 0;
    while (at < data.length) {
      const state = this.state;
      switch (state.at) {
        case "size":
        case "trailer": {
          const lf = data.indexOf(LF, at);
          const end = lf < 0 ? data.length : lf + 1;
          state.line += Buffer.from(data.buffer, data.byteOffset + at, end - at).toString("latin1");
          at = end;
          if (state.line.length > MAX_LINE_BYTES) return { error: "chunk-size or trailer line too long" };
          if (lf < 0) break;
          if (!state.line.endsWith("\r\n")) return { error: "bare LF in a chunked body" };
          const line = state.line.slice(0, -2);
          if (state.at === "trailer") {
            if (line === "") return { consumed: at, done: true };
            this.state = { at: "trailer", line: "" };
            break;
          }
          const match = /^([0-9A-Fa-f]{1,12})(?:[ \t]*;.*)?$/.exec(line);
          if (!match) return { error: "malformed chunk size" };
          const size = Number.parseInt(match[1]!, 16);
          this.state = size === 0 ? { at: "trailer", line: "" } : { at: "data", left: size };
          break;
        }
        case "data": {
          const take = Math.min(state.left, data.length - at);
          at += take;
          this.state = state.left === take ? { at: "data-end", left: 2 } : { at: "data", left: state.left - take };
          break;
        }
        case "data-end": {
          const expected = state.left === 2 ? CR : LF;
          if (data[at] !== expected) return { error: "chunk data longer than its size" };
          at += 1;
          this.state = state.left === 2 ? { at: "data-end", left: 1 } : { at: "size", line: "" };
          break;
        }
      }
    }
    return { consumed: at, done: false };
  }
}
