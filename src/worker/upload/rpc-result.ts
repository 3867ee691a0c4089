import { OciError, type OciErrorCode } from "../../shared/oci/errors.js";

/**
 * Durable Object RPC loses an Error's own fields on the way back, so objects return their OCI
 * failures as data and the Worker turns them back into OciError.
 */
export type RpcResult<T> = { ok: true; value: T } | { ok: false; error: RpcError };

export interface RpcError {
  code: OciErrorCode;
  message: string;
  status: number;
  detail?: unknown;
  headers?: Record<string, string>;
}

export async function asRpcResult<T>(run: () => Promise<T>): Promise<RpcResult<T>> {
  try {
    return { ok: true, value: await run() };
  } catch (error) {
    if (error instanceof OciError) {
      const e: RpcError = { code: error.code, message: error.message, status: error.status, headers: error.headers };
      if (error.detail !== undefined) e.detail = error.detail;
      return { ok: false, error: e };
    }
    throw error;
  }
}

export function unwrap<T>(result: RpcResult<T>): T {
  if (result.ok) return result.value;
  const { code, message, status, detail, headers } = result.error;
  throw new OciError(code, message, { status, detail, headers: headers ?? {} });
}
