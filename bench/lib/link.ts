import net from "node:net";
import { TokenBucket } from "../../src/agent-node/p2p/token-bucket.js";

/**
 * A network link for benchmarks: a TCP proxy whose connections all share one token bucket per
 * direction (`rate` bytes/s, at most half a second of burst), like an uplink that every host
 * behind it shares. Reading from the far side stops while the bucket is in debt, so TCP's own
 * backpressure slows the sender: nothing gets through faster than the link.
 */
export class LimitedLink {
  bytesDown = 0;
  bytesUp = 0;
  private readonly down: TokenBucket;
  private readonly up: TokenBucket;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(
    private readonly target: { host: string; port: number },
    readonly rateBytesPerSecond: number,
  ) {
    const burst = rateBytesPerSecond / 2;
    this.down = new TokenBucket(rateBytesPerSecond, burst);
    this.up = new TokenBucket(rateBytesPerSecond, burst);
    this.server = net.createServer((client) => this.connect(client));
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  resetCounters(): void {
    this.bytesDown = 0;
    this.bytesUp = 0;
  }

  private connect(client: net.Socket): void {
    const upstream = net.connect(this.target);
    for (const [socket, other] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      this.sockets.add(socket);
      socket.setNoDelay(true);
      socket.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
      // One side closed: the other still gets what the link holds for it (bytes waiting on the
      // bucket), then its end; destroying it here cut the last ~100 KB of a response.
      socket.on("close", (hadError) => {
        this.sockets.delete(socket);
        if (hadError) other.destroy();
        else other.end();
      });
    }
    this.pipe(upstream, client, this.down, (n) => (this.bytesDown += n));
    this.pipe(client, upstream, this.up, (n) => (this.bytesUp += n));
  }

  private pipe(from: net.Socket, to: net.Socket, bucket: TokenBucket, count: (n: number) => void): void {
    from.on("data", (chunk: Buffer) => {
      count(chunk.length);
      const wait = bucket.reserve(chunk.length);
      const flowing = to.write(chunk);
      if (wait > 0 || !flowing) {
        from.pause();
        const resume = () => {
          if (!from.destroyed) from.resume();
        };
        const afterWait = () => (to.writableNeedDrain ? to.once("drain", resume) : resume());
        if (wait > 0) setTimeout(afterWait, wait);
        else to.once("drain", resume);
      }
    });
    from.on("end", () => to.end());
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
