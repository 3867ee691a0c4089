import { z } from "zod";
import { OciError } from "../../shared/oci/errors.js";
import { concatBytes } from "../../shared/bytes.js";
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, type Page } from "../build-index/paging.js";

/** Reads a request body into memory, refusing more than `maxBytes` (413) before buffering it. */
export async function readBodyCapped(request: Request, maxBytes: number, tooLarge: () => OciError): Promise<Uint8Array> {
  const declared = request.headers.get("Content-Length");
  if (declared !== null && Number(declared) > maxBytes) throw tooLarge();
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  return concatBytes(chunks, size);
}

const PageQuerySchema = z.object({
  n: z
    .string()
    .regex(/^\d+$/, "n must be a non-negative integer")
    .transform(Number)
    .pipe(z.number().max(MAX_PAGE_SIZE, `n may be at most ${MAX_PAGE_SIZE}`))
    .optional(),
  last: z.string().max(512).optional(),
});

export interface PageQuery {
  limit: number;
  last: string | null;
  /** Whether the client asked for a page size (echoed in the next-page link). */
  explicit: boolean;
}

export function parsePageQuery(query: Record<string, string>, invalidCode: "NAME_INVALID" | "UNSUPPORTED"): PageQuery {
  const parsed = PageQuerySchema.safeParse(query);
  if (!parsed.success) {
    throw new OciError(invalidCode, parsed.error.issues.map((i) => i.message).join("; "), { status: 400 });
  }
  return { limit: parsed.data.n ?? DEFAULT_PAGE_SIZE, last: parsed.data.last ?? null, explicit: parsed.data.n !== undefined };
}

/** distribution-spec: `Link: <url?n=<n>&last=<last>>; rel="next"` when more entries follow. */
export function nextPageLink(path: string, page: Page, query: PageQuery): string | undefined {
  const lastItem = page.items[page.items.length - 1];
  if (!page.more || lastItem === undefined) return undefined;
  const params = new URLSearchParams({ n: String(query.limit), last: lastItem });
  return `<${path}?${params.toString()}>; rel="next"`;
}
