import { bufferSource } from "../bytes.js";
import { OciError } from "./errors.js";

/**
 * Digests (image-spec descriptor.md §Digests): `algorithm ":" encoded`. Shoal verifies the two
 * registered algorithms: sha256 (what clients use) and sha512.
 */
export const DIGEST_GRAMMAR = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export const DIGEST_ALGORITHMS = {
  sha256: { hexLength: 64, webCrypto: "SHA-256" },
  sha512: { hexLength: 128, webCrypto: "SHA-512" },
} as const;
export type DigestAlgorithm = keyof typeof DIGEST_ALGORITHMS;

export type Digest = `${DigestAlgorithm}:${string}`;
/** Kept for readability where only SHA-256 is meant. */
export type Sha256Digest = `sha256:${string}`;

export function isDigest(value: string): boolean {
  return DIGEST_GRAMMAR.test(value);
}

/** Parses a digest Shoal can verify; throws DIGEST_INVALID (400) with a reason otherwise. */
export function parseDigest(value: string): Digest {
  if (!DIGEST_GRAMMAR.test(value)) {
    throw new OciError("DIGEST_INVALID", `invalid digest ${JSON.stringify(value.slice(0, 150))}`);
  }
  const [algorithm = "", encoded = ""] = value.split(":", 2);
  if (!Object.hasOwn(DIGEST_ALGORITHMS, algorithm)) {
    throw new OciError("DIGEST_INVALID", `unsupported digest algorithm ${algorithm}: sha256 and sha512 are accepted`);
  }
  const { hexLength } = DIGEST_ALGORITHMS[algorithm as DigestAlgorithm];
  if (encoded.length !== hexLength || !/^[a-f0-9]+$/.test(encoded)) {
    throw new OciError("DIGEST_INVALID", `a ${algorithm} digest has ${hexLength} lowercase hex characters`);
  }
  return value as Digest;
}

export function digestAlgorithm(digest: Digest): DigestAlgorithm {
  return digest.slice(0, digest.indexOf(":")) as DigestAlgorithm;
}

export function digestHex(digest: Digest): string {
  return digest.slice(digest.indexOf(":") + 1);
}

export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/** Digest of bytes held in memory (manifests, small bodies), with Web Crypto. */
export async function computeDigest(bytes: Uint8Array, algorithm: DigestAlgorithm = "sha256"): Promise<Digest> {
  const hash = await crypto.subtle.digest(DIGEST_ALGORITHMS[algorithm].webCrypto, bufferSource(bytes));
  return `${algorithm}:${toHex(new Uint8Array(hash))}`;
}

export async function sha256Digest(bytes: Uint8Array): Promise<Sha256Digest> {
  return (await computeDigest(bytes, "sha256")) as Sha256Digest;
}
