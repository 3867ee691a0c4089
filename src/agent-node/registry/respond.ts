import type { ServerResponse } from "node:http";
import { OciError } from "../../shared/oci/errors.js";

export const API_VERSION_HEADER = { "Docker-Distribution-API-Version": "registry/2.0" };

export function sendError(res: ServerResponse, error: unknown): void {
  const oci = error instanceof OciError ? error : new OciError("UNKNOWN", "internal error");
  if (res.headersSent) {
    res.destroy(error instanceof Error ? error : undefined);
    return;
  }
  const body = JSON.stringify(oci.toBody());
  res.writeHead(oci.status, { ...API_VERSION_HEADER, ...oci.headers, "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
  res.end(body);
}

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { ...API_VERSION_HEADER, ...headers, "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
  res.end(body);
}
