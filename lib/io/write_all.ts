/**
 * Writing a whole buffer to a file or stream. `write()` may write fewer bytes
 * than it was given (a pipe, a full kernel buffer); every writer here loops
 * until all of them are out.
 *
 * @module
 */

/** A writer as Deno's files and stdout are: `write` returns how many bytes it took. */
export interface Writer {
  write(bytes: Uint8Array): Promise<number>;
}

/** A synchronous writer, as `Deno.stdout` is. */
export interface SyncWriter {
  writeSync(bytes: Uint8Array): number;
}

/**
 * Writes every byte of `bytes` to `writer`, however many calls that takes.
 *
 * @example
 * ```ts
 * import { writeAll } from "./write_all.ts";
 * const chunks: number[] = [];
 * // A writer that takes at most 2 bytes a call.
 * await writeAll({ write: (b) => (chunks.push(...b.subarray(0, 2)), Promise.resolve(Math.min(2, b.length))) }, new Uint8Array([1, 2, 3]));
 * console.log(chunks); // [1, 2, 3]
 * ```
 */
export async function writeAll(writer: Writer, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await writer.write(bytes.subarray(at));
}

/** {@linkcode writeAll} for a synchronous writer. */
export function writeAllSync(writer: SyncWriter, bytes: Uint8Array): void {
  for (let at = 0; at < bytes.length;) at += writer.writeSync(bytes.subarray(at));
}
