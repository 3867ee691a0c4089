import { rename, writeFile } from "node:fs/promises";

/**
 * Replaces `file` with `data` so that a reader (or a process killed halfway) sees the old
 * contents or the new ones, never a torn file: write a sibling, then rename over it.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, data);
  await rename(temp, file);
}
