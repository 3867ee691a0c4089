import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { Readable } from "node:stream";
import { createHash, randomBytes } from "node:crypto";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { DiskStore } from "../../src/agent-node/store/disk-store.js";
import { DownloadManager } from "../../src/agent-node/store/download.js";
import { AgentMetrics } from "../../src/agent-node/metrics.js";
import { BlobFetcher } from "../../src/agent-node/p2p/blob-fetcher.js";
import { SwarmRegistry } from "../../src/agent-node/p2p/swarm-registry.js";
import { SeedableBlobs } from "../../src/agent-node/p2p/seedable.js";
import type { EdgeClient } from "../../src/agent-node/edge/edge-client.js";
import { blockHashes, buildMetainfo } from "../../src/shared/p2p/metainfo.js";
import { P2P_DEFAULTS } from "../../src/shared/p2p/schedule/index.js";
import type { Digest } from "../../src/shared/oci/digest.js";

/**
 * "A blob this agent can seed" has one owner (SeedableBlobs): from the moment its swarm download
 * is registered until long after the blob is committed, a peer asking for it is served — there
 * is no moment between the commit and the metainfo write in which it would hear UNKNOWN_BLOB.
 */
const MiB = 1024 * 1024;
const log = pino({ level: "silent" });
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "shoal-seedable-"));
});
afterEach(async () => rm(dir, { recursive: true, force: true }));

describe("SeedableBlobs", () => {
  it("serves a blob throughout its download, across the commit, and after it", async () => {
    const bytes = randomBytes(6 * MiB + 12345);
    const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}` as Digest;
    const metainfo = await buildMetainfo(digest, bytes.length, await blockHashes(bytes));
    const store = new DiskStore({ dir, capacityBytes: 1 << 30, log });
    await store.open();
    const swarms = new SwarmRegistry();
    const seedable = new SeedableBlobs(store, swarms);
    // An edge with no peers in the swarm: every piece from the web seed, one at a time.
    const edge = {
      getMetainfo: async () => metainfo,
      announce: async () => ({ interval: 60, peers: [], webSeedStartPiece: 0, webSeedSlicePieces: metainfo.pieces.length }),
      openBlob: async (_name: string, _digest: Digest, range?: { start: number; end: number }) => {
        const slice = range ? bytes.subarray(range.start, range.end + 1) : bytes;
        return { size: slice.length, body: Readable.from([Buffer.from(slice)]) };
      },
    } as unknown as EdgeClient;
    const fetcher = new BlobFetcher({
      store,
      downloads: new DownloadManager(store, log),
      edge,
      swarms,
      metrics: new AgentMetrics(),
      log,
      peerId: randomBytes(20),
      announceRequest: (d, pieceCount, complete, have) => ({ digest: d, peerId: "11".repeat(20), ip: "127.0.0.1", port: 1, zone: "z", cluster: "c", complete, have, pieceCount }),
      p2p: {
        enabled: true,
        maxPeersPerSwarm: P2P_DEFAULTS.maxPeersPerSwarm,
        maxPeerConnections: P2P_DEFAULTS.maxPeerConnections,
        piecesPerPeer: P2P_DEFAULTS.piecesPerPeer,
        webSeedConcurrency: 1,
        requestTimeoutMs: 30_000,
        stallTimeoutMs: 30_000,
        bandwidth: {},
      },
      onStored: () => undefined,
    });

    const download = fetcher.fetch("test/blob", digest);
    let finished = false;
    void download.finished.then(() => (finished = true));
    // Wait for the session to register, then ask as a peer would, as fast as we can, until after the commit.
    while (!swarms.get(digest)) await new Promise((r) => setImmediate(r));
    let asked = 0;
    const refused: number[] = [];
    let afterCommit = 0;
    while (afterCommit < 50) {
      const source = await seedable.open(digest);
      if (!source) refused.push(asked);
      else {
        expect(source.metainfo.digest).toBe(digest);
        source.close();
      }
      asked++;
      if (finished) afterCommit++;
      // Once per turn of the event loop (the download's own work runs between).
      await new Promise((r) => setImmediate(r));
    }
    await download.finished;
    expect(store.get(digest)).toBeDefined();
    expect(refused).toEqual([]);
    expect(asked).toBeGreaterThan(50);
    // Served from the store now, every piece.
    const stored = await seedable.open(digest);
    expect(stored!.bitfield()).toEqual(new Uint8Array([0xfe]));
    stored!.close();
  });
});
