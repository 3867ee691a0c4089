import { BLOCK_BYTES, blockHashes } from "../../shared/p2p/metainfo.js";

/**
 * The SHA-256 of each BLOCK_BYTES block of a stream, as its bytes go by (metainfo without a
 * second read of the blob). Bytes are gathered into one block buffer and each full block is hashed
 * natively (Web Crypto); a chunk costs a copy, not a hash in JavaScript.
 */
export class BlockHasher {
  private block = new Uint8Array(BLOCK_BYTES);
  private filled = 0;
  private readonly hashes: string[] = [];

  async push(bytes: Uint8Array): Promise<void> {
    let at = 0;
    while (at < bytes.length) {
      const take = Math.min(BLOCK_BYTES - this.filled, bytes.length - at);
      this.block.set(bytes.subarray(at, at + take), this.filled);
      this.filled += take;
      at += take;
      if (this.filled === BLOCK_BYTES) {
        this.hashes.push(...(await blockHashes(this.block)));
        this.filled = 0;
      }
    }
  }

  /** The hashes of every block, the last (shorter) one included. */
  async finish(): Promise<string[]> {
    if (this.filled > 0) this.hashes.push(...(await blockHashes(this.block.subarray(0, this.filled))));
    this.filled = 0;
    return this.hashes;
  }

  /** Hashes a whole stream. */
  async consume(stream: ReadableStream<Uint8Array>): Promise<void> {
    const reader = stream.getReader();
    for (let next = await reader.read(); !next.done; next = await reader.read()) await this.push(next.value);
  }
}
