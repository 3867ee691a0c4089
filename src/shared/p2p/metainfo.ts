import { bufferSource } from "../bytes.js";
import { z } from "zod";
import { DIGEST_GRAMMAR } from "../oci/digest.js";

/**
 * Metainfo: how a blob is cut into pieces and the SHA-256 of each, so every piece from a peer can
 * be verified on its own (Kraken used CRC32, which a peer could forge). The piece length policy:
 * 1 MiB, doubled until the blob has at most MAX_PIECES pieces. A piece crosses one peer link
 * before it can be passed on, so its size is the latency of each hop: with 4 MiB pieces, sixteen
 * agents pulling 64 MiB at once finished at 1.46× the bandwidth bound, with 1 MiB pieces at
 * 1.13–1.18× (512 KiB cost more CPU per byte and finished later: `npm run bench -- p2p`).
 */
export const BASE_PIECE_LENGTH_BYTES = 1024 * 1024;
export const MAX_PIECES = 2000;

/**
 * Pieces are hashed through blocks of BLOCK_BYTES, so an upload can hash blocks as they stream
 * (before the blob's size, and so its piece length, is known). A piece of one block is verified by
 * the block's SHA-256; a bigger piece by the SHA-256 of its blocks' SHA-256s (32 raw bytes each),
 * in order. The block length is part of the metainfo: older metainfo hashed 4 MiB blocks.
 */
export const BLOCK_BYTES = BASE_PIECE_LENGTH_BYTES;
export const LEGACY_BLOCK_BYTES = 4 * 1024 * 1024;

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
    /**
     * The unit pieces are hashed through (see BLOCK_BYTES). Metainfo from before it was written
     * down hashed 4 MiB blocks.
     */
    blockLength: z.number().int().positive().default(LEGACY_BLOCK_BYTES),
    /** Hex SHA-256 of each piece, in order. */
    pieces: z.array(z.string().regex(HEX64)),
  })
  .strict()
  .refine((m) => m.pieces.length === pieceCount(m.size, m.pieceLength), { message: "piece count does not match size and piece length" })
  .refine((m) => m.pieceLength % m.blockLength === 0, { message: "piece length is not a multiple of the block length" });
export type Metainfo = z.infer<typeof MetainfoSchema>;
/** What a piece's hash depends on besides its bytes. */
export type PieceHashing = Pick<Metainfo, "pieceLength" | "blockLength">;

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

/** Hex SHA-256 of each block of `bytes` (the last one shorter). */
export async function blockHashes(bytes: Uint8Array, blockLength = BLOCK_BYTES): Promise<string[]> {
  const out: string[] = [];
  for (let at = 0; at < bytes.length; at += blockLength) out.push(await sha256Hex(bytes.subarray(at, Math.min(bytes.length, at + blockLength))));
  return out;
}

/** Piece hashes from the blob's block hashes, for its piece length. */
export async function piecesFromBlocks(blocks: string[], { pieceLength, blockLength }: PieceHashing): Promise<string[]> {
  if (pieceLength === blockLength) return [...blocks];
  if (pieceLength % blockLength !== 0) throw new RangeError("piece length must be a multiple of the block length");
  const perPiece = pieceLength / blockLength;
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
export async function pieceHash(bytes: Uint8Array, hashing: PieceHashing): Promise<string> {
  const blocks = await blockHashes(bytes, hashing.blockLength);
  return (await piecesFromBlocks(blocks, hashing))[0] ?? (await sha256Hex(bytes));
}

/** Metainfo from the hashes of the blob's blocks of `blockLength` (BLOCK_BYTES for new uploads). */
export async function buildMetainfo(digest: string, size: number, blocks: string[], blockLength = BLOCK_BYTES): Promise<Metainfo> {
  const pieceLength = Math.max(pieceLengthFor(size), blockLength);
  return { digest, size, pieceLength, blockLength, pieces: await piecesFromBlocks(blocks, { pieceLength, blockLength }) };
}
