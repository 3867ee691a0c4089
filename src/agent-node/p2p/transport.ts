import net from "node:net";
import tls from "node:tls";
import { readFile } from "node:fs/promises";

/**
 * How peer connections are carried: plain TCP, or TLS with both sides presenting a certificate from
 * the cluster's CA (mutual verification). The wire protocol and the cluster-secret handshake run the
 * same on either.
 */
export interface PeerTransport {
  readonly secure: boolean;
  /**
   * Opens a connection; it is destroyed with an error if not ready (TLS: verified) in `timeoutMs`.
   * `onread` (plain TCP only; TLS ignores it) has reads land in buffers of the caller's choosing
   * instead of a new Buffer per read and "data" events.
   */
  connect(host: string, port: number, timeoutMs: number, onread?: net.OnReadOpts): net.Socket;
  createServer(onConnection: (socket: net.Socket) => void): net.Server;
}

export interface PeerTlsFiles {
  /** PEM files: this agent's certificate and key, and the CA that signs every agent's certificate. */
  cert: string;
  key: string;
  ca: string;
  /** Also check that a peer's certificate names the address we dialled (IP SAN). */
  verifyPeerAddress: boolean;
}

export const plainTransport: PeerTransport = {
  secure: false,
  connect(host, port, timeoutMs, onread) {
    const socket = net.connect({ host, port, ...(onread ? { onread } : {}) });
    armConnectTimeout(socket, "connect", timeoutMs);
    return socket;
  },
  createServer: (onConnection) => net.createServer(onConnection),
};

export async function tlsTransport(files: PeerTlsFiles): Promise<PeerTransport> {
  const read = async (what: string, file: string) => {
    try {
      return await readFile(file);
    } catch (error) {
      throw new Error(`cannot read the peer TLS ${what} ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  };
  const [cert, key, ca] = await Promise.all([read("certificate", files.cert), read("key", files.key), read("CA", files.ca)]);
  // Fails now, at start, on a key that does not match its certificate or a file that is no PEM.
  const context = { cert, key, ca, minVersion: "TLSv1.3" as const };
  tls.createSecureContext(context);
  return {
    secure: true,
    connect(host, port, timeoutMs) {
      const socket = tls.connect({
        ...context,
        host,
        port,
        rejectUnauthorized: true,
        checkServerIdentity: files.verifyPeerAddress ? tls.checkServerIdentity : () => undefined,
      });
      armConnectTimeout(socket, "secureConnect", timeoutMs);
      return socket;
    },
    createServer: (onConnection) => tls.createServer({ ...context, requestCert: true, rejectUnauthorized: true, handshakeTimeout: 5_000 }, onConnection),
  };
}

function armConnectTimeout(socket: net.Socket, readyEvent: string, timeoutMs: number): void {
  socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`${readyEvent} timeout`)));
  socket.once(readyEvent, () => socket.setTimeout(0));
}
