import path from "node:path";
import type { ObjectBucket } from "./bucket.js";
import { FileBucket, sweepTemp } from "./file-bucket.js";
import { S3Bucket } from "./s3-bucket.js";

/**
 * Where the self-hosted edge keeps blobs, metainfo and upload parts (`SHOAL_STORAGE`):
 *   file (default)  files under $SHOAL_HOME/edge-deno/blobs
 *   s3              SHOAL_S3_ENDPOINT, SHOAL_S3_BUCKET, SHOAL_S3_REGION (us-east-1),
 *                   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
 *   ftp             SHOAL_FTP_URL=ftp://user:password@host:21/root
 * Tag indexes, upload state and trackers stay in SQLite files under the state directory.
 */
export async function bucketFromEnv(env: (name: string) => string | undefined, stateDir: string): Promise<{ bucket: ObjectBucket; describe: string }> {
  const kind = env("SHOAL_STORAGE") ?? "file";
  const need = (name: string) => {
    const value = env(name);
    if (!value) throw new Error(`SHOAL_STORAGE=${kind} needs ${name}`);
    return value;
  };
  switch (kind) {
    case "file": {
      const dir = path.join(stateDir, "blobs");
      await sweepTemp(dir);
      return { bucket: new FileBucket(dir), describe: `files in ${dir}` };
    }
    case "s3": {
      const endpoint = need("SHOAL_S3_ENDPOINT");
      const bucket = need("SHOAL_S3_BUCKET");
      return {
        bucket: new S3Bucket({ endpoint, bucket, region: env("SHOAL_S3_REGION") ?? "us-east-1", accessKeyId: need("AWS_ACCESS_KEY_ID"), secretAccessKey: need("AWS_SECRET_ACCESS_KEY") }),
        describe: `S3 bucket ${bucket} at ${endpoint}`,
      };
    }
    case "ftp": {
      const { FtpBucket } = await import("./ftp-bucket.js");
      const url = new URL(need("SHOAL_FTP_URL"));
      return { bucket: new FtpBucket(url), describe: `FTP ${url.host}${url.pathname}` };
    }
    default:
      throw new Error(`SHOAL_STORAGE must be file, s3 or ftp, not ${JSON.stringify(kind)}`);
  }
}
