import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { open, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { request } from "undici";

/**
 * BitTorrent as the baseline for agent benchmarks: aria2 (Debian's aria2c) seeders and a leecher
 * with opentracker (Debian) on 127.0.0.1, DHT, LPD and PEX off, a private torrent written here.
 */

type Bencodable = number | string | Buffer | Bencodable[] | { [key: string]: Bencodable };

/** BEP 3 bencoding; dictionary keys sorted as raw strings. */
export function bencode(value: Bencodable): Buffer {
  if (typeof value === "number") return Buffer.from(`i${Math.trunc(value)}e`);
  if (typeof value === "string") return bencode(Buffer.from(value));
  if (Buffer.isBuffer(value)) return Buffer.concat([Buffer.from(`${value.length}:`), value]);
  if (Array.isArray(value)) return Buffer.concat([Buffer.from("l"), ...value.map(bencode), Buffer.from("e")]);
  const keys = Object.keys(value).sort();
  return Buffer.concat([Buffer.from("d"), ...keys.flatMap((k) => [bencode(k), bencode(value[k]!)]), Buffer.from("e")]);
}

/** A single-file private torrent of `file`, SHA-1 per piece (BEP 3), and its info hash. */
export async function makeTorrent(file: string, name: string, pieceLength: number, announce: string): Promise<{ torrent: Buffer; infoHash: Buffer }> {
  const handle = await open(file, "r");
  const hashes: Buffer[] = [];
  let length = 0;
  try {
    const buffer = Buffer.allocUnsafe(pieceLength);
    for (;;) {
      let filled = 0;
      while (filled < pieceLength) {
        const { bytesRead } = await handle.read(buffer, filled, pieceLength - filled, length + filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      if (filled === 0) break;
      hashes.push(createHash("sha1").update(buffer.subarray(0, filled)).digest());
      length += filled;
      if (filled < pieceLength) break;
    }
  } finally {
    await handle.close();
  }
  const info = { length, name, "piece length": pieceLength, pieces: Buffer.concat(hashes), private: 1 };
  const infoHash = createHash("sha1").update(bencode(info)).digest();
  return { torrent: bencode({ announce, info }), infoHash };
}

/** opentracker on 127.0.0.1:`port`, TCP only, that tracks only `infoHash`. */
export async function startTracker(port: number, dir: string, infoHash: Buffer): Promise<ChildProcess> {
  await writeFile(path.join(dir, "whitelist.txt"), `${infoHash.toString("hex")}\n`);
  const tracker = spawn("opentracker", ["-i", "127.0.0.1", "-p", String(port), "-P", String(port), "-d", dir, "-w", "whitelist.txt"], { stdio: "ignore" });
  await untilTrue(async () => (await scrapeComplete(port, infoHash).catch(() => -1)) >= 0, 10_000, "opentracker did not start");
  return tracker;
}

/** How many seeders the tracker knows for `infoHash` (its scrape's `complete`). */
export async function scrapeComplete(port: number, infoHash: Buffer): Promise<number> {
  const hash = [...infoHash].map((b) => `%${b.toString(16).padStart(2, "0")}`).join("");
  const res = await request(`http://127.0.0.1:${port}/scrape?info_hash=${hash}`);
  const body = Buffer.from(await res.body.arrayBuffer()).toString("latin1");
  const match = /8:completei(\d+)e/.exec(body);
  return match ? Number(match[1]) : 0;
}

const ARIA2_COMMON = [
  "--no-conf=true",
  "--enable-dht=false",
  "--enable-dht6=false",
  "--bt-enable-lpd=false",
  "--enable-peer-exchange=false",
  "--disable-ipv6=true",
  "--interface=127.0.0.1",
  "--file-allocation=falloc",
  "--auto-save-interval=0",
  "--summary-interval=0",
  "--console-log-level=warn",
  "--show-console-readout=false",
  "--enable-color=false",
];

/** An aria2 seeder of `dir/<name>` (taken as complete, not re-checked), until killed. */
export function startAria2Seeder(torrent: string, dir: string, listenPort: number): ChildProcess {
  const args = [...ARIA2_COMMON, `--listen-port=${listenPort}`, "--bt-seed-unverified=true", "--seed-ratio=0.0", "--seed-time=600", `--stop-with-process=${process.pid}`, `-d`, dir, torrent];
  return spawn("aria2c", args, { stdio: "ignore" });
}

export interface LeechResult {
  wallSeconds: number;
  userSeconds: number;
  systemSeconds: number;
  peakRssBytes: number;
}

/**
 * One aria2 download of the torrent into `dir`, exiting once complete (no seeding), timed by GNU
 * time: wall, user and system CPU seconds and peak RSS from the kernel's accounting at exit.
 */
export async function aria2Leech(torrent: string, dir: string, listenPort: number, timeoutMs: number): Promise<LeechResult> {
  const timeFile = path.join(dir, "..", `time-${listenPort}.txt`);
  const args = ["-f", "%e %U %S %M", "-o", timeFile, "aria2c", ...ARIA2_COMMON, `--listen-port=${listenPort}`, "--seed-time=0", `--stop-with-process=${process.pid}`, "-d", dir, torrent];
  const child = spawn("/usr/bin/time", args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", resolve);
  });
  clearTimeout(timer);
  if (code !== 0) throw new Error(`aria2c exited ${code}: ${stderr.slice(-500)}`);
  const fields = (await readFile(timeFile, "utf8")).trim().split("\n").pop()!.split(" ").map(Number);
  const [wall, user, system, maxRssKiB] = fields as [number, number, number, number];
  return { wallSeconds: wall, userSeconds: user, systemSeconds: system, peakRssBytes: maxRssKiB * 1024 };
}

export async function untilTrue(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(what);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
