import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { constantTimeEqual } from "../auth/credentials.js";

/**
 * Peer authentication with a cluster secret: a challenge-response over fresh nonces in which each
 * side proves it knows the secret without sending it.
 *
 *   initiator → handshake, auth = nonceI
 *   responder → handshake, auth = nonceR | HMAC(K, "responder" | transcript)
 *   initiator → auth frame, proof = HMAC(K, "initiator" | transcript)
 *
 * The transcript binds both nonces, both peer ids, the blob and the connection: the responder's
 * endpoint, as the initiator dialled it and as the responder accepted it. So a proof cannot be
 * replayed on another connection, turned around (the role is in the MAC), moved to another swarm,
 * or relayed: a host in the middle that passes an honest initiator's handshake on to another peer
 * port (or back to the initiator's own) holds a proof for its own endpoint, which that port refuses.
 * Only the responder's endpoint is bound: the initiator's address is often rewritten on the way
 * (source NAT), the address dialled is not. Pure code: the agent's connection logic decides what to
 * do with a bad proof (refuse, UNAUTHORIZED).
 */
export const NONCE_BYTES = 32;
export const PROOF_BYTES = 32;

export interface Transcript {
  digest: string;
  initiatorNonce: Uint8Array;
  responderNonce: Uint8Array;
  initiatorId: Uint8Array;
  responderId: Uint8Array;
  /** The responder's `address:port` in `endpoint()` form (the initiator's remote, the responder's local end). */
  responderEndpoint: string;
}

/**
 * One spelling of a socket's address and port for both ends: an IPv4-mapped IPv6 address (a
 * dual-stack listener's view of an IPv4 peer) as plain IPv4, IPv6 in brackets without its zone,
 * lower case.
 */
export function endpoint(address: string | undefined, port: number | undefined): string {
  let host = (address ?? "").toLowerCase().replace(/%.*$/, "");
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(host);
  if (mapped) host = mapped[1]!;
  return host.includes(":") ? `[${host}]:${port ?? 0}` : `${host}:${port ?? 0}`;
}

export type Role = "initiator" | "responder";

export function newNonce(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
}

/** The cluster secret as HMAC key bytes (UTF-8 of the configured string). */
export function clusterKey(secret: string): Uint8Array {
  return new TextEncoder().encode(secret);
}

export function proof(key: Uint8Array, role: Role, t: Transcript): Uint8Array {
  // shoal/2: the transcript gained the responder's endpoint (shoal/1 proofs never verify as shoal/2).
  const label = new TextEncoder().encode(`shoal/2 peer ${role}\0`);
  // Ids and nonces have fixed sizes (the codec enforces 20-byte ids), so only the text needs a separator.
  const text = new TextEncoder().encode(`${t.digest}\0${t.responderEndpoint}`);
  for (const [name, part, size] of [
    ["initiator nonce", t.initiatorNonce, NONCE_BYTES],
    ["responder nonce", t.responderNonce, NONCE_BYTES],
  ] as const) {
    if (part.length !== size) throw new Error(`${name} must be ${size} bytes`);
  }
  const message = new Uint8Array(label.length + NONCE_BYTES * 2 + t.initiatorId.length + t.responderId.length + text.length);
  let at = 0;
  for (const part of [label, t.initiatorNonce, t.responderNonce, t.initiatorId, t.responderId, text]) {
    message.set(part, at);
    at += part.length;
  }
  return hmac(sha256, key, message);
}

export function verifyProof(key: Uint8Array, role: Role, t: Transcript, presented: Uint8Array): boolean {
  return presented.length === PROOF_BYTES && constantTimeEqual(proof(key, role, t), presented);
}

/** The responder's `auth` field: its nonce, then its proof. */
export function splitResponderAuth(auth: Uint8Array): { nonce: Uint8Array; proof: Uint8Array } | undefined {
  if (auth.length !== NONCE_BYTES + PROOF_BYTES) return undefined;
  return { nonce: auth.subarray(0, NONCE_BYTES), proof: auth.subarray(NONCE_BYTES) };
}
