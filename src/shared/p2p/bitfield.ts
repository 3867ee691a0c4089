/**
 * Which pieces of a blob a peer has: bit i (most significant bit first, as in BitTorrent) is
 * piece i. Spare bits in the last byte must be zero on the wire.
 */
export class Bitfield {
  readonly bytes: Uint8Array;

  constructor(
    readonly length: number,
    bytes?: Uint8Array,
  ) {
    if (!Number.isInteger(length) || length < 0) throw new RangeError(`invalid bitfield length ${length}`);
    const size = Math.ceil(length / 8);
    if (bytes && bytes.length !== size) throw new RangeError(`bitfield of ${length} bits needs ${size} bytes, got ${bytes.length}`);
    this.bytes = bytes ? new Uint8Array(bytes) : new Uint8Array(size);
    if (bytes && length % 8 !== 0 && (this.bytes[size - 1]! & (0xff >> length % 8)) !== 0) {
      throw new RangeError("bitfield has bits set past its length");
    }
  }

  static full(length: number): Bitfield {
    const field = new Bitfield(length);
    for (let i = 0; i < length; i++) field.set(i);
    return field;
  }

  has(index: number): boolean {
    this.check(index);
    return (this.bytes[index >> 3]! & (0x80 >> (index & 7))) !== 0;
  }

  set(index: number): void {
    this.check(index);
    this.bytes[index >> 3]! |= 0x80 >> (index & 7);
  }

  count(): number {
    let n = 0;
    for (let i = 0; i < this.length; i++) if (this.has(i)) n++;
    return n;
  }

  complete(): boolean {
    return this.count() === this.length;
  }

  private check(index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.length) throw new RangeError(`piece ${index} out of range 0..${this.length - 1}`);
  }
}
