export interface OpenRead {
  /** Bytes in this read (the blob's size for the first, what is left for a resumed one). */
  size: number;
  body: AsyncIterable<Uint8Array> & { destroy?: () => void };
}

/** Opens the blob's bytes from `offset` to its end (a `Range` read). */
export type OpenFrom = (offset: number) => Promise<OpenRead>;

export interface ResumeOptions {
  /** Reads after a broken one, in a row without progress in between. */
  retries?: number;
  /** Wait before the first retry; doubled for each further one. */
  backoffMs?: number;
  /** Told of each break (offset reached, the error), before the retry. */
  onBreak?: (offset: number, error: Error) => void;
}

/** The edge answered something a retry would not mend (a wrong length): not retried. */
class EdgeAnswerError extends Error {}

/**
 * A blob's bytes from the edge as one stream that survives a broken connection: when a read fails
 * part way (the edge or a proxy closed it, a reset), the rest is asked for by `Range` from where
 * it broke, a few times with backoff, instead of failing the whole download and the client with
 * it. A read that makes progress resets the count. The bytes are still verified against the
 * blob's digest by the writer.
 */
export async function* resumingStream(opened: OpenRead, openFrom: OpenFrom, options: ResumeOptions = {}): AsyncGenerator<Uint8Array> {
  const retries = options.retries ?? 3;
  const backoffMs = options.backoffMs ?? 500;
  const size = opened.size;
  let offset = 0;
  let failures = 0;
  /** The read in use: the one we were given, then one opened from the offset after each break. */
  let read: OpenRead | undefined = opened;
  while (offset < size) {
    const startedAt = offset;
    try {
      if (!read) {
        read = await openFrom(offset);
        if (read.size !== size - offset) throw new EdgeAnswerError(`edge answered ${read.size} bytes for the last ${size - offset} of the blob`);
      }
      for await (const chunk of read.body) {
        if (offset + chunk.byteLength > size) throw new EdgeAnswerError(`edge sent more than the blob's ${size} bytes`);
        offset += chunk.byteLength;
        yield chunk;
      }
      if (offset < size) throw new Error(`edge stream ended at ${offset} of ${size} bytes`);
    } catch (error) {
      read?.body.destroy?.();
      read = undefined;
      if (offset > startedAt) failures = 0;
      if (++failures > retries || error instanceof EdgeAnswerError) throw error;
      options.onBreak?.(offset, error as Error);
      await new Promise((resolve) => setTimeout(resolve, backoffMs * 2 ** (failures - 1)));
    }
  }
}
