import { open, type FileHandle } from "node:fs/promises";
import type { Digest } from "../../shared/oci/digest.js";
import { Bitfield } from "../../shared/p2p/bitfield.js";
import { pieceBounds, type Metainfo } from "../../shared/p2p/metainfo.js";
import type { Frame, Handshake } from "../../shared/p2p/wire/frames.js";
import type { DiskStore } from "../store/disk-store.js";
import type { PeerConnection } from "./peer-connection.js";
import type { SwarmRegistry } from "./swarm-registry.js";

/** Where a blob's served blocks come from: the store (a complete blob) or a download in progress. */
export interface BlockSource {
  metainfo: Metainfo;
  bitfield(): Uint8Array;
  /**
   * The handshake went out: a download sends this peer `have`s from now on and may fetch from it;
   * returns where the peer's other frames go.
   */
  joined(connection: PeerConnection, hello: Handshake): ((frame: Frame) => void) | undefined;
  /** Reads into `into` (exactly `length` bytes) where it can. */
  read(index: number, begin: number, length: number, into: Buffer): Promise<Buffer | undefined>;
  close(): void;
}

/**
 * What this agent can seed: the one place that says so. A blob can be seeded while its swarm
 * session is registered (its verified pieces) and once it is in the store with its metainfo. The
 * blob fetcher writes the metainfo before a swarm download starts and removes the session only
 * after the blob is committed, so there is no moment in between when a peer is told UNKNOWN_BLOB.
 */
export class SeedableBlobs {
  constructor(
    private readonly store: DiskStore,
    private readonly swarms: SwarmRegistry,
  ) {}

  async open(digest: Digest): Promise<BlockSource | undefined> {
    // A download in progress first: its session knows which pieces are verified. Once it is
    // gone, the blob is in the store (or the download failed).
    return this.fromSession(digest) ?? (await this.fromStore(digest)) ?? this.fromSession(digest);
  }

  private async fromStore(digest: Digest): Promise<BlockSource | undefined> {
    const { store } = this;
    if (!store.get(digest)) return undefined;
    const metainfo = await store.readMetainfo(digest);
    if (!metainfo) return undefined;
    const release = store.pin(digest);
    let file: FileHandle;
    try {
      file = await open(store.blobPath(digest), "r");
    } catch {
      release();
      return undefined;
    }
    store.touch(digest);
    return {
      metainfo,
      bitfield: () => Bitfield.full(metainfo.pieces.length).bytes,
      joined: () => undefined,
      read: (index, begin, length, into) => readFileBlock(file, metainfo, index, begin, length, into),
      close: () => {
        release();
        void file.close();
      },
    };
  }

  private fromSession(digest: Digest): BlockSource | undefined {
    const { store } = this;
    const session = this.swarms.get(digest);
    if (!session) return undefined;
    let file: FileHandle | undefined;
    let release: (() => void) | undefined;
    return {
      metainfo: session.metainfo,
      bitfield: () => session.bitfield(),
      joined: (connection, hello) => session.adoptInbound(connection, hello),
      async read(index, begin, length, into) {
        const block = await session.readBlock(index, begin, length, into).catch(() => undefined);
        if (block || !store.get(digest)) return block;
        // The download finished and its blob moved into the store: serve from there.
        if (!file) {
          release = store.pin(digest);
          file = await open(store.blobPath(digest), "r");
        }
        return readFileBlock(file, session.metainfo, index, begin, length, into);
      },
      close: () => {
        release?.();
        void file?.close();
      },
    };
  }
}

async function readFileBlock(file: FileHandle, metainfo: Metainfo, index: number, begin: number, length: number, into: Buffer): Promise<Buffer> {
  const data = into.length === length ? into : Buffer.allocUnsafe(length);
  const { start } = pieceBounds(index, metainfo.size, metainfo.pieceLength);
  const { bytesRead } = await file.read(data, 0, length, start + begin);
  if (bytesRead !== length) throw new Error("short read from the store");
  return data;
}
