import { bufferSource } from "../bytes.js";
import { z } from "zod";
import { DIGEST_GRAMMAR } from "../oci/digest.js";

/**
 * Metainfo: how a blob is cut into pieces and the SHA-256 of each, so every piece from a peer can
 * be verified on its own (Kraken used CRC32, which a peer could forge). The piece length policy:
 * 4 MiB, doubled until the blob has at most MAX_PIECES pieces.
 */
export const BASE_PIECE_LENGTH_BYTES = 4 * 1024 * 1024;
export const MAX_PIECES = 2000;

export function pieceLengthFor(size: number): number {
  let length = BASE_PIECE_LENGTH_BYTES;
  while (Math.ceil(size / length) > MAX_PIECES) length *= 2;
  return length;
}

export function pieceCount(size: number, pieceLength: number): number {
  return Math.ceil(size / pieceLength);
}

/** Byte range [start, end) of piece `index`. */
export function pieceBounds(index: number, size: number, pieceLength: number): { start: number; end: number } {
  const start = index * pieceLength;
  if (index < 0 || start >= size) throw new RangeError(`piece ${index} is past the blob`);
  return { start, end: Math.min(size, start + pieceLength) };
}

const HEX64 = /^[a-f0-9]{64}$/;

export const MetainfoSchema = z
  .object({
    digest: z.string().regex(DIGEST_GRAMMAR),
    size: z.number().int().nonnegative(),
    pieceLength: z.number().int().positive(),
    /** Hex SHA-256 of each piece, in order. */
    pieces: z.array(z.string().regex(HEX64)),
  })
  .strict()
  .refine((m) => m.pieces.length === pieceCount(m.size, m.pieceLength), { message: "piece count does not match size and piece length" });
export type Metainfo = z.infer<typeof MetainfoSchema>;

/**
 * Pieces are hashed through 4 MiB blocks, so an upload can hash blocks as they stream (before the
 * blob's size, and so its piece length, is known). A piece of one block is verified by the block's
 * SHA-256; a bigger piece by the SHA-256 of its blocks' SHA-256s (32 raw bytes each), in order.
 */
export const BLOCK_BYTES = BASE_PIECE_LENGTH_BYTES;

export function hexToBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

function bytesToHex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  return bytesToHex(new Uint8Array(await crypto.subtle.digest("SHA-256", bufferSource(bytes))));
}

/** Hex SHA-256 of each 4 MiB block of `bytes` (the last one shorter). */
export async function blockHashes(bytes: Uint8Array): Promise<string[]> {
  const out: string[] = [];
  for (let at = 0; at < bytes.length; at += BLOCK_BYTES) out.push(await sha256Hex(bytes.subarray(at, Math.min(bytes.length, at + BLOCK_BYTES))));
  return out;
}

/** Piece hashes from the blob's block hashes, for its piece length. */
export async function piecesFromBlocks(blocks: string[], pieceLength: number): Promise<string[]> {
  if (pieceLength === BLOCK_BYTES) return [...blocks];
  if (pieceLength % BLOCK_BYTES !== 0) throw new RangeError("piece length must be a multiple of the block size");
  const perPiece = pieceLength / BLOCK_BYTES;
  const pieces: string[] = [];
  for (let i = 0; i < blocks.length; i += perPiece) {
    const group = blocks.slice(i, i + perPiece);
    const joined = new Uint8Array(group.length * 32);
    group.forEach((h, j) => joined.set(hexToBytes(h), j * 32));
    pieces.push(await sha256Hex(joined));
  }
  return pieces;
}

/** The hash a piece's bytes must have (what a peer-sent piece is checked against). */
export async function pieceHash(bytes: Uint8Array, pieceLength: number): Promise<string> {
  const blocks = await blockHashes(bytes);
  return (await piecesFromBlocks(blocks, pieceLength))[0] ?? (await sha256Hex(bytes));
}

export async function buildMetainfo(digest: string, size: number, blocks: string[]): Promise<Metainfo> {
  const pieceLength = pieceLengthFor(size);
  return { digest, size, pieceLength, pieces: await piecesFromBlocks(blocks, pieceLength) };
}
