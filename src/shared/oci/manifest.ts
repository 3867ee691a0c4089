import { z } from "zod";
import { OciError } from "./errors.js";
import { DIGEST_GRAMMAR } from "./digest.js";
import { MEDIA_TYPE, bareMediaType, isIndexMediaType, isManifestMediaType, type ManifestMediaType } from "./media-types.js";

/** Manifests the registry accepts: 4 MiB, the least the distribution-spec asks registries to take. */
export const MANIFEST_MAX_BYTES = 4 * 1024 * 1024;

const MEDIA_TYPE_GRAMMAR = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

export const DescriptorSchema = z.object({
  mediaType: z.string().regex(MEDIA_TYPE_GRAMMAR, "invalid media type"),
  digest: z.string().regex(DIGEST_GRAMMAR, "invalid digest"),
  size: z.number().int().nonnegative(),
  urls: z.array(z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  data: z.string().optional(),
  artifactType: z.string().optional(),
  platform: z
    .object({
      architecture: z.string(),
      os: z.string(),
      "os.version": z.string().optional(),
      "os.features": z.array(z.string()).optional(),
      variant: z.string().optional(),
    })
    .optional(),
});
export type Descriptor = z.infer<typeof DescriptorSchema>;

export const ImageManifestSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  config: DescriptorSchema,
  layers: z.array(DescriptorSchema),
  subject: DescriptorSchema.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type ImageManifest = z.infer<typeof ImageManifestSchema>;

export const IndexSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  manifests: z.array(DescriptorSchema),
  subject: DescriptorSchema.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type Index = z.infer<typeof IndexSchema>;

export type ParsedManifest =
  | { kind: "image"; mediaType: ManifestMediaType; manifest: ImageManifest }
  | { kind: "index"; mediaType: ManifestMediaType; manifest: Index };

/** What the registry keeps about a manifest besides its bytes (for referrers and listings). */
export interface ManifestSummary {
  mediaType: ManifestMediaType;
  /** Blobs the manifest references (config and layers). */
  blobs: string[];
  /** Manifests an index references. */
  children: string[];
  subject?: string;
  artifactType?: string;
  annotations?: Record<string, string>;
}

/**
 * Validates manifest bytes pushed with `contentType` (image-spec manifest.md, image-index.md;
 * Docker schema 2). Throws MANIFEST_INVALID with the reason.
 */
export function parseManifest(bytes: Uint8Array, contentType: string | null | undefined): ParsedManifest {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes));
  } catch {
    throw new OciError("MANIFEST_INVALID", "manifest is not valid UTF-8 JSON");
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new OciError("MANIFEST_INVALID", "manifest must be a JSON object");
  }
  const declared = (json as { mediaType?: unknown }).mediaType;
  let mediaType = bareMediaType(contentType);
  if (!mediaType && typeof declared === "string") mediaType = declared;
  if (!isManifestMediaType(mediaType)) {
    throw new OciError("MANIFEST_INVALID", `unsupported manifest media type ${JSON.stringify(mediaType)}`, {
      detail: { accepted: [MEDIA_TYPE.OCI_MANIFEST, MEDIA_TYPE.OCI_INDEX, MEDIA_TYPE.DOCKER_MANIFEST, MEDIA_TYPE.DOCKER_MANIFEST_LIST] },
    });
  }
  if (declared !== undefined && declared !== mediaType) {
    // image-spec: when mediaType is present it MUST match the Content-Type the manifest is pushed with.
    throw new OciError("MANIFEST_INVALID", `manifest mediaType ${JSON.stringify(declared)} does not match Content-Type ${mediaType}`);
  }
  if (isIndexMediaType(mediaType)) {
    const result = IndexSchema.safeParse(json);
    if (!result.success) throw invalid(result.error);
    return { kind: "index", mediaType, manifest: result.data };
  }
  const result = ImageManifestSchema.safeParse(json);
  if (!result.success) throw invalid(result.error);
  if (mediaType === MEDIA_TYPE.DOCKER_MANIFEST && declared === undefined) {
    throw new OciError("MANIFEST_INVALID", "a Docker schema 2 manifest must declare its mediaType");
  }
  return { kind: "image", mediaType, manifest: result.data };
}

export function summarizeManifest(parsed: ParsedManifest): ManifestSummary {
  const m = parsed.manifest;
  const summary: ManifestSummary = { mediaType: parsed.mediaType, blobs: [], children: [] };
  if (parsed.kind === "image") {
    summary.blobs = [parsed.manifest.config.digest, ...parsed.manifest.layers.map((l) => l.digest)];
    // image-spec: artifactType, else the config's media type, identifies an artifact.
    summary.artifactType = parsed.manifest.artifactType ?? parsed.manifest.config.mediaType;
  } else {
    summary.children = parsed.manifest.manifests.map((d) => d.digest);
    if (parsed.manifest.artifactType) summary.artifactType = parsed.manifest.artifactType;
  }
  if (m.subject) summary.subject = m.subject.digest;
  if (m.annotations) summary.annotations = m.annotations;
  return summary;
}

function invalid(error: z.ZodError): OciError {
  const issues = error.issues.slice(0, 10).map((i) => ({ path: i.path.join("."), message: i.message }));
  const first = issues[0];
  return new OciError("MANIFEST_INVALID", first ? `manifest invalid at ${first.path || "(root)"}: ${first.message}` : "manifest invalid", {
    detail: { issues },
  });
}
