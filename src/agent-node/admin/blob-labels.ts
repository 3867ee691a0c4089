import { parseManifest } from "../../shared/oci/manifest.js";
import type { BlobLabel } from "./status.js";

/** Blobs labelled, and images counted, at most (the oldest are forgotten first). */
const MAX_ENTRIES = 2_000;

/**
 * Which image and layer each blob belongs to, learnt from the manifests this agent's registry
 * serves, and how often each image was pulled: what the admin page's swarm rows are named by.
 * Memory only; a manifest is parsed once per digest.
 */
export class BlobLabels {
  private readonly labels = new Map<string, BlobLabel>();
  private readonly parsed = new Set<string>();
  private readonly pulls = new Map<string, number>();

  /** A manifest was served for `image` (a GET): counts the pull; `read` gives its bytes the first time it is seen. */
  async noteManifest(image: string, manifestDigest: string, mediaType: string | undefined, read: () => Promise<Uint8Array>): Promise<void> {
    bump(this.pulls, image, (this.pulls.get(image) ?? 0) + 1);
    if (this.parsed.has(`${image}@${manifestDigest}`)) return;
    bump(this.parsed, `${image}@${manifestDigest}`);
    const manifest = parseManifest(await read(), mediaType);
    if (manifest.kind !== "image") return;
    const { config, layers } = manifest.manifest;
    bump(this.labels, config.digest, { image, part: "config", size: config.size });
    layers.forEach((layer, i) => bump(this.labels, layer.digest, { image, part: `layer ${i + 1} of ${layers.length}`, size: layer.size }));
  }

  label(digest: string): BlobLabel | undefined {
    return this.labels.get(digest);
  }

  pullCounts(): { image: string; count: number }[] {
    return [...this.pulls].map(([image, count]) => ({ image, count })).sort((a, b) => b.count - a.count);
  }
}

/** Sets a key as the newest, dropping the oldest past MAX_ENTRIES. */
function bump<V>(into: Map<string, V> | Set<string>, key: string, value?: V): void {
  into.delete(key);
  if (into instanceof Map) into.set(key, value as V);
  else into.add(key);
  if (into.size > MAX_ENTRIES) into.delete(into.keys().next().value!);
}
