/**
 * The P2P tunables in one place: the agent's config schema takes its defaults from here, and the
 * scheduler and the fleet simulator read the same values.
 */
export const P2P_DEFAULTS = {
  enabled: true,
  /** A blob is announced as seeded this long after it was last used. */
  seedWindowSeconds: 600,
  /** Peer connections per swarm (outbound and adopted inbound together). */
  maxPeersPerSwarm: 16,
  /** Outbound peer connections across all of an agent's swarms. */
  maxPeerConnections: 128,
  /**
   * Pieces requested from one peer at a time. One: a peer serves a connection's requests in
   * order, so a second one only queued behind the first while the in-flight budget could have
   * gone to another peer (simulated standard run: p50 1.31x -> 1.22x the bound).
   */
  piecesPerPeer: 1,
  /** Pieces read from the edge (web seed) at a time. */
  webSeedConcurrency: 1,
  requestTimeoutSeconds: 30,
  stallTimeoutSeconds: 120,
} as const;

/** Policy constants of the scheduler; overridable per scheduler so the simulator can compare. */
export interface SchedulerTuning {
  /** Pieces fetched at once from all peers and the web seed together (endgame aside). */
  maxPiecesInFlight: number;
  /**
   * Pieces that arrived and wait to be verified and written: at this many, nothing more is asked
   * (readers' pieces aside) until the disk catches up. Without it a download faster than its disk
   * (past the page cache's dirty limit) held every waiting piece in memory: 637 MiB pulling 6 GiB.
   */
  maxPiecesWaitingForDisk: number;
  /**
   * Peers connected at once, inbound ones included: an inbound connection past it is refused
   * ("swarm full"; its dialer backs off and dials others). Without it the hosts that every early
   * handout named (a fleet starting at once) ended with 80 peers each, splitting their uplinks
   * among all, while hosts few had dialled starved: simulated, 260 hosts over 64 tracker shards,
   * p50 1.42x -> 1.17x the bound, and the spread at 4 s from 17-86 pieces to about 69-96.
   */
  maxConnectedPeers: number;
  /**
   * How long a peer that rejected a request (busy) is left alone. Rejections are how requests find
   * idle uplinks (see the agent's upload backlog): 500 ms left a rejected host idle longer than a
   * piece takes (simulated 260 × 300 MB: p99 1.38x -> 1.35x the bound at 200 ms).
   */
  rejectBackoffMs: number;
  /** Longest backoff before a failed peer may be dialled again (1 s, 2 s, 4 s … up to this). */
  maxPeerBackoffMs: number;
  /** Least time with nothing from peers before fetching web-seed pieces outside our slice. */
  webSeedPatienceMinMs: number;
  /**
   * The same before the first piece has come from anywhere: at the start the swarm has nothing
   * yet and the first copy is still crossing the WAN, so a host with no slice (more hosts than
   * pieces) that went to the edge after the usual patience would make the WAN carry many copies.
   */
  webSeedPatienceFirstMs: number;
  /** How long the first web-seed read waits for handed-out peers (with pieces) to finish handshakes. */
  webSeedHoldMs: number;
  /**
   * How long a Range reader's pieces wait for handshakes with handed-out peers before the web seed
   * (a lazy peer may hold them; a handshake takes milliseconds, a dead host's would take the hold).
   */
  readerHoldMs: number;
  /** Seconds to the second announce, whatever the tracker's interval (the swarm was forming). */
  firstReannounceSeconds: number;
  /** Least time between announces sent to refresh the web-seed slice (and how long it must hold). */
  webSeedReannounceMs: number;
  /** Peers asked for one piece at once in the endgame. */
  endgameMaxRequests: number;
  /** Strikes (timed-out requests) before a peer is dropped as too slow. */
  maxStrikes: number;
  /** Longest pause of web-seed reads after failed ones (500 ms, 1 s, … up to this). */
  maxWebSeedBackoffMs: number;
  /** Seconds between announces when the tracker cannot be reached. */
  announceRetrySeconds: number;
  /** While waiting on something without a deadline of its own (patience), look again this often. */
  tickMs: number;
}

export const SCHEDULER_TUNING: SchedulerTuning = {
  maxPiecesInFlight: 4,
  maxPiecesWaitingForDisk: 8,
  maxConnectedPeers: 48,
  rejectBackoffMs: 200,
  maxPeerBackoffMs: 60_000,
  webSeedPatienceMinMs: 1_000,
  webSeedPatienceFirstMs: 5_000,
  webSeedHoldMs: 2_000,
  readerHoldMs: 500,
  firstReannounceSeconds: 1,
  webSeedReannounceMs: 1_000,
  endgameMaxRequests: 2,
  maxStrikes: 3,
  maxWebSeedBackoffMs: 30_000,
  announceRetrySeconds: 3,
  tickMs: 500,
};
