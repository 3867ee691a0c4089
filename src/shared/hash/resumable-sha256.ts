import { sha256 } from "@noble/hashes/sha2.js";
import { toHex } from "../oci/digest.js";

/**
 * A SHA-256 whose state can be saved between requests, for uploads that span many requests
 * (native Web Crypto digests cannot be resumed). Pure JS (@noble/hashes, ~94 MB/s a core), so use
 * it only where the bytes cannot be hashed natively in one go.
 */
export interface Sha256State {
  /** The eight 32-bit chaining words. */
  h: number[];
  /** Bytes buffered towards the next 64-byte block, base64. */
  buffer: string;
  /** Bytes hashed so far. */
  length: number;
}

type NobleSha256 = ReturnType<typeof sha256.create>;
/** @noble/hashes keeps these fields protected; they are plain data, which is what makes this work. */
interface NobleInternals {
  get(): number[];
  set(...words: number[]): void;
  buffer: Uint8Array;
  pos: number;
  length: number;
  finished: boolean;
}

export class ResumableSha256 {
  private readonly hash: NobleSha256;

  private constructor(hash: NobleSha256) {
    this.hash = hash;
  }

  static create(): ResumableSha256 {
    return new ResumableSha256(sha256.create());
  }

  static restore(state: Sha256State): ResumableSha256 {
    const hash = sha256.create();
    const inner = hash as unknown as NobleInternals;
    if (state.h.length !== 8) throw new Error("invalid sha256 state");
    inner.set(...state.h);
    const pending = base64ToBytes(state.buffer);
    if (pending.length >= 64) throw new Error("invalid sha256 state");
    inner.buffer.fill(0);
    inner.buffer.set(pending);
    inner.pos = pending.length;
    inner.length = state.length;
    return new ResumableSha256(hash);
  }

  get bytesHashed(): number {
    return (this.hash as unknown as NobleInternals).length;
  }

  update(bytes: Uint8Array): this {
    this.hash.update(bytes);
    return this;
  }

  save(): Sha256State {
    const inner = this.hash as unknown as NobleInternals;
    if (inner.finished) throw new Error("sha256 already finished");
    return {
      h: [...inner.get()],
      buffer: bytesToBase64(inner.buffer.subarray(0, inner.pos)),
      length: inner.length,
    };
  }

  /** The digest so far; the object stays usable (the state is cloned). */
  hex(): string {
    return toHex(this.hash.clone().digest());
  }
}

function bytesToBase64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function base64ToBytes(text: string): Uint8Array {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
