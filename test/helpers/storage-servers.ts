import { spawn, type ChildProcess } from "node:child_process";
import { chmod, chown, mkdir, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { userInfo } from "node:os";
import S3rver from "s3rver";
import { freePort } from "../../src/devcluster/ports.js";

/** An S3-compatible server (s3rver) on a free port with one bucket, for the edge's S3 backend. */
export async function startS3(dir: string, bucket = "shoal"): Promise<{ endpoint: string; bucket: string; env: Record<string, string>; close(): Promise<void> }> {
  const port = await freePort();
  const server = new S3rver({ port, address: "127.0.0.1", silent: true, directory: dir, configureBuckets: [{ name: bucket, configs: [] }] });
  await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    bucket,
    // s3rver's fixed credentials.
    env: { SHOAL_STORAGE: "s3", SHOAL_S3_ENDPOINT: endpoint, SHOAL_S3_BUCKET: bucket, AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER" },
    close: () => server.close(),
  };
}

/**
 * Debian's vsftpd on a free port, anonymous with write access to `<dir>/root/data` (vsftpd refuses
 * a writable chroot root, so the writable folder is one level down). Needs root, as CI runs.
 */
export async function startVsftpd(dir: string): Promise<{ url: string; env: Record<string, string>; close(): Promise<void> }> {
  const port = await freePort();
  const root = path.join(dir, "root");
  const empty = path.join(dir, "empty");
  await mkdir(path.join(root, "data"), { recursive: true });
  await mkdir(empty, { recursive: true });
  await chmod(root, 0o555);
  const ftpUser = await uidOf("ftp");
  await chown(path.join(root, "data"), ftpUser.uid, ftpUser.gid);
  const passive = await freePort();
  const config = path.join(dir, "vsftpd.conf");
  await writeFile(
    config,
    [
      "listen=YES",
      "listen_address=127.0.0.1",
      `listen_port=${port}`,
      "background=NO",
      "anonymous_enable=YES",
      "no_anon_password=YES",
      `anon_root=${root}`,
      "write_enable=YES",
      "anon_upload_enable=YES",
      "anon_mkdir_write_enable=YES",
      "anon_other_write_enable=YES",
      "anon_umask=022",
      "local_enable=NO",
      "pasv_enable=YES",
      "pasv_address=127.0.0.1",
      `pasv_min_port=${passive}`,
      `pasv_max_port=${passive + 50}`,
      "seccomp_sandbox=NO",
      `secure_chroot_dir=${empty}`,
      "xferlog_enable=NO",
      "max_clients=50",
      "max_per_ip=50",
      "",
    ].join("\n"),
  );
  const child: ChildProcess = spawn("vsftpd", [config], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const deadline = Date.now() + 10_000;
  while (!(await answers(port))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`vsftpd did not start: ${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const url = `ftp://anonymous:shoal@127.0.0.1:${port}/data`;
  return {
    url,
    env: { SHOAL_STORAGE: "ftp", SHOAL_FTP_URL: url },
    close: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("data", (d: Buffer) => {
      socket.destroy();
      resolve(d.toString().startsWith("220"));
    });
    socket.once("error", () => resolve(false));
  });
}

async function uidOf(user: string): Promise<{ uid: number; gid: number }> {
  const { readFile } = await import("node:fs/promises");
  const line = (await readFile("/etc/passwd", "utf8")).split("\n").find((l) => l.startsWith(`${user}:`));
  if (!line) throw new Error(`no ${user} user (apt-get install vsftpd creates it); running as ${userInfo().username} on ${os.hostname()}`);
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}
