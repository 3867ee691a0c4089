import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { mkdtemp, writeFile, readFile, mkdir } from "node:fs/promises";
import { createHash, randomBytes } from "node:crypto";
import os from "node:os";
import path from "node:path";

export const run = promisify(execFile);

/** Builds test images with umoci into an OCI layout: nothing is downloaded. */
export async function buildImage(options: { layers: number[]; arch?: string; tag?: string; dir?: string }): Promise<{ layout: string; tag: string }> {
  const layout = options.dir ?? path.join(await mkdtemp(path.join(os.tmpdir(), "shoal-img-")), "layout");
  const tag = options.tag ?? "latest";
  const image = `${layout}:${tag}`;
  await run("umoci", ["init", "--layout", layout]).catch(() => undefined);
  await run("umoci", ["new", "--image", image]);
  if (options.arch) await run("umoci", ["config", "--image", image, `--architecture=${options.arch}`, "--os=linux"]);
  const scratch = await mkdtemp(path.join(os.tmpdir(), "shoal-layer-"));
  for (const [i, size] of options.layers.entries()) {
    const file = path.join(scratch, `layer-${i}.bin`);
    await writeFile(file, randomBytes(size));
    await run("umoci", ["insert", "--image", image, file, `/data/layer-${i}.bin`], { maxBuffer: 1 << 24 });
  }
  return { layout, tag };
}

/** An OCI index tagged `tag` over images built for several architectures, in one layout. */
export async function buildMultiArchIndex(archs: string[], tag = "multi"): Promise<{ layout: string; tag: string }> {
  const layout = path.join(await mkdtemp(path.join(os.tmpdir(), "shoal-img-")), "layout");
  const descriptors = [];
  for (const arch of archs) {
    await buildImage({ layers: [4096], arch, tag: arch, dir: layout });
    const index = JSON.parse(await readFile(path.join(layout, "index.json"), "utf8")) as { manifests: { digest: string; size: number; mediaType: string; annotations?: Record<string, string> }[] };
    const entry = index.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === arch)!;
    descriptors.push({ mediaType: entry.mediaType, digest: entry.digest, size: entry.size, platform: { architecture: arch, os: "linux" } });
  }
  const indexBody = JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: descriptors });
  const hex = createHash("sha256").update(indexBody).digest("hex");
  await mkdir(path.join(layout, "blobs/sha256"), { recursive: true });
  await writeFile(path.join(layout, "blobs/sha256", hex), indexBody);
  const top = JSON.parse(await readFile(path.join(layout, "index.json"), "utf8")) as { manifests: unknown[] };
  top.manifests.push({
    mediaType: "application/vnd.oci.image.index.v1+json",
    digest: `sha256:${hex}`,
    size: Buffer.byteLength(indexBody),
    annotations: { "org.opencontainers.image.ref.name": tag },
  });
  await writeFile(path.join(layout, "index.json"), JSON.stringify(top));
  return { layout, tag };
}

export async function skopeo(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run("skopeo", args, { maxBuffer: 1 << 26 });
}

export async function skopeoCopy(src: string, dest: string, extra: string[] = []): Promise<void> {
  await skopeo(["copy", "--src-tls-verify=false", "--dest-tls-verify=false", ...extra, src, dest]);
}

/** Layer digests of an image in an OCI layout (via skopeo inspect --raw). */
export async function layoutManifest(layout: string, tag: string): Promise<{ layers: { digest: string }[]; config: { digest: string } }> {
  const { stdout } = await skopeo(["inspect", "--raw", `oci:${layout}:${tag}`]);
  return JSON.parse(stdout);
}
