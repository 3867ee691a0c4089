import { formatManifestReference, parseImageReference, type ImageReference } from "../../shared/oci/reference.js";
import type { Descriptor } from "../../shared/oci/manifest.js";
import { OciError } from "../../shared/oci/errors.js";
import { AgentClient, type FetchedManifest } from "./agent-client.js";
import { CliError } from "./cli-error.js";

export const DEFAULT_AGENT = "http://127.0.0.1:16000";

/** The platform this host runs, as image indexes name it (`linux/amd64`). */
export function hostPlatform(): string {
  const arch = ({ x64: "amd64", arm64: "arm64", arm: "arm", ppc64: "ppc64le", s390x: "s390x" } as Record<string, string>)[process.arch] ?? process.arch;
  return `linux/${arch}`;
}

/** Parses an image reference for the CLI: bad input is a one-line error with exit code 2. */
export function imageArgument(text: string): ImageReference {
  try {
    return parseImageReference(text);
  } catch (error) {
    throw new CliError(`${JSON.stringify(text)} is not an image reference (repo:tag or repo@sha256:…): ${(error as OciError).message}`, 2);
  }
}

/** The agent to talk to: `--agent`, else the image's host (`localhost:16000/…`), else the local one. */
export function agentFor(image: ImageReference, options: { agent?: string; admin?: string }): AgentClient {
  const registry = options.agent ?? (image.host ? `http://${image.host}` : DEFAULT_AGENT);
  try {
    return new AgentClient(new URL(registry).origin, options.admin ?? AgentClient.defaultAdmin(registry));
  } catch {
    throw new CliError(`${JSON.stringify(registry)} is not an agent URL (e.g. http://127.0.0.1:16000)`, 2);
  }
}

/** The image manifest to use: the manifest itself, or an index's entry for `platform`. */
export async function resolveImage(
  client: AgentClient,
  image: ImageReference,
  platform: string,
): Promise<{ top: FetchedManifest; manifest: FetchedManifest; descriptor: Descriptor }> {
  const reference = formatManifestReference(image.reference);
  const top = await client.manifest(image.name, reference);
  if (top.parsed.kind === "image") {
    return { top, manifest: top, descriptor: { mediaType: top.parsed.mediaType, digest: top.digest, size: top.bytes.length } };
  }
  const [os, arch, variant] = platform.split("/");
  const entry = top.parsed.manifest.manifests.find(
    (m) => m.platform?.os === os && m.platform?.architecture === arch && (variant === undefined || m.platform?.variant === variant),
  );
  if (!entry) {
    const offered = top.parsed.manifest.manifests.map((m) => (m.platform ? `${m.platform.os}/${m.platform.architecture}${m.platform.variant ? `/${m.platform.variant}` : ""}` : "?"));
    throw new CliError(`${image.name}:${reference} has no ${platform} image (it has ${offered.join(", ") || "none"}); pick one with --platform`);
  }
  const manifest = await client.manifest(image.name, entry.digest);
  if (manifest.parsed.kind !== "image") throw new CliError(`${entry.digest} in ${image.name} is a nested index, which this command does not follow`);
  return { top, manifest, descriptor: { mediaType: entry.mediaType, digest: entry.digest, size: entry.size } };
}
