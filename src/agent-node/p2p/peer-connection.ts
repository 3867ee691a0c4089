import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import { FrameDecoder } from "../../shared/p2p/wire/decode.js";
import { encodeFrame, encodePieceParts } from "../../shared/p2p/wire/encode.js";
import { MAX_BLOCK_BYTES, WIRE_ERROR, WireError, type Frame } from "../../shared/p2p/wire/frames.js";
import { blockPool } from "./buffer-pool.js";
import type { Bandwidth } from "./token-bucket.js";
import type { PeerTransport } from "./transport.js";

/**
 * One read buffer for every connection we dial: a read is decoded before the next one is made, and
 * the decoder copies what it keeps (see FrameDecoder.push's `transient`). Without it Node allocates
 * 64 KiB per read outside V8's heap: at 200 MB/s that made V8 run full garbage collections for
 * external memory several times a second (12% of a pulling agent's CPU in perf).
 */
const SHARED_READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

export interface PeerConnectionOptions {
  /** Close a connection that sends nothing for this long (keep-alives count). */
  idleTimeoutMs: number;
  /** Send a keep-alive when we have sent nothing for this long. */
  keepAliveMs: number;
  /** The agent's ingress/egress limits, shared by all its connections. */
  bandwidth?: Bandwidth;
}

/**
 * A TCP connection to a peer speaking the wire protocol: decodes frames as bytes arrive (a bad or
 * oversized frame closes the connection with an error frame), and sends with backpressure.
 * Frames go to the handler set with `onFrames`; until one is set they wait in a bounded inbox, so
 * nothing is lost between the handshake and the handler. Emits "close" (Error | undefined).
 */
export class PeerConnection extends EventEmitter {
  private readonly decoder = new FrameDecoder();
  private closed = false;
  private corked = false;
  private idleTimer: NodeJS.Timeout | undefined;
  private keepAliveTimer: NodeJS.Timeout | undefined;
  bytesSent = 0;
  bytesReceived = 0;
  private handler: ((frame: Frame) => void) | undefined;
  private readonly inbox: Frame[] = [];
  private static readonly INBOX_MAX = 1024;

  /**
   * Dials a peer. On plain TCP each read goes into the rest of the block being received, when one
   * is (the kernel copies it straight into the piece buffer), or into the shared read buffer.
   */
  static dial(transport: PeerTransport, host: string, port: number, timeoutMs: number, options: PeerConnectionOptions): PeerConnection {
    let connection: PeerConnection | undefined;
    const socket = transport.connect(host, port, timeoutMs, {
      buffer: () => connection?.decoder.readTarget() ?? SHARED_READ_BUFFER,
      callback: (n, buffer) => {
        connection?.onData(buffer.subarray(0, n), buffer.buffer === SHARED_READ_BUFFER.buffer);
        return true; // an ingress limit pauses the socket itself
      },
    });
    connection = new PeerConnection(socket, options);
    return connection;
  }

  constructor(
    readonly socket: Socket,
    private readonly options: PeerConnectionOptions,
  ) {
    super();
    socket.setNoDelay(true);
    // Sockets dialled with onread (see dial) emit no "data"; the others (TLS, inbound) do.
    socket.on("data", (chunk: Buffer) => this.onData(chunk, false));
    socket.on("error", (error) => this.close(error));
    socket.on("close", () => this.close());
    this.resetIdle();
    this.resetKeepAlive();
  }

  get remote(): string {
    return `${this.socket.remoteAddress}:${this.socket.remotePort}`;
  }

  /** `transient`: the bytes are in a buffer reused once this returns. */
  private onData(chunk: Uint8Array, transient: boolean): void {
    if (this.closed) return;
    this.bytesReceived += chunk.length;
    this.resetIdle();
    // Ingress limit: stop reading until the bytes are paid for (TCP then slows the sender).
    const wait = this.options.bandwidth?.ingress?.reserve(chunk.length) ?? 0;
    if (wait > 0) {
      this.socket.pause();
      setTimeout(() => {
        if (!this.closed) this.socket.resume();
      }, wait).unref();
    }
    let frames: Frame[];
    try {
      frames = this.decoder.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength), transient);
    } catch (error) {
      this.refuse(WIRE_ERROR.PROTOCOL, (error as Error).message);
      return;
    }
    for (const frame of frames) {
      if (this.closed) return;
      if (frame.type === "keepAlive") continue;
      if (this.handler) this.handler(frame);
      else if (this.inbox.push(frame) > PeerConnection.INBOX_MAX) return this.refuse(WIRE_ERROR.OVERLOADED, "too many frames before the handshake completed");
    }
  }

  /** Where a piece frame's block is decoded to (the receiver's piece buffer), if anywhere: see FrameDecoder. */
  set pieceTarget(target: FrameDecoder["pieceTarget"]) {
    this.decoder.pieceTarget = target;
  }

  /** Whether the next socket read may land in `buffer` (the block being received is in it). */
  mayReadInto(buffer: Uint8Array): boolean {
    return !this.closed && this.decoder.readTarget()?.buffer === buffer.buffer;
  }

  /** Sets where frames go (undefined: hold them), delivering any that are waiting first. */
  onFrames(handler: ((frame: Frame) => void) | undefined): void {
    this.handler = handler;
    while (handler && this.handler === handler && this.inbox.length > 0 && !this.closed) handler(this.inbox.shift()!);
  }

  /**
   * Sends a frame; resolves when the socket can take more (honours 'drain'). `written` is called
   * once, when the socket no longer needs the frame's bytes (written out, or never to be): a
   * piece's block buffer can then be reused.
   */
  async send(frame: Frame, written?: () => void): Promise<void> {
    let called = false;
    const done = () => {
      if (!called) {
        called = true;
        written?.();
      }
    };
    if (this.closed) {
      done();
      throw new WireError("connection closed");
    }
    // A piece goes out as header + block, without copying the block into a frame.
    let parts: Uint8Array[];
    try {
      parts = frame.type === "piece" ? encodePieceParts(frame) : [encodeFrame(frame)];
    } catch (error) {
      done();
      throw error;
    }
    const length = parts.reduce((n, p) => n + p.length, 0);
    if (frame.type === "piece" && this.options.bandwidth?.egress) {
      await this.options.bandwidth.egress.take(length);
      if (this.closed) {
        done();
        throw new WireError("connection closed");
      }
    }
    this.bytesSent += length;
    this.resetKeepAlive();
    let flowing = true;
    this.corkForTurn();
    parts.forEach((part, i) => (flowing = this.socket.write(part, i === parts.length - 1 ? () => done() : undefined)));
    if (!flowing) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = () => {
          this.socket.off("close", onClose);
          resolve();
        };
        const onClose = () => {
          this.socket.off("drain", onDrain);
          reject(new WireError("connection closed"));
        };
        this.socket.once("drain", onDrain);
        this.socket.once("close", onClose);
      });
    }
  }

  /**
   * Sends a block as a piece frame: `read` fills a pooled buffer (or returns undefined when the
   * block is not there: false, nothing sent), which goes back to the pool once the socket wrote it.
   */
  async sendBlock(index: number, begin: number, length: number, read: (into: Buffer) => Promise<Buffer | undefined>): Promise<boolean> {
    const buffer = blockPool.take(MAX_BLOCK_BYTES);
    let data: Buffer | undefined;
    try {
      data = await read(buffer.subarray(0, length));
    } catch (error) {
      blockPool.give(buffer);
      throw error;
    }
    if (!data) {
      blockPool.give(buffer);
      return false;
    }
    await this.send({ type: "piece", index, begin, data }, () => blockPool.give(buffer));
    return true;
  }

  /**
   * Corks the socket until this turn of the event loop ends: what is sent in one turn (a piece's
   * header and block; a have and the requests that follow a verified piece; a batch of rejects)
   * leaves in one writev, one segment and one wake-up of the peer instead of one per frame.
   */
  private corkForTurn(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    process.nextTick(() => {
      this.corked = false;
      this.socket.uncork();
    });
  }

  /** Tells the peer why, then closes. */
  refuse(code: number, message: string): void {
    if (this.closed) return;
    try {
      this.socket.write(encodeFrame({ type: "error", code, message }));
    } catch {
      // closing anyway
    }
    this.socket.end();
    this.close(new WireError(message));
  }

  close(error?: Error): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.idleTimer);
    clearTimeout(this.keepAliveTimer);
    this.socket.destroy();
    this.emit("close", error);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  // Both timers are re-armed with refresh(), not a new timer per read or write (a socket read
  // comes every 64 KiB: at full speed that was thousands of timers a second).
  private resetIdle(): void {
    if (this.idleTimer) return void this.idleTimer.refresh();
    this.idleTimer = setTimeout(() => this.refuse(WIRE_ERROR.PROTOCOL, "idle timeout"), this.options.idleTimeoutMs);
    this.idleTimer.unref();
  }

  private resetKeepAlive(): void {
    if (this.keepAliveTimer) return void this.keepAliveTimer.refresh();
    this.keepAliveTimer = setTimeout(() => {
      if (this.closed) return;
      this.send({ type: "keepAlive" }).catch(() => undefined);
      // refresh() re-arms a timer that fired too: the next keep-alive, if nothing else goes out.
    }, this.options.keepAliveMs);
    this.keepAliveTimer.unref();
  }
}

/** Resolves with the next frame (later ones wait in the inbox), or rejects after `ms` (an opening must come quickly). */
export function nextFrame(connection: PeerConnection, ms: number): Promise<Frame> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new WireError("the peer did not open the connection in time"));
    }, ms);
    const onFrame = (frame: Frame) => {
      connection.onFrames(undefined); // later frames wait for the real handler
      cleanup();
      resolve(frame);
    };
    const onClose = (error?: Error) => {
      cleanup();
      reject(error ?? new WireError("closed before handshake"));
    };
    const cleanup = () => {
      clearTimeout(timer);
      connection.off("close", onClose);
    };
    connection.on("close", onClose);
    connection.onFrames(onFrame);
  });
}
