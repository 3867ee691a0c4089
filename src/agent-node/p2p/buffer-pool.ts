/**
 * Piece-sized buffers kept for reuse. Every piece fetched from peers is assembled in a buffer of
 * its piece length; allocating a fresh one each time (outside V8's heap) made V8 collect garbage
 * for "external memory pressure" several times a second under load. A buffer goes back once
 * nothing refers to it (its piece is stored, or given up); at most `maxIdleBytes` wait here.
 */
export class BufferPool {
  private readonly idle = new Map<number, Buffer[]>();
  private idleBytes = 0;

  constructor(private readonly maxIdleBytes: number) {}

  take(length: number): Buffer {
    const buffer = this.idle.get(length)?.pop();
    if (!buffer) return Buffer.allocUnsafe(length);
    this.idleBytes -= length;
    return buffer;
  }

  give(buffer: Buffer): void {
    if (this.idleBytes + buffer.length > this.maxIdleBytes) return;
    const list = this.idle.get(buffer.length) ?? [];
    if (list.includes(buffer)) return; // given twice: keep one reference
    list.push(buffer);
    this.idle.set(buffer.length, list);
    this.idleBytes += buffer.length;
  }

  get bytes(): number {
    return this.idleBytes;
  }
}

/** The agent's pool for piece assemblies: room for thirty-two 1 MiB pieces (eight of 4 MiB). */
export const piecePool = new BufferPool(32 * 1024 * 1024);

/** The agent's pool for blocks read to be sent to peers (1 MiB each, back once the socket wrote them). */
export const blockPool = new BufferPool(16 * 1024 * 1024);
