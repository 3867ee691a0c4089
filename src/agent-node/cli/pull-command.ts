import { Command } from "commander";
import path from "node:path";
import type { Descriptor } from "../../shared/oci/manifest.js";
import { OciLayoutWriter } from "./oci-layout.js";
import { Progress, formatBytes } from "./progress.js";
import { agentFor, hostPlatform, imageArgument, resolveImage } from "./image-source.js";

interface PullFlags {
  output: string;
  agent?: string;
  admin?: string;
  platform: string;
  refName?: string;
  concurrency: string;
}

/** `shoal pull IMAGE --output DIR`: an image through the local agent (so through its peers) into an OCI layout. */
export function pullCommand(): Command {
  return new Command("pull")
    .description("fetch an image through an agent (and so its peers) into an OCI image layout")
    .argument("<image>", "repo:tag or repo@sha256:…; a host prefix (localhost:16000/repo:tag) names the agent")
    .requiredOption("-o, --output <dir>", "OCI image layout directory (created if needed; skopeo/podman read it as oci:DIR:TAG)")
    .option("--agent <url>", "the agent's registry URL (default http://127.0.0.1:16000)")
    .option("--admin <url>", "the agent's admin URL, for the bytes-by-source summary (default: registry port + 2)")
    .option("--platform <os/arch>", "which image of a multi-platform index", hostPlatform())
    .option("--ref-name <name>", "name in the layout's index.json (default: the tag, or latest)")
    .option("--concurrency <n>", "blobs fetched at once", "3")
    .action(async (imageText: string, flags: PullFlags) => {
      await pull(imageText, flags);
    });
}

async function pull(imageText: string, flags: PullFlags): Promise<void> {
  const image = imageArgument(imageText);
  const client = agentFor(image, flags);
  const before = await client.bytesBySource().catch(() => undefined);
  const { manifest, descriptor } = await resolveImage(client, image, flags.platform);
  const layout = new OciLayoutWriter(path.resolve(flags.output));
  await layout.init();
  if (manifest.parsed.kind !== "image") throw new Error("unreachable: resolveImage returns an image manifest");
  const blobs: Descriptor[] = [manifest.parsed.manifest.config, ...manifest.parsed.manifest.layers];
  const total = blobs.reduce((n, b) => n + b.size, 0);

  const progress = new Progress();
  let skipped = 0;
  const queue = [...blobs.entries()];
  const worker = async () => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      const [i, blob] = next;
      if (await layout.has(blob.digest, blob.size)) {
        skipped += blob.size;
        continue;
      }
      const bar = progress.bar(i === 0 ? "config" : `layer ${i} ${blob.digest.slice(7, 19)}`, blob.size);
      await layout.writeBlob(blob.digest, blob.size, await client.blob(image.name, blob.digest), (n) => bar.add(n));
      bar.done();
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Number(flags.concurrency) || 3) }, worker));
  } finally {
    progress.stop();
  }
  await layout.writeBytes(manifest.digest, manifest.bytes);
  const refName = flags.refName ?? (image.reference.kind === "tag" ? image.reference.tag : "latest");
  await layout.tag(descriptor, refName);

  const after = await client.bytesBySource().catch(() => undefined);
  process.stdout.write(`pulled ${image.name}@${manifest.digest} into ${layout.dir} as ${refName}: ${blobs.length} blobs, ${formatBytes(total)}\n`);
  if (skipped > 0) process.stdout.write(`  ${formatBytes(skipped)} already in the layout\n`);
  if (before && after) {
    const peers = after.peer - before.peer;
    const edge = after.origin - before.origin;
    const fetched = total - skipped;
    process.stdout.write(
      `  the agent fetched ${formatBytes(peers)} from peers and ${formatBytes(edge)} from the edge; ${formatBytes(Math.max(0, fetched - peers - edge))} came from its store\n`,
    );
  } else {
    process.stdout.write(`  (bytes by source unknown: the agent's admin server at ${client.admin} did not answer)\n`);
  }
}
