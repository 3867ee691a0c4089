import net from "node:net";
import { randomBytes } from "node:crypto";
import { FrameDecoder } from "../../src/shared/p2p/wire/decode.js";
import { encodeFrame } from "../../src/shared/p2p/wire/encode.js";
import { PROTOCOL_ID, PROTOCOL_VERSION, type Frame, type Handshake } from "../../src/shared/p2p/wire/frames.js";
import { clusterKey, endpoint, newNonce, proof, splitResponderAuth, verifyProof } from "../../src/shared/p2p/auth.js";

/** A raw peer for tests: sends frames or bytes, collects frames, notices the close. */
export class WireClient {
  readonly frames: Frame[] = [];
  closed = false;
  private readonly decoder = new FrameDecoder();
  private waiters: (() => void)[] = [];

  private constructor(readonly socket: net.Socket) {
    socket.on("data", (chunk: Buffer) => {
      try {
        this.frames.push(...this.decoder.push(new Uint8Array(chunk)));
      } catch {
        socket.destroy();
      }
      this.wake();
    });
    socket.on("close", () => {
      this.closed = true;
      this.wake();
    });
    socket.on("error", () => undefined);
  }

  static connect(port: number): Promise<WireClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, "127.0.0.1", () => resolve(new WireClient(socket)));
      socket.once("error", reject);
    });
  }

  readonly peerId = new Uint8Array(randomBytes(20));
  private nonce: Uint8Array = new Uint8Array(0);

  /** Sends a handshake; with `withNonce`, one that asks for cluster authentication. */
  handshake(digest: string, pieceCount: number, withNonce = false): void {
    this.nonce = withNonce ? newNonce() : new Uint8Array(0);
    this.send({
      type: "handshake",
      version: PROTOCOL_VERSION,
      protocol: PROTOCOL_ID,
      digest,
      peerId: this.peerId,
      pieceCount,
      bitfield: new Uint8Array(Math.ceil(pieceCount / 8)),
      auth: this.nonce,
    });
  }

  /**
   * The initiator's side of cluster authentication with `secret` (right or wrong): handshake with a
   * nonce, wait for the responder's, answer with our proof. Returns whether the responder's proof
   * verified with our secret.
   */
  async authenticate(digest: string, pieceCount: number, secret: string): Promise<boolean> {
    this.handshake(digest, pieceCount, true);
    const frames = await this.until((f) => f.some((x) => x.type === "handshake" || x.type === "error"));
    const reply = frames.find((f): f is Handshake => f.type === "handshake");
    if (!reply) return false;
    const key = clusterKey(secret);
    const answer = splitResponderAuth(reply.auth);
    const transcript = { digest, initiatorNonce: this.nonce, responderNonce: answer?.nonce ?? new Uint8Array(32), initiatorId: this.peerId, responderId: reply.peerId, responderEndpoint: endpoint(this.socket.remoteAddress, this.socket.remotePort) };
    this.send({ type: "auth", proof: proof(key, "initiator", transcript) });
    return answer !== undefined && verifyProof(key, "responder", transcript, answer.proof);
  }

  send(frame: Frame): void {
    this.socket.write(encodeFrame(frame));
  }

  private wake(): void {
    this.waiters.splice(0).forEach((w) => w());
  }

  /** Waits until `predicate` holds for the frames so far (or the socket closes). */
  async until(predicate: (frames: Frame[]) => boolean, ms = 5_000): Promise<Frame[]> {
    const deadline = Date.now() + ms;
    while (!predicate(this.frames)) {
      if (this.closed) break;
      if (Date.now() > deadline) throw new Error(`timed out; frames: ${this.frames.map((f) => f.type).join(",")}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
    return this.frames;
  }

  close(): void {
    this.socket.destroy();
  }
}
