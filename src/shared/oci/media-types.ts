/** Media types of the manifests Shoal stores (image-spec media-types.md; Docker schema 2). */
export const MEDIA_TYPE = {
  OCI_MANIFEST: "application/vnd.oci.image.manifest.v1+json",
  OCI_INDEX: "application/vnd.oci.image.index.v1+json",
  DOCKER_MANIFEST: "application/vnd.docker.distribution.manifest.v2+json",
  DOCKER_MANIFEST_LIST: "application/vnd.docker.distribution.manifest.list.v2+json",
  OCI_EMPTY: "application/vnd.oci.empty.v1+json",
  OCI_LAYER_TAR: "application/vnd.oci.image.layer.v1.tar",
  OCI_CONFIG: "application/vnd.oci.image.config.v1+json",
} as const;

export const MANIFEST_MEDIA_TYPES = [
  MEDIA_TYPE.OCI_MANIFEST,
  MEDIA_TYPE.OCI_INDEX,
  MEDIA_TYPE.DOCKER_MANIFEST,
  MEDIA_TYPE.DOCKER_MANIFEST_LIST,
] as const;

export type ManifestMediaType = (typeof MANIFEST_MEDIA_TYPES)[number];

export function isManifestMediaType(value: string): value is ManifestMediaType {
  return (MANIFEST_MEDIA_TYPES as readonly string[]).includes(value);
}

export function isIndexMediaType(value: string): boolean {
  return value === MEDIA_TYPE.OCI_INDEX || value === MEDIA_TYPE.DOCKER_MANIFEST_LIST;
}

/** `Content-Type: application/vnd.oci.image.manifest.v1+json; charset=utf-8` → the bare media type. */
export function bareMediaType(contentType: string | null | undefined): string {
  return (contentType ?? "").split(";")[0]!.trim().toLowerCase();
}
