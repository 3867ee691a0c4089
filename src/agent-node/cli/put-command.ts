import { Command } from "commander";
import { stat } from "node:fs/promises";
import { parseSize } from "../config.js";
import { authorizationHeader } from "../../shared/auth/credentials.js";
import { formatManifestReference } from "../../shared/oci/reference.js";
import { CliError } from "./cli-error.js";
import { EMPTY_CONFIG, FILES_ARTIFACT_TYPE, FILE_MEDIA_TYPE, TITLE, collectFiles, hashFile } from "./files.js";
import { imageArgument } from "./image-source.js";
import { Progress, formatBytes } from "./progress.js";
import { PushClient } from "./push-client.js";

interface PutFlags {
  to: string;
  token?: string;
  artifactType: string;
  chunkSize: string;
  stdinName: string;
}

/** `shoal put FILE… --to EDGE/REPO:TAG`: files as one OCI artifact, in resumable chunks. */
export function putCommand(): Command {
  return new Command("put")
    .description("upload files (or a directory, or - for stdin) through the edge as an OCI artifact; prints its manifest digest")
    .argument("<files...>", "files, directories (their files, under the directory's name) or - (standard input)")
    .requiredOption("--to <ref>", "where: EDGE/REPO:TAG, e.g. localhost:15000/ml/model:v3 (or https://edge.example.com/ml/model:v3)")
    .option("--token <user:token>", "credentials for an edge with SHOAL_PUSH_TOKENS (default: $SHOAL_TOKEN)")
    .option("--artifact-type <type>", "the artifact's type", FILES_ARTIFACT_TYPE)
    .option("--chunk-size <size>", "bytes per upload request (the edge's limit caps it)", "64MiB")
    .option("--stdin-name <name>", "the file name for data read from standard input", "stdin")
    .action(async (args: string[], flags: PutFlags) => {
      await put(args, flags);
    });
}

/** `localhost:15000/ml/model:v3` or `https://edge/ml/model:v3` → the edge's base URL and the repository reference. */
export function parseTarget(text: string): { base: string; name: string; tag: string } {
  let rest = text;
  let scheme: string | undefined;
  const match = /^(https?):\/\//.exec(text);
  if (match) {
    scheme = match[1];
    rest = text.slice(match[0].length);
  }
  const image = imageArgument(rest);
  if (!image.host) throw new CliError(`--to needs the edge's host: EDGE/REPO:TAG, e.g. localhost:15000/${rest}`, 2);
  if (image.reference.kind !== "tag") throw new CliError("--to takes a tag (REPO:TAG), not a digest", 2);
  const local = /^(localhost|127\.|\[::1\])/.test(image.host);
  return { base: `${scheme ?? (local ? "http" : "https")}://${image.host}`, name: image.name, tag: formatManifestReference(image.reference) };
}

async function put(args: string[], flags: PutFlags): Promise<void> {
  const target = parseTarget(flags.to);
  let chunkBytes: number;
  try {
    chunkBytes = parseSize(flags.chunkSize);
  } catch (error) {
    throw new CliError(`--chunk-size: ${(error as Error).message}`, 2);
  }
  const token = flags.token ?? process.env.SHOAL_TOKEN;
  const client = new PushClient(target.base, token ? authorizationHeader(token) : undefined);
  const files = await collectFiles(args, flags.stdinName);

  const progress = new Progress();
  try {
    const layers = [];
    for (const file of files) {
      const hashing = progress.bar(`hashing ${file.title}`, (await stat(file.path)).size, { transient: true });
      const { digest, size } = await hashFile(file.path, (n) => hashing.add(n));
      hashing.done();
      layers.push({ ...file, digest, size });
    }
    await client.putSmallBlob(target.name, EMPTY_CONFIG.digest, new TextEncoder().encode("{}"));
    let sent = 0;
    for (const layer of layers) {
      const bar = progress.bar(layer.title, layer.size);
      sent += await client.putFileBlob(target.name, layer.digest, layer.path, layer.size, { chunkBytes, onBytes: (n) => bar.add(n) });
      bar.done();
    }
    const manifest = {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      artifactType: flags.artifactType,
      config: EMPTY_CONFIG,
      layers: layers.map((l) => ({ mediaType: FILE_MEDIA_TYPE, digest: l.digest, size: l.size, annotations: { [TITLE]: l.title } })),
      annotations: { "org.opencontainers.image.created": new Date().toISOString() },
    };
    const bytes = new TextEncoder().encode(JSON.stringify(manifest));
    const digest = await client.putManifest(target.name, target.tag, bytes, manifest.mediaType);
    progress.stop();
    const total = layers.reduce((n, l) => n + l.size, 0);
    process.stderr.write(`put ${layers.length} file(s), ${formatBytes(total)} (${sentSummary(sent, total)}) as ${target.name}:${target.tag}\n`);
    process.stdout.write(`${digest}\n`);
  } finally {
    progress.stop();
  }
}

/** What the summary says about the bytes that went up: all, some (the edge had the rest), none. */
export function sentSummary(sent: number, total: number): string {
  if (sent >= total) return `${formatBytes(sent)} sent`;
  if (sent === 0) return "the edge had all of it: nothing sent";
  return `${formatBytes(sent)} sent, the edge had the other ${formatBytes(total - sent)}`;
}
