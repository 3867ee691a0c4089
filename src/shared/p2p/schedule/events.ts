import type { AnnounceResponse, HandoutPeer } from "../../api/announce.js";

/**
 * The scheduler's language. The driver (the agent's swarm session, or the fleet simulator) turns
 * what happens on sockets, timers and HTTP into events, and carries out the actions it gets back.
 * A peer is named by a key the driver chooses (`ip:port` for a peer we dialled).
 */
export type PeerKey = string;

/** Where a piece came from: a peer, or the edge's Range reads. */
export type PieceSource = PeerKey | typeof WEB_SEED;
export const WEB_SEED = "web-seed";

export type SchedulerEvent =
  /** The download begins; `have` are pieces an interrupted run left, verified again. */
  | { type: "start"; have: readonly number[] }
  | { type: "announced"; response: AnnounceResponse }
  | { type: "announce-failed" }
  /** A connect action did not give a peer; `backoff` false when only the agent's budget was full. */
  | { type: "connect-failed"; peer: PeerKey; backoff: boolean }
  /** A handshake completed: outbound (we dialled) or inbound (it dialled us for this blob). */
  | { type: "peer-connected"; peer: PeerKey; peerId: string; inbound: boolean; bitfield: Uint8Array }
  | { type: "peer-left"; peer: PeerKey }
  | { type: "have"; peer: PeerKey; index: number }
  | { type: "bitfield"; peer: PeerKey; bitfield: Uint8Array }
  /** The peer now has every piece. */
  | { type: "peer-complete"; peer: PeerKey }
  /** The peer would not serve a requested piece now (busy, or it lacks it). */
  | { type: "rejected"; peer: PeerKey; index: number }
  /** All of a piece's bytes arrived from `from`; the driver verifies them if `accepts(index)` was true. */
  | { type: "piece-arrived"; index: number; from: PieceSource }
  /** The piece matched its metainfo hash and is written: it may be served. */
  | { type: "piece-verified"; index: number; from: PieceSource }
  | { type: "piece-invalid"; index: number; from: PieceSource }
  | { type: "web-seed-failed"; index: number }
  /**
   * Pieces readers are waiting for, most urgent first (a Range read of a blob not yet here): they
   * go ahead of everything else, from a peer that has them or else from the web seed at once.
   * Each event replaces the last list; an empty list clears it.
   */
  | { type: "priorities"; pieces: readonly number[] }
  /** Fetch the pieces no reader waits for too, or stop doing so (see SchedulerConfig.background). */
  | { type: "background"; on: boolean }
  /** The time `nextTimeout()` named has come (or any other wake-up). */
  | { type: "timer" };

export type SchedulerAction =
  /**
   * `fetching`: the whole blob is wanted (false under `--lazy-complete=never` until a whole read
   * comes: the tracker then gives no web-seed slice).
   */
  | { type: "announce"; have: number; fetching: boolean }
  | { type: "connect"; peer: PeerKey; to: HandoutPeer }
  /** Ask `peer` for every block of piece `index`. */
  | { type: "request"; peer: PeerKey; index: number }
  /** Stop waiting for piece `index` from `peer` (tell it, so it does not send it). */
  | { type: "cancel"; peer: PeerKey; index: number }
  /** Read piece `index` from the edge by Range. */
  | { type: "web-seed"; index: number }
  /** Close the connection with `reason`; `ban`: the peer sent a bad piece (or is banned). */
  | { type: "drop"; peer: PeerKey; reason: string; ban: boolean; /** We are full, not it at fault (the wire says OVERLOADED). */ full?: boolean }
  /** Tell every connection of the swarm that we have piece `index` (but peers that hold it: see SwarmScheduler.peerHolds). */
  | { type: "have"; index: number }
  | { type: "finished" }
  | { type: "failed"; reason: string };
