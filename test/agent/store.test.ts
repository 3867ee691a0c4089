import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mkdtemp, readdir, rm, writeFile, mkdir } from "node:fs/promises";
import { createHash, randomBytes } from "node:crypto";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { DigestMismatchError, DiskStore } from "../../src/agent-node/store/disk-store.js";
import { DownloadManager, type BlobSource } from "../../src/agent-node/store/download.js";
import type { Digest } from "../../src/shared/oci/digest.js";

const log = pino({ level: "silent" });
const digestOf = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}` as Digest;
let dir: string;
let clock = 1_000;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "shoal-store-"));
  clock = 1_000;
});
afterEach(async () => rm(dir, { recursive: true, force: true }));

async function openStore(capacityBytes = 1 << 30): Promise<DiskStore> {
  const store = new DiskStore({ dir, capacityBytes, log, now: () => clock });
  await store.open();
  return store;
}

async function put(store: DiskStore, bytes: Uint8Array): Promise<Digest> {
  const digest = digestOf(bytes);
  const writer = await store.createWriter(digest);
  await writer.write(bytes);
  await writer.commit();
  return digest;
}

describe("DiskStore", () => {
  it("makes a blob visible only after its digest matches", async () => {
    const store = await openStore();
    const bytes = randomBytes(1000);
    const wrong = digestOf(Buffer.from("other"));
    const writer = await store.createWriter(wrong);
    await writer.write(bytes);
    await expect(writer.commit()).rejects.toBeInstanceOf(DigestMismatchError);
    expect(store.get(wrong)).toBeUndefined();
    expect(await readdir(path.join(dir, "partial"))).toEqual([]);
    const digest = await put(store, bytes);
    expect(store.get(digest)?.size).toBe(1000);
  });

  it("survives a restart and drops leftover partial files", async () => {
    const store = await openStore();
    const digest = await put(store, randomBytes(500));
    await writeFile(path.join(dir, "partial", "sha256-junk"), "half a blob");
    const again = await openStore();
    expect(again.get(digest)?.size).toBe(500);
    expect(await readdir(path.join(dir, "partial"))).toEqual([]);
  });

  it("keeps a swarm download's partial file and progress across a restart, and drops them when it completes", async () => {
    let store = await openStore();
    const bytes = randomBytes(3000);
    const digest = digestOf(bytes);
    let writer = await store.createWriter(digest, { resumable: true });
    expect(writer.recorded).toEqual([]);
    await writer.writeAt(2000, bytes.subarray(2000));
    await writer.recordPiece(2);
    await writer.writeAt(0, bytes.subarray(0, 1000));
    await writer.recordPiece(0);
    await writer.abort(); // the download stopped (agent killed or stopping)
    await writeFile(path.join(dir, "partial", "sha256-junk"), "a plain partial file");

    store = await openStore();
    expect((await readdir(path.join(dir, "partial"))).sort()).toEqual([`sha256-${digest.slice(7)}.pieces`, `sha256-${digest.slice(7)}.resume`]);
    writer = await store.createWriter(digest, { resumable: true });
    expect(writer.recorded).toEqual([2, 0]);
    expect((await writer.readAt(2000, 1000)).equals(bytes.subarray(2000))).toBe(true);
    await writer.writeAt(1000, bytes.subarray(1000, 2000));
    await writer.commit(3000);
    expect(store.get(digest)?.size).toBe(3000);
    expect(await readdir(path.join(dir, "partial"))).toEqual([]);
  });

  it("hashes pieces written out of order as the verified prefix grows, whatever the interleaving; a wrong byte still fails the commit", async () => {
    const store = await openStore();
    for (const order of [
      [3, 1, 0, 2],
      [0, 1, 2, 3],
      [2, 0, 3, 1],
    ]) {
      for (const corrupt of [false, true]) {
        const bytes = randomBytes(4 * 50_000);
        const digest = digestOf(bytes);
        const writer = await store.createWriter(digest, { resumable: true });
        const have = new Set<number>();
        await Promise.all(
          order.map(async (piece, k) => {
            await new Promise((r) => setTimeout(r, k)); // writes and catch-ups interleave
            const chunk = Buffer.from(bytes.subarray(piece * 50_000, (piece + 1) * 50_000));
            if (corrupt && piece === 2) chunk[7]! ^= 1;
            await writer.writeAt(piece * 50_000, chunk);
            have.add(piece);
            let contiguous = 0;
            while (have.has(contiguous)) contiguous++;
            writer.hashUpTo(contiguous * 50_000);
          }),
        );
        if (corrupt) await expect(writer.commit(bytes.length)).rejects.toThrow(/hashed to/);
        else {
          await writer.commit(bytes.length);
          expect(store.get(digest)?.size).toBe(bytes.length);
        }
      }
    }
  });

  it("ignores a torn progress entry, and drops half a pair of partial files", async () => {
    const store = await openStore();
    const digest = digestOf(Buffer.from("x"));
    const stem = path.join(dir, "partial", `sha256-${digest.slice(7)}`);
    await writeFile(`${stem}.resume`, "x");
    await writeFile(`${stem}.pieces`, Buffer.from([0, 0, 0, 0, 0, 0]));
    const writer = await store.createWriter(digest, { resumable: true });
    expect(writer.recorded).toEqual([0]);
    await writer.recordPiece(1);
    await writer.abort();
    const reopened = await store.createWriter(digest, { resumable: true });
    expect(reopened.recorded).toEqual([0, 1]);
    await reopened.abort();
    await rm(`${stem}.pieces`);
    await openStore();
    expect(await readdir(path.join(dir, "partial"))).toEqual([]);
  });

  it("parks a stopped swarm download's partial blob: counted, kept across a restart, evicted least recently used beside whole blobs", async () => {
    let store = await openStore(11_000);
    const partial = digestOf(Buffer.from("held in part"));
    const writer = await store.createWriter(partial, { resumable: true, piecesVerified: true });
    await writer.writeAt(0, randomBytes(4096));
    await writer.recordPiece(0);
    store.notePartial(partial, 4096);
    await writer.abort();
    store.parkPartial(partial);
    expect(store.usage()).toMatchObject({ partialBlobs: 1, partialBytes: 4096 });
    // A restart: the parked copy is counted by the disk blocks its file takes.
    store = await openStore(11_000);
    expect(store.usage().partialBlobs).toBe(1);
    expect(store.usage().partialBytes).toBeGreaterThanOrEqual(4096);
    const held = store.usage().partialBytes;
    // A resumed download counts its pieces again as it verifies them (not twice).
    const resumed = await store.createWriter(partial, { resumable: true, piecesVerified: true });
    expect(resumed.recorded).toEqual([0]);
    expect(store.usage()).toMatchObject({ partialBlobs: 0, partialBytes: 0 });
    store.notePartial(partial, 4096);
    // Active: whole blobs make room for it, it is never evicted itself.
    clock = 2_000;
    const a = await put(store, randomBytes(3000));
    clock = 3_000;
    const b = await put(store, randomBytes(3000));
    expect(store.get(a)).toBeDefined();
    clock = 4_000;
    await put(store, randomBytes(3000));
    expect(store.get(a)).toBeUndefined();
    expect(store.usage().partialBlobs).toBe(1);
    // Parked again (at 5,000: more recent than b and c): they go before it, then it goes.
    await resumed.abort();
    clock = 5_000;
    store.parkPartial(partial);
    for (const at of [6_000, 7_000]) {
      clock = at;
      await put(store, randomBytes(3000));
      expect(store.usage().partialBlobs).toBe(1);
    }
    expect(store.get(b)).toBeUndefined();
    clock = 8_000;
    await put(store, randomBytes(3000));
    expect(store.usage()).toMatchObject({ partialBlobs: 0, partialBytes: 0 });
    expect((await readdir(path.join(dir, "partial"))).filter((n) => n.includes(partial.slice(7)))).toEqual([]);
    expect(store.usage().bytes).toBeLessThanOrEqual(11_000);
    expect(held).toBeLessThanOrEqual(8192);
  });

  it("evicts least-recently-used blobs past capacity, never a pinned one", async () => {
    const store = await openStore(2500);
    const a = await put(store, randomBytes(1000));
    clock = 2_000;
    const b = await put(store, randomBytes(1000));
    clock = 3_000;
    store.touch(a); // a is now more recent than b
    const release = store.pin(b);
    clock = 4_000;
    const c = await put(store, randomBytes(1000));
    // b is the oldest but pinned: a goes instead.
    expect(store.get(b)).toBeDefined();
    expect(store.get(a)).toBeUndefined();
    expect(store.get(c)).toBeDefined();
    release();
    clock = 5_000;
    await put(store, randomBytes(1000));
    expect(store.get(b)).toBeUndefined();
    expect(store.usage().bytes).toBeLessThanOrEqual(2500);
  });

  it("counts a partial blob's verified bytes against capacity, evicting whole blobs to make room", async () => {
    const store = await openStore(2500);
    const a = await put(store, randomBytes(1000));
    clock = 2_000;
    const b = await put(store, randomBytes(1000));
    const partial = digestOf(Buffer.from("held in part"));
    // 2,600 bytes with the partial blob's 600: over capacity, so the store evicts at once.
    store.notePartial(partial, 600);
    await store.evict();
    // The oldest whole blob went; the partial one's pieces stay (a reader may be on them).
    expect(store.usage()).toMatchObject({ partialBlobs: 1, partialBytes: 600 });
    expect(store.get(a)).toBeUndefined();
    expect(store.get(b)).toBeDefined();
    expect(store.usage()).toMatchObject({ bytes: 1600, partialBlobs: 1 });
    store.dropPartial(partial);
    expect(store.usage()).toMatchObject({ bytes: 1000, partialBlobs: 0, partialBytes: 0 });
  });

  it("ignores foreign files when it opens", async () => {
    await mkdir(path.join(dir, "blobs/sha256"), { recursive: true });
    const store = await openStore();
    const digest = await put(store, Buffer.from("x"));
    await store.writeMeta(digest, { mediaType: "application/json" });
    const again = await openStore();
    expect(again.list().map((e) => e.digest)).toEqual([digest]);
    expect(await again.readMeta(digest)).toEqual({ mediaType: "application/json" });
  });
});

/** A source whose chunks are released one at a time by the test. */
function gatedSource(chunks: Uint8Array[]): { source: BlobSource; release(): void } {
  const waiters: (() => void)[] = [];
  let released = 0;
  async function* body() {
    for (let i = 0; i < chunks.length; i++) {
      while (released <= i) await new Promise<void>((r) => waiters.push(r));
      yield chunks[i]!;
    }
  }
  const size = chunks.reduce((n, c) => n + c.length, 0);
  return {
    source: { size, body: body() },
    release() {
      released++;
      waiters.splice(0).forEach((w) => w());
    },
  };
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

describe("Download", () => {
  it("streams the first bytes to a reader before the rest has arrived", async () => {
    const store = await openStore();
    const manager = new DownloadManager(store, log);
    const chunks = [randomBytes(3000), randomBytes(3000)];
    const gate = gatedSource(chunks);
    const download = manager.fetch(digestOf(Buffer.concat(chunks)), async () => gate.source);
    gate.release();
    await download.ready;
    const reader = download.createReader(0, 5999);
    const first = await new Promise<Buffer>((resolve) => reader.once("data", resolve));
    expect(first.equals(chunks[0]!)).toBe(true);
    expect(download.state).toBe("running");
    gate.release();
    const rest = await readAll(reader);
    expect(Buffer.concat([first, rest]).equals(Buffer.concat(chunks))).toBe(true);
    await download.finished;
    expect(store.get(download.digest)).toBeDefined();
  });

  it("shares one fetch between concurrent requests", async () => {
    const store = await openStore();
    const manager = new DownloadManager(store, log);
    const bytes = randomBytes(10_000);
    let opened = 0;
    const open = async () => {
      opened++;
      return { size: bytes.length, body: (async function* () { yield bytes; })() };
    };
    const downloads = Array.from({ length: 20 }, () => manager.fetch(digestOf(bytes), open));
    expect(new Set(downloads).size).toBe(1);
    await downloads[0]!.finished;
    expect(opened).toBe(1);
  });

  it("aborts readers and stores nothing when the bytes do not verify", async () => {
    const store = await openStore();
    const manager = new DownloadManager(store, log);
    const claimed = digestOf(Buffer.from("the real blob"));
    const download = manager.fetch(claimed, async () => ({ size: 9, body: (async function* () { yield Buffer.from("forged!!!"); })() }));
    await download.ready;
    const reader = download.createReader(0, 8);
    await expect(readAll(reader)).rejects.toThrow(/hashed to/);
    expect(store.get(claimed)).toBeUndefined();
    expect(await readdir(path.join(dir, "partial"))).toEqual([]);
  });

  it("fails readers when the source ends early", async () => {
    const store = await openStore();
    const manager = new DownloadManager(store, log);
    const download = manager.fetch(digestOf(Buffer.from("abc")), async () => ({ size: 10, body: (async function* () { yield Buffer.from("abc"); })() }));
    await download.ready;
    await expect(readAll(download.createReader(0, 9))).rejects.toThrow(/ended after 3 of 10/);
  });
});

describe("a swarm (filler) download", () => {
  /** A filler that writes the given pieces in the given order, waiting for `step()` before each. */
  function filler(pieces: Buffer[], order: number[]) {
    const pieceLength = pieces[0]!.length;
    const waiting: (() => void)[] = [];
    let wake: (() => void) | undefined;
    const step = () => (waiting.length > 0 ? waiting.shift()!() : undefined);
    return {
      step,
      /** Resolves once the filler waits for the next step. */
      pending: () => new Promise<void>((resolve) => (waiting.length > 0 ? resolve() : (wake = resolve))),
      source: {
        size: pieces.reduce((n, p) => n + p.length, 0),
        async fill(sink: import("../../src/agent-node/store/download.js").FillSink) {
          const have = new Set<number>();
          for (const index of order) {
            await new Promise<void>((resolve) => {
              waiting.push(resolve);
              wake?.();
            });
            await sink.writeAt(index * pieceLength, pieces[index]!);
            have.add(index);
            let contiguous = 0;
            while (have.has(contiguous)) contiguous++;
            sink.advance(Math.min(contiguous * pieceLength, this.size));
          }
        },
      },
    };
  }

  it("is committed on its pieces' verification, without hashing the whole blob again", async () => {
    const store = await openStore();
    const manager = new DownloadManager(store, log);
    const pieces = [randomBytes(1000), randomBytes(1000), randomBytes(500)];
    // The digest named is not the bytes' (a filler vouches for its pieces against the metainfo):
    // the store takes them as verified, which proves it did not hash them a second time.
    const named = digestOf(Buffer.from("what the metainfo was computed for"));
    const fill = filler(pieces, [2, 0, 1]);
    const download = manager.fetch(named, async () => fill.source);
    for (let i = 0; i < 3; i++) {
      await fill.pending();
      fill.step();
    }
    await download.finished;
    expect(store.get(named)?.size).toBe(2500);
    expect(await readdir(path.join(dir, "partial"))).toEqual([]);
  });

  it("is sent to an HTTP client as its verified prefix grows; a failed download cuts the transfer", async () => {
    const http = await import("node:http");
    const { sendRange } = await import("../../src/agent-node/registry/send-file.js");
    const store = await openStore();
    const manager = new DownloadManager(store, log);
    const pieces = [randomBytes(300_000), randomBytes(300_000), randomBytes(300_000)];
    const blob = Buffer.concat(pieces);
    for (const fails of [false, true]) {
      const fill = filler(pieces, [1, 0, 2]);
      const source = fails ? { ...fill.source, fill: async () => Promise.reject(new Error("every peer went away")) } : fill.source;
      const digest = digestOf(fails ? Buffer.from("another") : blob);
      const download = manager.fetch(digest, async () => source);
      await download.ready;
      const server = http.createServer((_req, res) => {
        res.writeHead(200, { "Content-Length": blob.length });
        sendRange({ name: "blob", open: () => download.openForReading(), readableUpTo: (p, e) => download.readableUpTo(p, e) }, 0, blob.length - 1, res).catch((error: Error) => res.destroy(error));
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      try {
        const { port } = server.address() as import("node:net").AddressInfo;
        const received: Buffer[] = [];
        const done = new Promise<void>((resolve, reject) => {
          http
            .get(`http://127.0.0.1:${port}/`, (res) => {
              res.on("data", (d: Buffer) => received.push(d));
              res.on("end", resolve);
              res.on("error", reject);
              res.on("aborted", () => reject(new Error("aborted")));
            })
            .on("error", reject);
        });
        if (fails) {
          await expect(done).rejects.toThrow();
          expect(Buffer.concat(received).length).toBeLessThan(blob.length);
          continue;
        }
        await fill.pending();
        fill.step(); // piece 1: nothing contiguous yet
        await fill.pending();
        expect(received).toEqual([]);
        fill.step(); // piece 0: the first 600 000 bytes may go
        await fill.pending();
        const total = () => received.reduce((n, b) => n + b.length, 0);
        for (let waited = 0; total() < 600_000 && waited < 10_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
        expect(total()).toBe(600_000); // and not a byte of piece 2, not yet written
        fill.step();
        await done;
        expect(Buffer.concat(received).equals(blob)).toBe(true);
      } finally {
        server.close();
      }
    }
  });
});
