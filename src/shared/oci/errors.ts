/**
 * OCI distribution-spec error codes (spec §"Error Codes") with the HTTP status each is sent with.
 * One table, one class: throw `OciError` anywhere, render it in one place (`toBody()`).
 */
export const OCI_ERROR_CODES = {
  BLOB_UNKNOWN: { status: 404, message: "blob unknown to registry" },
  BLOB_UPLOAD_INVALID: { status: 400, message: "blob upload invalid" },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: "blob upload unknown to registry" },
  DIGEST_INVALID: { status: 400, message: "provided digest did not match uploaded content" },
  // 400, as distribution's API documentation gives it for a manifest PUT naming an unknown blob.
  MANIFEST_BLOB_UNKNOWN: { status: 400, message: "manifest references a manifest or blob unknown to registry" },
  MANIFEST_INVALID: { status: 400, message: "manifest invalid" },
  MANIFEST_UNKNOWN: { status: 404, message: "manifest unknown to registry" },
  NAME_INVALID: { status: 400, message: "invalid repository name" },
  NAME_UNKNOWN: { status: 404, message: "repository name not known to registry" },
  SIZE_INVALID: { status: 400, message: "provided length did not match content length" },
  UNAUTHORIZED: { status: 401, message: "authentication required" },
  DENIED: { status: 403, message: "requested access to the resource is denied" },
  UNSUPPORTED: { status: 405, message: "the operation is unsupported" },
  TOOMANYREQUESTS: { status: 429, message: "too many requests" },
  // Not in the spec's table: distribution's catch-all for server faults, so a 500 still has an OCI body.
  UNKNOWN: { status: 500, message: "unknown error" },
} as const;

export type OciErrorCode = keyof typeof OCI_ERROR_CODES;

export interface OciErrorInit {
  /** Overrides the code's default status (e.g. 413 for SIZE_INVALID on an oversized chunk). */
  status?: number;
  detail?: unknown;
  /** Extra response headers (e.g. `Range` on a 416, `WWW-Authenticate` on a 401). */
  headers?: Record<string, string>;
}

export interface OciErrorBody {
  errors: { code: OciErrorCode; message: string; detail?: unknown }[];
}

export class OciError extends Error {
  readonly code: OciErrorCode;
  readonly status: number;
  readonly detail: unknown;
  readonly headers: Record<string, string>;

  constructor(code: OciErrorCode, message?: string, init: OciErrorInit = {}) {
    super(message ?? OCI_ERROR_CODES[code].message);
    this.name = "OciError";
    this.code = code;
    this.status = init.status ?? OCI_ERROR_CODES[code].status;
    this.detail = init.detail;
    this.headers = init.headers ?? {};
  }

  toBody(): OciErrorBody {
    const entry: OciErrorBody["errors"][number] = { code: this.code, message: this.message };
    if (this.detail !== undefined) entry.detail = this.detail;
    return { errors: [entry] };
  }

  toResponse(extraHeaders: Record<string, string> = {}): Response {
    return new Response(JSON.stringify(this.toBody()), {
      status: this.status,
      headers: { "Content-Type": "application/json", ...extraHeaders, ...this.headers },
    });
  }
}

export function isOciErrorBody(value: unknown): value is OciErrorBody {
  return (
    typeof value === "object" &&
    value !== null &&
    Array.isArray((value as OciErrorBody).errors) &&
    (value as OciErrorBody).errors.every((e) => typeof e?.code === "string")
  );
}
