import { digestAlgorithm, digestHex, type Digest } from "../../shared/oci/digest.js";
import { MetainfoSchema, type Metainfo } from "../../shared/p2p/metainfo.js";

/** Metainfo in R2 beside the blobs (`metainfo/<alg>/<hex>.json`): immutable, strongly consistent. */
export class MetainfoStore {
  constructor(private readonly bucket: R2Bucket) {}

  static key(digest: Digest): string {
    return `metainfo/${digestAlgorithm(digest)}/${digestHex(digest)}.json`;
  }

  async get(digest: Digest): Promise<Metainfo | null> {
    const object = await this.bucket.get(MetainfoStore.key(digest));
    if (!object) return null;
    return MetainfoSchema.parse(await object.json());
  }

  async put(metainfo: Metainfo): Promise<void> {
    await this.bucket.put(MetainfoStore.key(metainfo.digest as Digest), JSON.stringify(metainfo), {
      httpMetadata: { contentType: "application/json" },
    });
  }
}
