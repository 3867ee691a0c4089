import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, readdir, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { CliError } from "./cli-error.js";

/** Files as OCI artifact layers: what `shoal put` sends and `shoal get` writes back. */
export const TITLE = "org.opencontainers.image.title";
export const FILES_ARTIFACT_TYPE = "application/vnd.shoal.files.v1";
export const FILE_MEDIA_TYPE = "application/octet-stream";
/** The empty config artifacts use (image-spec: application/vnd.oci.empty.v1+json, `{}`). */
export const EMPTY_CONFIG = {
  mediaType: "application/vnd.oci.empty.v1+json",
  digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
  size: 2,
  data: "e30=",
};

export interface LocalFile {
  /** The name it has in the artifact (and gets back on `shoal get`): relative, with "/" separators. */
  title: string;
  path: string;
}

/** Files named on the command line: a file by its base name, a directory as its files under its own name, "-" spooled from stdin. */
export async function collectFiles(args: string[], stdinName: string): Promise<LocalFile[]> {
  const files: LocalFile[] = [];
  for (const arg of args) {
    if (arg === "-") {
      files.push({ title: stdinName, path: await spoolStdin() });
      continue;
    }
    let info;
    try {
      info = await stat(arg);
    } catch (error) {
      throw new CliError(`cannot read ${arg}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, 2);
    }
    if (info.isDirectory()) {
      const root = path.resolve(arg);
      for (const file of await walk(root)) files.push({ title: [path.basename(root), ...path.relative(root, file).split(path.sep)].join("/"), path: file });
    } else if (info.isFile()) {
      files.push({ title: path.basename(arg), path: path.resolve(arg) });
    } else {
      throw new CliError(`${arg} is neither a file nor a directory`, 2);
    }
  }
  const seen = new Set<string>();
  for (const file of files) {
    if (seen.has(file.title)) throw new CliError(`two files would be named ${file.title} in the artifact`, 2);
    seen.add(file.title);
  }
  if (files.length === 0) throw new CliError("no files to put", 2);
  return files;
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(full)));
    else if (entry.isFile()) out.push(full);
  }
  return out;
}

async function spoolStdin(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "shoal-stdin-"));
  const file = path.join(dir, "stdin");
  await pipeline(process.stdin, createWriteStream(file));
  return file;
}

/** SHA-256 and size of a file, read once. */
export async function hashFile(file: string, onBytes: (n: number) => void = () => undefined): Promise<{ digest: string; size: number }> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
    onBytes((chunk as Buffer).length);
  }
  return { digest: `sha256:${hash.digest("hex")}`, size };
}

/**
 * Where a layer's title may be written under the output directory: relative, no "..", no empty or
 * hidden-control segments. Anything else is refused (an artifact must not write outside the folder).
 */
export function safeTitle(title: string): string {
  const parts = title.split("/");
  if (!title || title.startsWith("/") || parts.some((p) => p === "" || p === "." || p === ".." || /[\0\\]/.test(p))) {
    throw new CliError(`refusing a file name that would leave the output folder: ${JSON.stringify(title.slice(0, 200))}`);
  }
  return parts.join(path.sep);
}
