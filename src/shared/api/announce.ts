import { z } from "zod";
import { DIGEST_GRAMMAR } from "../oci/digest.js";

/** Announces are small; the edge refuses bigger bodies outright. */
export const ANNOUNCE_MAX_BYTES = 4096;

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
const IPV6 = /^[0-9a-fA-F:.]{2,45}$/;
const LABEL = z.string().min(1).max(64).regex(/^[A-Za-z0-9._-]+$/, "letters, digits, '.', '_' or '-'");

/** What an agent tells the tracker of a swarm (one blob) it takes part in. */
export const AnnounceRequestSchema = z
  .object({
    digest: z.string().regex(DIGEST_GRAMMAR),
    /** 20 random bytes, hex, chosen by the agent at start. */
    peerId: z.string().regex(/^[0-9a-f]{40}$/, "40 lowercase hex characters"),
    ip: z.string().refine((v) => IPV4.test(v) || (v.includes(":") && IPV6.test(v)), "an IPv4 or IPv6 address"),
    port: z.number().int().min(1).max(65535),
    zone: LABEL,
    cluster: LABEL,
    complete: z.boolean(),
    /** Pieces the peer has, and how many the blob has (for the web-seed start offset). */
    have: z.number().int().nonnegative(),
    pieceCount: z.number().int().nonnegative().max(1_000_000),
    /**
     * False: the peer holds part of the blob and fetches only what its own readers ask for
     * (`--lazy-complete=never`). The tracker hands it out for its pieces but gives it no web-seed
     * slice, so the pieces of that slice are fetched by peers that want the whole blob. Absent:
     * true (an incomplete peer fetches the whole blob).
     */
    fetching: z.boolean().optional(),
    /** The peer is leaving the swarm. */
    stopped: z.boolean().optional(),
  })
  .strict()
  .refine((a) => a.have <= a.pieceCount, { message: "have exceeds pieceCount", path: ["have"] });
export type AnnounceRequest = z.infer<typeof AnnounceRequestSchema>;

export const HandoutPeerSchema = z.object({
  peerId: z.string(),
  ip: z.string(),
  port: z.number().int(),
  zone: z.string(),
  cluster: z.string(),
  complete: z.boolean(),
  /** Pieces it had at its last announce (absent from older edges). */
  have: z.number().int().nonnegative().optional(),
});
export type HandoutPeer = z.infer<typeof HandoutPeerSchema>;

export const AnnounceResponseSchema = z.object({
  /** Seconds until the next announce (grows with the swarm, so one tracker object is not flooded). */
  interval: z.number().positive(),
  /**
   * The least seconds between two announces of this peer for any reason (a quick second announce,
   * refreshing a web-seed slice), a stop or the announce of completion excepted. Absent from older
   * edges (agents then keep their own 1 s).
   */
  minInterval: z.number().positive().optional(),
  peers: z.array(HandoutPeerSchema),
  /**
   * Where this peer should start fetching pieces no peer has from the web seed: different for
   * each peer, so a cluster pulling at once asks the edge for about one copy in total.
   */
  webSeedStartPiece: z.number().int().nonnegative(),
  /**
   * How many pieces from that start are this peer's to fetch from the web seed: the live
   * leechers' slices tile the piece ring. Absent from older edges (agents then estimate it).
   */
  webSeedSlicePieces: z.number().int().nonnegative().optional(),
  /**
   * How many pieces of the slice stay this peer's whoever joins the swarm next (the tracker gives
   * only so many leechers a slice at once): fetched at once, without waiting for the slice to settle.
   * Absent from older edges (agents then wait for the rest of the slice).
   */
  webSeedSettledPieces: z.number().int().nonnegative().optional(),
});
export type AnnounceResponse = z.infer<typeof AnnounceResponseSchema>;
