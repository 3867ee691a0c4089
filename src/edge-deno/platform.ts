import { createHash } from "node:crypto";

/**
 * The two Workers runtime extensions the edge's code uses, for runtimes without them (Deno):
 * `FixedLengthStream` (a pass-through that insists on its byte count) and `crypto.DigestStream`
 * (a writable that hashes). Installed only where missing.
 */
class FixedLengthStream extends TransformStream<Uint8Array, Uint8Array> {
  constructor(expected: number | bigint) {
    const length = Number(expected);
    let seen = 0;
    super({
      transform(chunk, controller) {
        seen += chunk.byteLength;
        if (seen > length) return controller.error(new TypeError(`stream is longer than its fixed length ${length}`));
        controller.enqueue(chunk);
      },
      flush(controller) {
        if (seen !== length) controller.error(new TypeError(`stream ended after ${seen} of its fixed length ${length} bytes`));
      },
    });
  }
}

const NODE_ALGORITHMS: Record<string, string> = { "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512", "SHA-1": "sha1" };

class DigestStream extends WritableStream<Uint8Array> {
  readonly digest: Promise<ArrayBuffer>;

  constructor(algorithm: string | { name: string }) {
    const name = typeof algorithm === "string" ? algorithm : algorithm.name;
    const nodeName = NODE_ALGORITHMS[name.toUpperCase()];
    if (!nodeName) throw new TypeError(`unsupported digest ${name}`);
    const hash = createHash(nodeName);
    let resolve!: (value: ArrayBuffer) => void;
    let reject!: (error: unknown) => void;
    const digest = new Promise<ArrayBuffer>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    super({
      write(chunk) {
        hash.update(chunk);
      },
      close() {
        const bytes = hash.digest();
        resolve(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
      },
      abort(reason) {
        reject(reason);
      },
    });
    this.digest = digest;
    digest.catch(() => undefined);
  }
}

export function installWorkersGlobals(): void {
  const g = globalThis as Record<string, unknown>;
  g.FixedLengthStream ??= FixedLengthStream;
  const webCrypto = crypto as unknown as Record<string, unknown>;
  webCrypto.DigestStream ??= DigestStream;
}
