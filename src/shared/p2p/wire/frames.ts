/**
 * The peer wire protocol's messages (pure data). After a TCP connect each side sends one
 * `handshake` (the initiator first; with a cluster secret the initiator then sends `auth`); then
 * any of the others. Byte layouts are documented in encode.ts.
 */
export const PROTOCOL_ID = "shoal/1";
export const PROTOCOL_VERSION = 1;

/** Largest block a request may ask for, and so the largest piece frame. */
export const MAX_BLOCK_BYTES = 1024 * 1024;
/** Hard cap on any frame (length prefix included in nothing): a block plus its header. */
export const MAX_FRAME_BYTES = MAX_BLOCK_BYTES + 64;
/** Cap on a handshake, and so on a connection's first frame (digest, ids, bitfield of up to 1M pieces, auth). */
export const MAX_HANDSHAKE_BYTES = 256 * 1024;
export const PEER_ID_BYTES = 20;

export const FRAME_TYPE = {
  keepAlive: 0,
  handshake: 1,
  bitfield: 2,
  have: 3,
  request: 4,
  piece: 5,
  cancel: 6,
  reject: 7,
  error: 8,
  complete: 9,
  auth: 10,
} as const;

export interface Handshake {
  type: "handshake";
  version: number;
  protocol: string;
  /** The blob this connection is about (one swarm per connection). */
  digest: string;
  peerId: Uint8Array;
  /** Number of pieces and the sender's bitfield for them. */
  pieceCount: number;
  bitfield: Uint8Array;
  /**
   * Cluster authentication (see p2p/auth.ts), empty when the cluster has no secret. The initiator
   * sends its nonce; the responder its nonce followed by its proof.
   */
  auth: Uint8Array;
}

export interface BlockRef {
  index: number;
  begin: number;
  length: number;
}

export type Frame =
  | { type: "keepAlive" }
  | Handshake
  | { type: "bitfield"; bitfield: Uint8Array }
  | { type: "have"; index: number }
  | ({ type: "request" } & BlockRef)
  | { type: "piece"; index: number; begin: number; data: Uint8Array }
  | ({ type: "cancel" } & BlockRef)
  | ({ type: "reject" } & BlockRef)
  | { type: "error"; code: number; message: string }
  | { type: "complete" }
  /** The initiator's proof, its third message, when the cluster has a secret. */
  | { type: "auth"; proof: Uint8Array };

/** Error codes carried by `error` frames (the peer port's refusals, with a reason). */
export const WIRE_ERROR = {
  PROTOCOL: 1,
  UNKNOWN_BLOB: 2,
  UNAUTHORIZED: 3,
  BAD_PIECE: 4,
  OVERLOADED: 5,
  BANNED: 6,
} as const;

export class WireError extends Error {
  override name = "WireError";
}
