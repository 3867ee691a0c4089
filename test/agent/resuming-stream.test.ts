import { describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { resumingStream, type OpenRead } from "../../src/agent-node/edge/resuming-stream.js";

/** A read of `blob` from `offset` that breaks after `breakAfter` bytes (never when undefined). */
function read(blob: Buffer, offset: number, breakAfter?: number, size = blob.length - offset): OpenRead {
  async function* body(): AsyncGenerator<Uint8Array> {
    let sent = 0;
    for (let at = offset; at < blob.length; at += 1000) {
      const chunk = blob.subarray(at, Math.min(blob.length, at + 1000));
      if (breakAfter !== undefined && sent + chunk.length > breakAfter) {
        if (breakAfter > sent) yield chunk.subarray(0, breakAfter - sent);
        throw Object.assign(new Error("other side closed"), { code: "UND_ERR_SOCKET" });
      }
      sent += chunk.length;
      yield chunk;
    }
  }
  return { size, body: body() };
}

async function collect(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(Buffer.from(chunk));
  return Buffer.concat(parts);
}

describe("resumingStream", () => {
  it("reads the rest by Range from where a read broke, and yields the blob exactly", async () => {
    const blob = randomBytes(10_000);
    const offsets: number[] = [];
    const breaks: number[] = [];
    const stream = resumingStream(
      read(blob, 0, 3_500),
      async (offset) => {
        offsets.push(offset);
        return read(blob, offset, offsets.length === 1 ? 2_250 : undefined);
      },
      { backoffMs: 1, onBreak: (offset) => breaks.push(offset) },
    );
    expect((await collect(stream)).equals(blob)).toBe(true);
    expect(offsets).toEqual([3_500, 5_750]);
    expect(breaks).toEqual([3_500, 5_750]);
  });

  it("gives up after its retries when no read makes progress, with the last error", async () => {
    const blob = randomBytes(5_000);
    let opens = 0;
    const stream = resumingStream(read(blob, 0, 2_000), async (offset) => {
      opens++;
      return read(blob, offset, 0);
    }, { retries: 3, backoffMs: 1 });
    await expect(collect(stream)).rejects.toThrow(/other side closed/);
    expect(opens).toBe(3);
  });

  it("goes on as long as each read makes progress", async () => {
    const blob = randomBytes(8_000);
    let opens = 0;
    const stream = resumingStream(read(blob, 0, 1_000), async (offset) => {
      opens++;
      return read(blob, offset, 1_000);
    }, { retries: 1, backoffMs: 1 });
    expect((await collect(stream)).equals(blob)).toBe(true);
    expect(opens).toBe(7);
  });

  it("does not retry an answer of the wrong length (an edge that ignored the Range)", async () => {
    const blob = randomBytes(4_000);
    let opens = 0;
    const stream = resumingStream(read(blob, 0, 1_000), async () => {
      opens++;
      return read(blob, 0, undefined, blob.length);
    }, { backoffMs: 1 });
    await expect(collect(stream)).rejects.toThrow(/answered 4000 bytes for the last 3000/);
    expect(opens).toBe(1);
  });

  it("refuses more bytes than the blob has", async () => {
    const blob = randomBytes(3_000);
    const stream = resumingStream({ size: 2_000, body: read(blob, 0).body }, async () => read(blob, 0), { backoffMs: 1 });
    await expect(collect(stream)).rejects.toThrow(/more than the blob's 2000 bytes/);
  });
});
