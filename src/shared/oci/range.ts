/**
 * HTTP byte ranges (RFC 9110 §14) for blob reads, and the `Content-Range` of upload chunks
 * (distribution-spec: `<start>-<end>`, inclusive, without a unit).
 */
export interface ByteRange {
  /** First byte, inclusive. */
  start: number;
  /** Last byte, inclusive. */
  end: number;
}

export type RangeRequest =
  | { kind: "none" }
  | { kind: "satisfiable"; range: ByteRange }
  | { kind: "unsatisfiable" };

/**
 * Parses a `Range: bytes=...` header against a blob of `size` bytes. A header Shoal does not
 * understand (other units, several ranges) is ignored: the whole blob is sent, as RFC 9110 allows.
 */
export function parseRangeHeader(header: string | null | undefined, size: number): RangeRequest {
  if (!header) return { kind: "none" };
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match) return { kind: "none" };
  const [, first = "", last = ""] = match;
  if (first === "" && last === "") return { kind: "none" };
  if (first === "") {
    // Suffix range: the last N bytes.
    const length = Number(last);
    if (length === 0 || size === 0) return { kind: "unsatisfiable" };
    return { kind: "satisfiable", range: { start: Math.max(0, size - length), end: size - 1 } };
  }
  const start = Number(first);
  if (!Number.isSafeInteger(start) || start >= size) return { kind: "unsatisfiable" };
  let end = last === "" ? size - 1 : Number(last);
  if (!Number.isSafeInteger(end) || end < start) return { kind: "none" };
  if (end >= size) end = size - 1;
  return { kind: "satisfiable", range: { start, end } };
}

export function contentRange(range: ByteRange, size: number): string {
  return `bytes ${range.start}-${range.end}/${size}`;
}

/** Parses an upload chunk's `Content-Range: <start>-<end>` (a leading `bytes ` is tolerated). */
export function parseChunkRange(header: string): ByteRange | undefined {
  const match = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(header.trim());
  if (!match) return undefined;
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) return undefined;
  return { start, end };
}

/** The `Range` header of an upload's 202/204: bytes received so far, `0-<offset-1>`. */
export function uploadRangeHeader(offset: number): string {
  // distribution-spec shows `0-<end>`; with nothing received distribution sends `0-0`.
  return `0-${Math.max(0, offset - 1)}`;
}
