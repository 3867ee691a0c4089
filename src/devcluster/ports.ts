import net from "node:net";

/**
 * Where free ports are looked for: below Linux's ephemeral range (32768–60999 by default), from
 * which the kernel takes the local port of every outgoing connection and of every `listen(0)`. A
 * port chosen there can be taken by a connection between the check and the server's own bind (a
 * busy test run lost an agent to EADDRINUSE that way).
 */
const FROM = 20_000;
const TO = 32_767;
/**
 * Test files that run at once (vitest's workers, VITEST_POOL_ID 1, 2, …) take ports from slices
 * of their own, and a process hands its slice out in turn from a random start, so two servers
 * about to start never get the same port, whether in one process or in two.
 */
const SLICES = 8;
const SLICE = Math.floor((TO - FROM + 1) / SLICES);
const sliceStart = FROM + (Number(process.env.VITEST_POOL_ID ?? 0) % SLICES) * SLICE;
let cursor = Math.floor(Math.random() * SLICE);

/**
 * N distinct free ports, checked on every address (agents listen for peers on 0.0.0.0). All are
 * held open until every one is chosen, so callers that start several servers at once do not get
 * the same port twice.
 */
export async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let attempt = 0; servers.length < n; attempt++) {
      // A slice whose every port is taken: the kernel's choice after all.
      const port = attempt < SLICE ? sliceStart + (cursor++ % SLICE) : 0;
      const server = await listenOn(port);
      if (server) servers.push(server);
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}

export async function freePort(): Promise<number> {
  return (await freePorts(1))[0]!;
}

/** A server on `port` of every address, or undefined when the port is taken. */
function listenOn(port: number): Promise<net.Server | undefined> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", (error: NodeJS.ErrnoException) => (error.code === "EADDRINUSE" || error.code === "EACCES" ? resolve(undefined) : reject(error)));
    server.listen({ port, host: "0.0.0.0", exclusive: true }, () => resolve(server));
  });
}
