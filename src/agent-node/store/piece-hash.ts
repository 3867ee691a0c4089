import { createHash } from "node:crypto";
import type { PieceHashing } from "../../shared/p2p/metainfo.js";

/**
 * The hash a piece's bytes must have, as `pieceHash` in shared/p2p/metainfo.ts computes it (a
 * one-block piece: the SHA-256 of its bytes; a bigger one: the SHA-256 of its blocks' raw
 * SHA-256s), but with Node's hash on the calling thread. Web Crypto's `digest` copies the bytes
 * into a job for the thread pool and wipes the copy afterwards: per 1 MiB piece that was a
 * megabyte copied and a megabyte cleared besides the hashing (about 5% of an agent's CPU pulling at
 * full speed). Hashing 1 MiB here takes about 0.6 ms of the event loop.
 */
export function pieceHashSync(bytes: Uint8Array, { pieceLength, blockLength }: PieceHashing): string {
  const sha256 = (b: Uint8Array) => createHash("sha256").update(b);
  if (bytes.length === 0 || pieceLength === blockLength) return sha256(bytes.subarray(0, blockLength)).digest("hex");
  const outer = createHash("sha256");
  for (let at = 0; at < bytes.length; at += blockLength) outer.update(sha256(bytes.subarray(at, Math.min(bytes.length, at + blockLength))).digest());
  return outer.digest("hex");
}
