import net from "node:net";
import { randomBytes } from "node:crypto";
import { FrameDecoder } from "../../src/shared/p2p/wire/decode.js";
import { encodeFrame } from "../../src/shared/p2p/wire/encode.js";
import { PROTOCOL_ID, PROTOCOL_VERSION, type Frame } from "../../src/shared/p2p/wire/frames.js";
import { Bitfield } from "../../src/shared/p2p/bitfield.js";
import type { Metainfo } from "../../src/shared/p2p/metainfo.js";

/**
 * A hostile peer for tests. It announces itself to the edge's tracker as a seeder of a blob and
 * answers handshakes with a full bitfield, then misbehaves:
 * - "corrupt": answers every request with random bytes (pieces that fail verification);
 * - "garbage": answers the handshake, then sends bytes that are no frame and an oversized length.
 * It records what the agents told it (error frames) so a test can see it was refused.
 */
export class FakePeer {
  readonly peerId = randomBytes(20);
  readonly errors: { code: number; message: string }[] = [];
  connections = 0;
  requestsAnswered = 0;
  private readonly server: net.Server;
  private announceTimer: NodeJS.Timeout | undefined;
  port = 0;

  constructor(
    private readonly mode: "corrupt" | "garbage",
    private readonly metainfo: Metainfo,
  ) {
    this.server = net.createServer((socket) => this.serve(socket));
  }

  async start(edgeUrl: string): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    const announce = async () => {
      const pieceCount = this.metainfo.pieces.length;
      await fetch(`${edgeUrl}/shoal/v1/announce`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          digest: this.metainfo.digest,
          peerId: this.peerId.toString("hex"),
          ip: "127.0.0.1",
          port: this.port,
          zone: "local",
          cluster: "devcluster",
          complete: true,
          have: pieceCount,
          pieceCount,
        }),
      }).catch(() => undefined);
    };
    await announce();
    this.announceTimer = setInterval(() => void announce(), 2_000);
    return this;
  }

  private serve(socket: net.Socket): void {
    this.connections++;
    const decoder = new FrameDecoder();
    const pieceCount = this.metainfo.pieces.length;
    socket.on("error", () => undefined);
    socket.on("data", (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = decoder.push(new Uint8Array(chunk));
      } catch {
        return socket.destroy();
      }
      for (const frame of frames) {
        if (frame.type === "handshake") {
          socket.write(
            encodeFrame({
              type: "handshake",
              version: PROTOCOL_VERSION,
              protocol: PROTOCOL_ID,
              digest: this.metainfo.digest,
              peerId: new Uint8Array(this.peerId),
              pieceCount,
              bitfield: new Uint8Array(Math.ceil(pieceCount / 8)),
              auth: new Uint8Array(0),
            }),
          );
          // No cluster secret: an agent that has one refuses us here (UNAUTHORIZED).
          socket.write(encodeFrame({ type: "bitfield", bitfield: Bitfield.full(pieceCount).bytes }));
          if (this.mode === "garbage") {
            // A frame of an unknown type, then a length far over the cap.
            socket.write(Buffer.from([0, 0, 0, 5, 77, 1, 2, 3, 4]));
            socket.write(Buffer.from([0x7f, 0xff, 0xff, 0xff, 5, 0, 0, 0, 0]));
          }
        } else if (frame.type === "request" && this.mode === "corrupt") {
          this.requestsAnswered++;
          socket.write(encodeFrame({ type: "piece", index: frame.index, begin: frame.begin, data: new Uint8Array(randomBytes(frame.length)) }));
        } else if (frame.type === "error") {
          this.errors.push({ code: frame.code, message: frame.message });
        }
      }
    });
  }

  async stop(): Promise<void> {
    clearInterval(this.announceTimer);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
