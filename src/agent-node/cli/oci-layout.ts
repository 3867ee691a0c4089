import { createHash, randomUUID } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, readFile, rename, stat, unlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { digestHex, type Digest } from "../../shared/oci/digest.js";
import type { Descriptor } from "../../shared/oci/manifest.js";
import { CliError } from "./cli-error.js";
import { writeFileAtomic } from "../fs/write-atomic.js";

const REF_NAME = "org.opencontainers.image.ref.name";

/**
 * Writes an OCI image layout (image-spec image-layout.md) the way skopeo and umoci read it. Every
 * blob is written to a temporary name, checked against its digest and size, then renamed: a blob
 * under its final name is always whole and verified, so an interrupted pull leaves nothing wrong
 * and a second one skips what is there.
 */
export class OciLayoutWriter {
  constructor(readonly dir: string) {}

  async init(): Promise<void> {
    try {
      await mkdir(path.join(this.dir, "blobs", "sha256"), { recursive: true });
      await writeFile(path.join(this.dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    } catch (error) {
      throw new CliError(`cannot write to ${this.dir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  }

  blobPath(digest: string): string {
    return path.join(this.dir, "blobs", "sha256", digestHex(digest as Digest));
  }

  /** Already there, whole (blobs reach their final name only verified). */
  async has(digest: string, size: number): Promise<boolean> {
    return stat(this.blobPath(digest)).then(
      (s) => s.size === size,
      () => false,
    );
  }

  async writeBlob(digest: string, size: number, source: Readable, onBytes: (n: number) => void = () => undefined): Promise<void> {
    if (!digest.startsWith("sha256:")) throw new CliError(`${digest}: only sha256 blobs can be written to an OCI layout here`);
    const final = this.blobPath(digest);
    const temp = `${path.dirname(final)}/.partial-${digestHex(digest as Digest)}-${randomUUID()}`;
    const hash = createHash("sha256");
    let written = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        hash.update(chunk);
        written += chunk.length;
        onBytes(chunk.length);
        done(null, chunk);
      },
    });
    try {
      await pipeline(source, meter, createWriteStream(temp));
      const actual = `sha256:${hash.digest("hex")}`;
      if (actual !== digest || written !== size) throw new CliError(`${digest}: got ${written} bytes hashing to ${actual} (expected ${size} bytes)`);
      await rename(temp, final);
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      if (error instanceof CliError) throw error;
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOSPC") throw new CliError(`no space left on the device holding ${this.dir}`);
      throw new CliError(`${digest}: ${(error as Error).message}`);
    }
  }

  async writeBytes(digest: string, bytes: Uint8Array): Promise<void> {
    await this.writeBlob(digest, bytes.length, Readable.from([Buffer.from(bytes)]));
  }

  /** Points `index.json` at a manifest under a name (replacing an entry of the same name). */
  async tag(descriptor: Descriptor, name: string): Promise<void> {
    const file = path.join(this.dir, "index.json");
    let index: { schemaVersion: 2; mediaType?: string; manifests: Descriptor[] } = { schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [] };
    try {
      index = JSON.parse(await readFile(file, "utf8"));
    } catch {
      // a new layout
    }
    index.manifests = index.manifests.filter((m) => m.annotations?.[REF_NAME] !== name);
    index.manifests.push({ ...descriptor, annotations: { ...descriptor.annotations, [REF_NAME]: name } });
    await writeFileAtomic(file, JSON.stringify(index, null, 2));
  }
}
