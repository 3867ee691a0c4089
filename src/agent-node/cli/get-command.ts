import { Command } from "commander";
import { createHash, randomUUID } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { formatManifestReference } from "../../shared/oci/reference.js";
import type { AgentClient } from "./agent-client.js";
import { CliError } from "./cli-error.js";
import { TITLE, hashFile, safeTitle } from "./files.js";
import { agentFor, imageArgument } from "./image-source.js";
import { Progress, formatBytes, type Bar } from "./progress.js";

interface GetFlags {
  output: string;
  agent?: string;
  admin?: string;
}

/** `shoal get REPO:TAG --output DIR`: an artifact's files through the local agent (so through its peers). */
export function getCommand(): Command {
  return new Command("get")
    .description("fetch the files of an artifact (shoal put) through an agent, and so its peers; each verified and written atomically")
    .argument("<ref>", "REPO:TAG or REPO@sha256:… (a host prefix names the agent)")
    .requiredOption("-o, --output <dir>", "folder to write the files into (created if needed)")
    .option("--agent <url>", "the agent's registry URL (default http://127.0.0.1:16000)")
    .option("--admin <url>", "the agent's admin URL (default: registry port + 2)")
    .action(async (ref: string, flags: GetFlags) => {
      await get(ref, flags);
    });
}

async function get(ref: string, flags: GetFlags): Promise<void> {
  const image = imageArgument(ref);
  const client = agentFor(image, flags);
  const before = await client.bytesBySource().catch(() => undefined);
  const manifest = await client.manifest(image.name, formatManifestReference(image.reference));
  if (manifest.parsed.kind !== "image") throw new CliError(`${ref} is an image index, not a file artifact (shoal pull fetches images)`);
  const files = manifest.parsed.manifest.layers.map((layer) => {
    const title = layer.annotations?.[TITLE];
    if (!title) throw new CliError(`${ref} has a layer without a file name (${TITLE}): not a file artifact (shoal pull fetches images)`);
    return { title, target: path.join(path.resolve(flags.output), safeTitle(title)), digest: layer.digest, size: layer.size };
  });
  const progress = new Progress();
  let kept = 0;
  try {
    for (const file of files) {
      if (await alreadyThere(file.target, file.digest, file.size)) {
        kept += file.size;
        continue;
      }
      const bar = progress.bar(file.title, file.size);
      await fetchFile(client, image.name, file, bar);
      bar.done();
    }
  } finally {
    progress.stop();
  }
  const after = await client.bytesBySource().catch(() => undefined);
  const total = files.reduce((n, f) => n + f.size, 0);
  process.stdout.write(`got ${files.length} file(s), ${formatBytes(total)}, into ${path.resolve(flags.output)}${kept ? ` (${formatBytes(kept)} already there and verified)` : ""}\n`);
  if (before && after) {
    process.stdout.write(`  the agent fetched ${formatBytes(after.peer - before.peer)} from peers and ${formatBytes(after.origin - before.origin)} from the edge\n`);
  }
}

/** A file already in place counts only if its bytes hash to the digest (a damaged copy is fetched again). */
async function alreadyThere(target: string, digest: string, size: number): Promise<boolean> {
  const info = await stat(target).catch(() => undefined);
  if (!info?.isFile() || info.size !== size) return false;
  return (await hashFile(target)).digest === digest;
}

/**
 * Streams a blob from the agent to a temporary name beside the target, hashing it, and renames it
 * into place only when it matches. A mismatch means the agent's copy is bad: the agent is asked to
 * check its store (it drops a damaged blob) and the file is fetched once more.
 */
async function fetchFile(client: AgentClient, name: string, file: { title: string; target: string; digest: string; size: number }, bar: Bar): Promise<void> {
  await mkdir(path.dirname(file.target), { recursive: true }).catch((error: NodeJS.ErrnoException) => {
    throw new CliError(`cannot create ${path.dirname(file.target)}: ${error.code ?? error.message}`);
  });
  for (let attempt = 1; ; attempt++) {
    const temp = path.join(path.dirname(file.target), `.${path.basename(file.target)}.shoal-${randomUUID().slice(0, 8)}`);
    const hash = createHash("sha256");
    let received = 0;
    try {
      await pipeline(
        await client.blob(name, file.digest),
        new Transform({
          transform(chunk: Buffer, _encoding, done) {
            hash.update(chunk);
            received += chunk.length;
            bar.add(chunk.length);
            done(null, chunk);
          },
        }),
        createWriteStream(temp),
      );
      if (`sha256:${hash.digest("hex")}` === file.digest && received === file.size) {
        await rename(temp, file.target);
        return;
      }
    } catch (error) {
      await rm(temp, { force: true });
      if (error instanceof CliError) throw error;
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOSPC") throw new CliError(`no space left on the device holding ${path.dirname(file.target)} (writing ${file.title})`);
      if (attempt >= 2) throw new CliError(`${file.title}: ${(error as Error).message}`);
      continue;
    }
    await rm(temp, { force: true });
    if (attempt >= 2) throw new CliError(`${file.title}: the agent sent bytes that do not match ${file.digest}, twice`);
    // The agent's stored copy is damaged: have it check and drop it, then fetch again.
    await client.verifyStored(file.digest).catch(() => undefined);
    bar.add(-received);
  }
}

