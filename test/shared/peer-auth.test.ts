import { describe, expect, it } from "vitest";
import { NONCE_BYTES, PROOF_BYTES, clusterKey, endpoint, newNonce, proof, splitResponderAuth, verifyProof, type Transcript } from "../../src/shared/p2p/auth.js";

const key = clusterKey("a-cluster-secret-of-at-least-32-characters");
const transcript = (): Transcript => ({
  digest: "sha256:" + "ab".repeat(32),
  initiatorNonce: newNonce(),
  responderNonce: newNonce(),
  initiatorId: new Uint8Array(20).fill(1),
  responderId: new Uint8Array(20).fill(2),
  responderEndpoint: "10.0.0.2:16001",
});

describe("peer authentication proofs", () => {
  it("spell both ends' view of an endpoint the same way", () => {
    expect(endpoint("::ffff:127.0.0.1", 16001)).toBe("127.0.0.1:16001");
    expect(endpoint("127.0.0.1", 16001)).toBe("127.0.0.1:16001");
    expect(endpoint("FE80::1%eth0", 7)).toBe("[fe80::1]:7");
    expect(endpoint("::1", 7)).toBe("[::1]:7");
  });

  it("verify with the same key, role and transcript only", () => {
    const t = transcript();
    const mine = proof(key, "initiator", t);
    expect(mine.length).toBe(PROOF_BYTES);
    expect(verifyProof(key, "initiator", t, mine)).toBe(true);
    // Another secret, the other role (a reflected proof), another nonce, peer or blob: all fail.
    expect(verifyProof(clusterKey("another-cluster-secret-of-32-characters!"), "initiator", t, mine)).toBe(false);
    expect(verifyProof(key, "responder", t, mine)).toBe(false);
    expect(verifyProof(key, "initiator", { ...t, responderNonce: newNonce() }, mine)).toBe(false);
    expect(verifyProof(key, "initiator", { ...t, initiatorId: new Uint8Array(20).fill(3) }, mine)).toBe(false);
    expect(verifyProof(key, "initiator", { ...t, digest: "sha256:" + "cd".repeat(32) }, mine)).toBe(false);
    expect(verifyProof(key, "initiator", t, mine.subarray(0, 31))).toBe(false);
    // A proof made for a connection to one endpoint (a relaying host's) opens no other.
    expect(verifyProof(key, "initiator", { ...t, responderEndpoint: "10.0.0.3:16001" }, mine)).toBe(false);
  });

  it("uses fresh nonces, so a recorded proof does not open another connection", () => {
    const first = transcript();
    const second = { ...first, responderNonce: newNonce() };
    expect(Buffer.from(first.responderNonce).equals(Buffer.from(second.responderNonce))).toBe(false);
    expect(verifyProof(key, "initiator", second, proof(key, "initiator", first))).toBe(false);
  });

  it("splits the responder's auth field into nonce and proof, refusing other lengths", () => {
    const field = new Uint8Array(NONCE_BYTES + PROOF_BYTES).map((_, i) => i);
    const parts = splitResponderAuth(field)!;
    expect(parts.nonce[0]).toBe(0);
    expect(parts.proof[0]).toBe(NONCE_BYTES);
    expect(splitResponderAuth(new Uint8Array(NONCE_BYTES))).toBeUndefined();
    expect(() => proof(key, "initiator", { ...transcript(), initiatorNonce: new Uint8Array(3) })).toThrow(/32 bytes/);
  });
});
