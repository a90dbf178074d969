/**
 * Writes that are all or nothing: a file appears complete under its final name,
 * or not at all, even when the process dies mid-write.
 *
 * @module
 */
import { writeAll } from "./write_all.ts";

/**
 * Writes `bytes` to `path` atomically: to a temporary sibling first, flushed to disk,
 * then renamed over `path` (a rename within one folder is atomic on POSIX and NTFS).
 *
 * @param path Final file path.
 * @param bytes Content.
 *
 * @example
 * ```ts
 * import { writeFileAtomic } from "./atomic.ts";
 * const dir = await Deno.makeTempDir();
 * await writeFileAtomic(`${dir}/a.json`, new TextEncoder().encode("{}"));
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
    try {
      await writeAll(file, bytes);
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(tmp, path);
  } catch (error) {
    await Deno.remove(tmp).catch(() => {});
    throw error;
  }
}

/** {@linkcode writeFileAtomic} for text (JSON, SVG). */
export function writeTextFileAtomic(path: string, text: string): Promise<void> {
  return writeFileAtomic(path, new TextEncoder().encode(text));
}
