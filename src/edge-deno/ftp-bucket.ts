import { createHash, randomUUID } from "node:crypto";
import { PassThrough, Readable, Transform, Writable } from "node:stream";
import { Client } from "basic-ftp";
import { BodyObject, CHECKSUMS, bodyBytes, checksumMismatch, pageOfKeys, resolveRange, type ListOptions, type ListedObjects, type MultipartUpload, type ObjectBucket, type PutBody, type PutOptions, type RangeOption, type StoredObject } from "./bucket.js";

/**
 * The edge's objects on an FTP server (basic-ftp), as the project's first notes ask ("ftp 存储接口"):
 * under the URL's root, `objects/<key>` with a `<key>.meta.json` beside it (written last: it is what
 * makes an object exist), uploads written to `tmp/` and renamed into place once their checksum held,
 * a put's body streamed into its temporary file and hashed on the way (a blob of any size is never
 * held whole in memory; a wrong checksum deletes the file before it is renamed anywhere),
 * ranged reads by restart offset (REST) cut off after the range, multipart parts in
 * `multipart/<upload id>/` appended together at completion. A small pool of control connections
 * serves concurrent requests; a connection that broke (or was cut to end a ranged read) is replaced.
 */
const POOL_SIZE = 4;

export class FtpBucket implements ObjectBucket {
  private readonly idle: Client[] = [];
  private open = 0;
  private readonly waiting: ((client: Client) => void)[] = [];
  private readonly root: string;

  constructor(private readonly url: URL) {
    this.root = decodeURIComponent(url.pathname).replace(/\/+$/, "") || "";
  }

  private objectPath(key: string): string {
    return `${this.root}/objects/${encodeURIComponent(key)}`;
  }

  private async connect(): Promise<Client> {
    const client = new Client(30_000);
    await client.access({
      host: this.url.hostname,
      port: Number(this.url.port || 21),
      user: decodeURIComponent(this.url.username) || "anonymous",
      password: decodeURIComponent(this.url.password) || "shoal@",
      secure: false,
    });
    return client;
  }

  /** Runs `fn` with a connection of the pool; `keep: false` from fn's result discards it. */
  async with<T>(fn: (client: Client) => Promise<T>): Promise<T> {
    let client = this.idle.pop();
    if (!client) {
      if (this.open < POOL_SIZE) {
        this.open++;
        try {
          client = await this.connect();
        } catch (error) {
          this.open--;
          throw new Error(`FTP ${this.url.host}: ${(error as Error).message}`);
        }
      } else {
        client = await new Promise<Client>((resolve) => this.waiting.push(resolve));
      }
    }
    try {
      return await fn(client);
    } finally {
      this.release(client);
    }
  }

  private release(client: Client): void {
    if (client.closed) {
      this.open--;
      const next = this.waiting.shift();
      if (next) {
        this.open++;
        this.connect().then(next, () => {
          this.open--;
        });
      }
      return;
    }
    const next = this.waiting.shift();
    if (next) next(client);
    else this.idle.push(client);
  }

  private async readAll(client: Client, path: string): Promise<Buffer | null> {
    const chunks: Buffer[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        chunks.push(chunk);
        done();
      },
    });
    try {
      await client.downloadTo(sink, path);
    } catch (error) {
      if (isMissing(error)) return null;
      throw error;
    }
    return Buffer.concat(chunks);
  }

  /**
   * Writes `source` to a temporary file, then (if `check` does not throw once it has all the bytes)
   * renames it to `path`; a failed check removes the temporary file.
   */
  private async writeAtomically(client: Client, source: Readable | Uint8Array, path: string, check: () => void = () => undefined): Promise<void> {
    const temp = `${this.root}/tmp/${randomUUID()}`;
    await client.ensureDir(`${this.root}/tmp`);
    await client.cd("/");
    try {
      await client.uploadFrom(source instanceof Readable ? source : Readable.from([Buffer.from(source)]), temp);
      check();
    } catch (error) {
      if (!client.closed) await client.remove(temp).catch(() => undefined);
      throw error;
    }
    await client.ensureDir(path.slice(0, path.lastIndexOf("/")));
    await client.cd("/");
    await client.remove(path).catch(() => undefined); // RNFR/RNTO does not replace everywhere
    await client.rename(temp, path);
  }

  async head(key: string): Promise<StoredObject | null> {
    const meta = await this.with((client) => this.readAll(client, `${this.objectPath(key)}.meta.json`));
    if (!meta) return null;
    const parsed = JSON.parse(meta.toString("utf8")) as { size: number; etag: string; uploaded: string; customMetadata: Record<string, string>; httpMetadata: Record<string, string> };
    return { key, size: parsed.size, etag: parsed.etag, httpEtag: `"${parsed.etag}"`, uploaded: new Date(parsed.uploaded), customMetadata: parsed.customMetadata, httpMetadata: parsed.httpMetadata };
  }

  async list(options: ListOptions = {}): Promise<ListedObjects> {
    const names = await this.with(async (client) => {
      try {
        return (await client.list(`${this.root}/objects`)).map((f) => f.name);
      } catch (error) {
        if (isMissing(error)) return [];
        throw error;
      }
    });
    const page = pageOfKeys(names.filter((n) => n.endsWith(".meta.json")).map((n) => decodeURIComponent(n.slice(0, -".meta.json".length))), options);
    const objects: StoredObject[] = [];
    for (const key of page.keys) {
      const object = await this.head(key);
      if (object) objects.push(object);
    }
    return { objects, truncated: page.truncated };
  }

  async get(key: string, options: { range?: RangeOption } = {}): Promise<BodyObject | null> {
    const object = await this.head(key);
    if (!object) return null;
    const range = resolveRange(object.size, options.range);
    if (range.length === 0) return new BodyObject(object, range, new Response(new Uint8Array(0)).body!);
    const out = new PassThrough({ highWaterMark: 1 << 20 });
    let remaining = range.length;
    // Forwards the range's bytes; once it has them, cuts the connection (FTP has no ranged RETR).
    void this.with(async (client) => {
      const sink = new Writable({
        write(chunk: Buffer, _encoding, done) {
          const take = chunk.subarray(0, remaining);
          remaining -= take.length;
          const flowing = out.write(take);
          if (remaining === 0) {
            out.end();
            client.close();
            return done();
          }
          if (flowing) done();
          else out.once("drain", () => done());
        },
      });
      try {
        await client.downloadTo(sink, this.objectPath(key), range.offset);
        out.end();
      } catch (error) {
        if (remaining > 0) out.destroy(error as Error);
      }
    }).catch((error: Error) => out.destroy(error));
    return new BodyObject(object, range, Readable.toWeb(out) as unknown as ReadableStream<Uint8Array>);
  }

  async put(key: string, value: PutBody, options: PutOptions = {}): Promise<StoredObject> {
    const checked = CHECKSUMS.find((name) => options[name] !== undefined);
    const checksum = checked ? createHash(checked) : undefined;
    const md5 = createHash("md5");
    let size = 0;
    // The body passes through once, to the server, hashed as it goes.
    const hashing = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        checksum?.update(chunk);
        md5.update(chunk);
        size += chunk.length;
        done(null, chunk);
      },
    });
    const source = value instanceof ReadableStream ? Readable.fromWeb(value as import("node:stream/web").ReadableStream<Uint8Array>) : Readable.from([Buffer.from(await bodyBytes(value))]);
    const body = source.pipe(hashing);
    source.once("error", (error) => hashing.destroy(error));
    const object = await this.with(async (client) => {
      await this.writeAtomically(client, body, this.objectPath(key), () => {
        if (checked && checksum!.digest("hex") !== options[checked]!.toLowerCase()) throw checksumMismatch(checked);
      });
      const etag = md5.digest("hex");
      const stored: StoredObject = { key, size, etag, httpEtag: `"${etag}"`, uploaded: new Date(), customMetadata: options.customMetadata ?? {}, httpMetadata: options.httpMetadata ?? {} };
      await this.writeMeta(client, stored);
      return stored;
    });
    return object;
  }

  async writeMeta(client: Client, object: StoredObject): Promise<void> {
    const meta = { size: object.size, etag: object.etag, uploaded: object.uploaded.toISOString(), customMetadata: object.customMetadata, httpMetadata: object.httpMetadata };
    await this.writeAtomically(client, new TextEncoder().encode(JSON.stringify(meta)), `${this.objectPath(object.key)}.meta.json`);
  }

  async delete(keys: string | string[]): Promise<void> {
    await this.with(async (client) => {
      for (const key of Array.isArray(keys) ? keys : [keys]) {
        for (const path of [`${this.objectPath(key)}.meta.json`, this.objectPath(key)]) {
          await client.remove(path).catch((error: unknown) => {
            if (!isMissing(error)) throw error;
          });
        }
      }
    });
  }

  async createMultipartUpload(key: string): Promise<MultipartUpload> {
    const uploadId = randomUUID();
    await this.with(async (client) => {
      await client.ensureDir(`${this.root}/multipart/${uploadId}`);
      await client.cd("/");
    });
    return new FtpMultipartUpload(this, key, uploadId, `${this.root}/multipart/${uploadId}`);
  }

  resumeMultipartUpload(key: string, uploadId: string): MultipartUpload {
    if (!/^[0-9a-f-]{36}$/.test(uploadId)) throw new Error(`no multipart upload ${uploadId}`);
    return new FtpMultipartUpload(this, key, uploadId, `${this.root}/multipart/${uploadId}`);
  }

  /** Concatenates the parts (appended one by one) into the object, then drops them. */
  async assemble(key: string, dir: string, parts: number[]): Promise<StoredObject> {
    return this.with(async (client) => {
      const temp = `${this.root}/tmp/${randomUUID()}`;
      await client.ensureDir(`${this.root}/tmp`);
      await client.cd("/");
      const md5 = createHash("md5");
      let size = 0;
      for (const [i, part] of parts.entries()) {
        const bytes = await this.readAll(client, `${dir}/${part}`);
        if (!bytes) throw new Error(`part ${part} of ${key} is missing`);
        md5.update(bytes);
        size += bytes.length;
        if (i === 0) await client.uploadFrom(Readable.from([bytes]), temp);
        else await client.appendFrom(Readable.from([bytes]), temp);
      }
      const final = this.objectPath(key);
      await client.ensureDir(final.slice(0, final.lastIndexOf("/")));
      await client.cd("/");
      await client.remove(final).catch(() => undefined);
      await client.rename(temp, final);
      const etag = `${md5.digest("hex")}-${parts.length}`;
      const object: StoredObject = { key, size, etag, httpEtag: `"${etag}"`, uploaded: new Date(), customMetadata: {}, httpMetadata: {} };
      await this.writeMeta(client, object);
      await client.removeDir(dir).catch(() => undefined);
      await client.cd("/");
      return object;
    });
  }

  close(): void {
    for (const client of this.idle.splice(0)) client.close();
  }
}

class FtpMultipartUpload implements MultipartUpload {
  constructor(
    private readonly bucket: FtpBucket,
    readonly key: string,
    readonly uploadId: string,
    private readonly dir: string,
  ) {}

  async uploadPart(partNumber: number, value: PutBody): Promise<{ partNumber: number; etag: string }> {
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > 10_000) throw new Error(`part number ${partNumber} out of range`);
    const bytes = await bodyBytes(value);
    await this.bucket.with(async (client) => {
      const temp = `${this.dir}/.${partNumber}-${randomUUID()}`;
      try {
        await client.uploadFrom(Readable.from([Buffer.from(bytes)]), temp);
      } catch (error) {
        if (isMissing(error)) throw new Error(`multipart upload ${this.uploadId} does not exist (completed or aborted)`);
        throw error;
      }
      await client.remove(`${this.dir}/${partNumber}`).catch(() => undefined);
      await client.rename(temp, `${this.dir}/${partNumber}`);
    });
    return { partNumber, etag: createHash("md5").update(bytes).digest("hex") };
  }

  complete(parts: { partNumber: number; etag: string }[]): Promise<StoredObject> {
    return this.bucket.assemble(
      this.key,
      this.dir,
      [...parts].sort((a, b) => a.partNumber - b.partNumber).map((p) => p.partNumber),
    );
  }

  async abort(): Promise<void> {
    await this.bucket.with(async (client) => {
      await client.removeDir(this.dir).catch(() => undefined);
      await client.cd("/");
    });
  }
}

/** 550: no such file (FTP's answer to a missing path). */
function isMissing(error: unknown): boolean {
  return (error as { code?: number }).code === 550 || /\b550\b/.test(String((error as Error)?.message));
}
