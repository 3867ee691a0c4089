import { request } from "undici";

/**
 * A chunked blob upload by the distribution API (POST, PATCH with Content-Range, PUT ?digest=),
 * the same way against Shoal's edge and against distribution: a chunk must fit the edge's limit.
 */
export const pushChunked = {
  async start(base: string, name: string) {
    const started = await request(`${base}/v2/${name}/blobs/uploads/`, { method: "POST" });
    await started.body.dump();
    if (started.statusCode !== 202) throw new Error(`POST ${base}: ${started.statusCode}`);
    let location = new URL(String(started.headers.location), base).toString();
    let offset = 0;
    return {
      async append(chunk: Uint8Array): Promise<void> {
        const res = await request(location, {
          method: "PATCH",
          body: chunk,
          headers: { "content-type": "application/octet-stream", "content-range": `${offset}-${offset + chunk.length - 1}`, "content-length": String(chunk.length) },
        });
        const text = await res.body.text();
        if (res.statusCode !== 202) throw new Error(`PATCH ${base} at ${offset}: ${res.statusCode} ${text.slice(0, 300)}`);
        offset += chunk.length;
        location = new URL(String(res.headers.location), base).toString();
      },
      async finish(digest: string): Promise<void> {
        const url = new URL(location);
        url.searchParams.set("digest", digest);
        const res = await request(url, { method: "PUT", headers: { "content-length": "0" } });
        const text = await res.body.text();
        if (res.statusCode !== 201) throw new Error(`PUT ${base}: ${res.statusCode} ${text.slice(0, 300)}`);
      },
    };
  },
};
