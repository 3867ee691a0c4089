import { open, type FileHandle } from "node:fs/promises";
import type { ServerResponse } from "node:http";

/** Read size when serving from the store: big enough for few syscalls, small enough to stay flat. */
const SEND_CHUNK_BYTES = 1024 * 1024;

/**
 * Sends bytes [start, end] of a stored file to a client with two reused buffers: one is read into
 * while the other is being written, and a buffer is refilled only after the socket took it. No
 * allocation per chunk (createReadStream allocates a new buffer per read, which at 8 concurrent
 * GiB-sized reads keeps the collector busy and the RSS high). Resolves with the bytes sent.
 */
export async function sendFileRange(file: string, start: number, end: number, res: ServerResponse): Promise<number> {
  return sendRange({ open: () => open(file, "r"), readableUpTo: async () => end + 1, name: file }, start, end, res);
}

/**
 * A file that may still be growing (a download in progress): where reading it may go, and how to
 * open it. `readableUpTo` waits until bytes past `position` are there and returns where they end.
 */
export interface GrowingFile {
  name: string;
  open(): Promise<FileHandle>;
  readableUpTo(position: number, end: number): Promise<number>;
}

/**
 * Sends bytes [start, end] of a file, following it as it grows, the same way: two reused buffers
 * (the download's own stream allocated a 1 MiB buffer per read and went through an async
 * generator and a stream pipeline for each). Resolves with the bytes sent.
 */
export async function sendRange(file: GrowingFile, start: number, end: number, res: ServerResponse): Promise<number> {
  let limit = await file.readableUpTo(start, end);
  const handle = await file.open();
  const buffers = [Buffer.allocUnsafe(SEND_CHUNK_BYTES), Buffer.allocUnsafe(SEND_CHUNK_BYTES)] as const;
  const writes: [Promise<void>, Promise<void>] = [Promise.resolve(), Promise.resolve()];
  let position = start;
  let which = 0;
  try {
    while (position <= end) {
      if (res.destroyed) throw new Error("client went away");
      const buffer = buffers[which]!;
      await writes[which]; // the socket has taken this buffer's previous bytes
      if (position >= limit) limit = await file.readableUpTo(position, end);
      const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, limit - position), position);
      if (bytesRead === 0) throw new Error(`${file.name} is shorter than ${limit} bytes`);
      position += bytesRead;
      writes[which] = write(res, bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead));
      which ^= 1;
    }
    await Promise.all(writes);
    await new Promise<void>((resolve) => res.end(resolve));
    return end + 1 - start;
  } finally {
    await handle.close();
  }
}

function write(res: ServerResponse, chunk: Buffer): Promise<void> {
  const written = new Promise<void>((resolve, reject) => {
    res.write(chunk, (error) => (error ? reject(error) : resolve()));
  });
  written.catch(() => undefined); // awaited later; a client gone meanwhile is not "unhandled"
  return written;
}
