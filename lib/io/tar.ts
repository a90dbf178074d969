/**
 * A small reader for (gzip'd) ustar archives, built on web streams, with an
 * extractor that refuses entries which would land outside its target folder.
 *
 * It reads what the CIFAR-10 archive needs and what common tools write:
 * POSIX ustar and GNU headers, GNU long names (`L`) and pax `path` records.
 * Sizes may be octal or GNU base-256. Links and device files are reported by
 * {@linkcode readTar} and refused by the extractors.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { writeAll } from "./write_all.ts";

/** Tar archives are read and written in blocks of this many bytes. */
export const TAR_BLOCK_BYTES = 512;

/** What a tar entry is; `"other"` covers devices, FIFOs and unknown type flags. */
export type TarEntryType = "file" | "directory" | "symlink" | "hardlink" | "other";

/** One entry of a tar archive, as {@linkcode readTar} yields it. */
export interface TarEntry {
  /** The entry's path as stored (long names and pax paths applied), not yet checked. */
  name: string;
  /** What the entry is, from its type flag. */
  type: TarEntryType;
  /** The raw type flag character (`"0"` for a file, `"5"` for a folder, ...). */
  typeFlag: string;
  /** Body size in bytes. */
  size: number;
  /** Target of a symlink or hard link; `""` otherwise. */
  linkName: string;
  /** Byte offset of the entry's header in the uncompressed tar stream. */
  offset: number;
  /**
   * Streams the body. Call at most once, and before asking for the next
   * entry: the reader skips whatever is left unread when it moves on.
   */
  chunks(): AsyncGenerator<Uint8Array>;
  /** Reads the whole body into one array (same rules as `chunks()`). */
  bytes(): Promise<Uint8Array>;
}

/** Which members to keep, and where; shared by {@linkcode extractTar} and {@linkcode readTarFiles}. */
export interface SelectOptions {
  /**
   * Maps a member's checked path (see {@linkcode safeTarPath}) to its
   * relative output path, or to `null` to skip it.
   * @default keeps every regular file under its own path
   */
  select?: (path: string) => string | null;
}

// Long names and pax headers are a few hundred bytes; a bigger one means a corrupt archive.
const MAX_META_BYTES = 1 << 20;

/**
 * Checks that a member path stays inside the folder it is extracted to and
 * normalises it (drops `.` and empty segments).
 *
 * @param name The path as stored in the archive.
 * @param where Where the name was found, for the error message.
 * @returns The normalised relative path, segments joined by `/`.
 * @throws {Error} For absolute paths, drive letters, backslashes, NUL, `..` segments or an empty path.
 *
 * @example
 * ```ts
 * import { safeTarPath } from "./tar.ts";
 * if (safeTarPath("./a//b.txt") !== "a/b.txt") throw new Error("not normalised");
 * let refused = false;
 * try { safeTarPath("../evil"); } catch { refused = true; }
 * if (!refused) throw new Error("escaped the target folder");
 * ```
 */
export function safeTarPath(name: string, where = "the archive"): string {
  const problem = name.startsWith("/")
    ? "an absolute path"
    : /^[A-Za-z]:/.test(name)
    ? "a drive letter"
    : name.includes("\\")
    ? "a backslash"
    : name.includes("\0")
    ? "a NUL character"
    : name.split("/").includes("..")
    ? 'a ".." segment'
    : null;
  const parts = name.split("/").filter((part) => part !== "" && part !== ".");
  if (problem !== null || parts.length === 0) {
    throw new Error(
      `Expected a relative path inside the target folder for the tar entry in ${where} ` +
        `but found ${JSON.stringify(name)} (${problem ?? "an empty path"})`,
    );
  }
  return parts.join("/");
}

/**
 * Reads a tar stream entry by entry. Every header's checksum is verified, the
 * archive must end with its end-of-archive block, and the rest of the stream
 * is drained so a gzip layer underneath gets to verify its CRC.
 *
 * Breaking out of the loop early cancels the stream (closing a file behind it).
 *
 * @param stream The uncompressed tar bytes, e.g. `file.readable.pipeThrough(new DecompressionStream("gzip"))`.
 * @returns An async generator of entries in archive order.
 * @throws {Error} For a bad checksum, a malformed number field or a stream that ends early, with the byte offset.
 *
 * @example
 * ```ts
 * import { readTar } from "./tar.ts";
 * // An empty archive is just two zero blocks.
 * const empty = new Blob([new Uint8Array(1024)]).stream();
 * for await (const entry of readTar(empty)) throw new Error(`unexpected ${entry.name}`);
 * ```
 */
export async function* readTar(stream: ReadableStream<Uint8Array>): AsyncGenerator<TarEntry> {
  const input = new ByteReader(stream);
  try {
    let longName: string | undefined;
    let longLinkName: string | undefined;
    while (true) {
      const offset = input.offset;
      const block = await input.readExactly(TAR_BLOCK_BYTES);
      if (block === null) {
        throw new Error(
          `Expected a tar header or the end-of-archive block at byte offset ${offset} ` +
            `but the archive ended there`,
        );
      }
      if (block.every((byte) => byte === 0)) {
        await input.drain();
        return;
      }
      const header = parseHeader(block, offset);
      const padding = (TAR_BLOCK_BYTES - header.size % TAR_BLOCK_BYTES) % TAR_BLOCK_BYTES;

      // Metadata entries describe the entry that follows them.
      if ("LKxg".includes(header.typeFlag)) {
        const body = await readMeta(input, header, offset);
        await input.skip(padding, offset);
        if (header.typeFlag === "L") longName = cString(body);
        if (header.typeFlag === "K") longLinkName = cString(body);
        if (header.typeFlag === "x") {
          const records = parsePax(body, offset);
          longName = records.get("path") ?? longName;
          longLinkName = records.get("linkpath") ?? longLinkName;
        }
        continue;
      }

      let remaining = header.size;
      let started = false;
      const chunks = async function* (): AsyncGenerator<Uint8Array> {
        if (started) throw new Error(`The body of tar entry ${header.name} was already read`);
        started = true;
        while (remaining > 0) {
          const chunk = await input.readSome(remaining);
          if (chunk === null) {
            throw new Error(
              `Expected ${header.size} bytes for tar entry ${
                JSON.stringify(header.name)
              } (header at byte offset ${offset}) but the archive ended at byte offset ${input.offset}`,
            );
          }
          remaining -= chunk.length;
          yield chunk;
        }
      };
      const entry: TarEntry = {
        ...header,
        name: longName ?? header.name,
        linkName: longLinkName ?? header.linkName,
        chunks,
        bytes: async () => {
          const out = new Uint8Array(header.size);
          let at = 0;
          for await (const chunk of chunks()) {
            out.set(chunk, at);
            at += chunk.length;
          }
          return out;
        },
      };
      longName = undefined;
      longLinkName = undefined;
      yield entry;
      await input.skip(remaining + padding, offset);
      remaining = 0;
    }
  } finally {
    await input.cancel();
  }
}

/**
 * Extracts the selected regular files of a tar stream into `targetDir`.
 * Every entry, selected or not, must have a safe path (see
 * {@linkcode safeTarPath}); symlinks, hard links and device files are refused,
 * so nothing can be written outside `targetDir`.
 *
 * On an error, files written so far stay; extract into a temporary folder and
 * rename it when this resolves if a partial result must never be seen.
 *
 * @param stream The uncompressed tar bytes.
 * @param targetDir The folder to write into (created if missing).
 * @param options Which members to write, and where.
 * @returns The relative paths written, in archive order.
 *
 * @example
 * ```ts
 * import { extractTar } from "./tar.ts";
 * const dir = await Deno.makeTempDir();
 * const written = await extractTar(new Blob([new Uint8Array(1024)]).stream(), dir);
 * if (written.length !== 0) throw new Error("an empty archive wrote files");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function extractTar(
  stream: ReadableStream<Uint8Array>,
  targetDir: string,
  options: SelectOptions = {},
): Promise<string[]> {
  const written: string[] = [];
  for await (const { entry, path } of selectedFiles(stream, options)) {
    const target = join(targetDir, path);
    await Deno.mkdir(dirname(target), { recursive: true });
    const file = await Deno.open(target, { write: true, create: true, truncate: true });
    try {
      for await (const chunk of entry.chunks()) await writeAll(file, chunk);
    } finally {
      file.close();
    }
    written.push(path);
  }
  return written;
}

/**
 * Reads the selected regular files of a tar stream into memory, with the same
 * checks as {@linkcode extractTar}.
 *
 * @param stream The uncompressed tar bytes.
 * @param options Which members to keep, and under which key.
 * @returns The file contents by (selected) path.
 *
 * @example
 * ```ts
 * import { readTarFiles } from "./tar.ts";
 * const files = await readTarFiles(new Blob([new Uint8Array(1024)]).stream());
 * if (files.size !== 0) throw new Error("an empty archive has files");
 * ```
 */
export async function readTarFiles(
  stream: ReadableStream<Uint8Array>,
  options: SelectOptions = {},
): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for await (const { entry, path } of selectedFiles(stream, options)) {
    files.set(path, await entry.bytes());
  }
  return files;
}

async function* selectedFiles(
  stream: ReadableStream<Uint8Array>,
  { select = (path: string) => path }: SelectOptions,
): AsyncGenerator<{ entry: TarEntry; path: string }> {
  for await (const entry of readTar(stream)) {
    const where = `the tar header at byte offset ${entry.offset}`;
    const path = safeTarPath(entry.name, where);
    if (entry.type !== "file" && entry.type !== "directory") {
      const link = entry.linkName === "" ? "" : ` -> ${JSON.stringify(entry.linkName)}`;
      const what = `${REFUSED[entry.type]} (type flag ${JSON.stringify(entry.typeFlag)})`;
      throw new Error(
        `Expected only regular files and folders in the archive but found ${what} ` +
          `${JSON.stringify(entry.name)}${link} in ${where}`,
      );
    }
    if (entry.type === "directory") continue;
    const output = select(path);
    if (output !== null) yield { entry, path: safeTarPath(output, where) };
  }
}

const REFUSED: Record<TarEntryType, string> = {
  symlink: "a symlink",
  hardlink: "a hard link",
  other: "an unsupported entry",
  file: "a file",
  directory: "a folder",
};

type TarHeader = Omit<TarEntry, "chunks" | "bytes">;

function parseHeader(block: Uint8Array, offset: number): TarHeader {
  const expected = parseNumber(block, 148, 8, "checksum", offset);
  let sum = 0;
  for (let i = 0; i < TAR_BLOCK_BYTES; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i];
  if (sum !== expected) {
    throw new Error(
      `Expected tar header checksum ${expected} at byte offset ${offset} but found ${sum} ` +
        `(not a tar archive, or a corrupted one)`,
    );
  }
  const typeFlag = block[156] === 0 ? "0" : String.fromCharCode(block[156]);
  // Only POSIX ustar uses bytes 345..500 as a name prefix; GNU stores times there.
  const isPosix = cString(block.subarray(257, 263)) === "ustar" && block[262] === 0;
  const prefix = isPosix ? cString(block.subarray(345, 500)) : "";
  const name = cString(block.subarray(0, 100));
  return {
    name: prefix === "" ? name : `${prefix}/${name}`,
    type: ENTRY_TYPES[typeFlag] ?? "other",
    typeFlag,
    size: parseNumber(block, 124, 12, "size", offset),
    linkName: cString(block.subarray(157, 257)),
    offset,
  };
}

const ENTRY_TYPES: Record<string, TarEntryType> = {
  "0": "file",
  "7": "file", // contiguous file: a regular file to everyone but a few old systems
  "1": "hardlink",
  "2": "symlink",
  "5": "directory",
};

/** Octal (NUL or space terminated), or GNU base-256 when the high bit is set. */
function parseNumber(
  block: Uint8Array,
  start: number,
  length: number,
  field: string,
  offset: number,
): number {
  const bytes = block.subarray(start, start + length);
  if (bytes[0] & 0x80) {
    let value = bytes[0] & 0x7f;
    for (let i = 1; i < length; i++) value = value * 256 + bytes[i];
    if (!Number.isSafeInteger(value)) {
      throw new Error(`Expected a tar ${field} below 2^53 at byte offset ${offset} but found more`);
    }
    return value;
  }
  const text = new TextDecoder().decode(bytes).replace(/[\0 ]+$/, "").replace(/^ +/, "");
  if (!/^[0-7]*$/.test(text)) {
    throw new Error(
      `Expected an octal ${field} in the tar header at byte offset ${offset} ` +
        `but found ${JSON.stringify(text)}`,
    );
  }
  return text === "" ? 0 : parseInt(text, 8);
}

async function readMeta(input: ByteReader, header: TarHeader, offset: number): Promise<Uint8Array> {
  if (header.size > MAX_META_BYTES) {
    throw new Error(
      `Expected a tar ${JSON.stringify(header.typeFlag)} metadata entry of at most ` +
        `${MAX_META_BYTES} bytes at byte offset ${offset} but found ${header.size} bytes`,
    );
  }
  if (header.size === 0) return new Uint8Array(0);
  const body = await input.readExactly(header.size);
  if (body === null) {
    throw new Error(
      `Expected a tar metadata body after byte offset ${offset} but the archive ended`,
    );
  }
  return body;
}

/** pax records are `"<length> <key>=<value>\n"`, the length counting the whole record. */
function parsePax(body: Uint8Array, offset: number): Map<string, string> {
  const records = new Map<string, string>();
  let at = 0;
  while (at < body.length && body[at] !== 0) {
    const space = body.indexOf(0x20, at);
    const length = Number(new TextDecoder().decode(body.subarray(at, space)));
    if (
      space < 0 || !Number.isInteger(length) || length <= space - at || at + length > body.length
    ) {
      throw new Error(
        `Expected a well-formed pax record in the tar entry at byte offset ${offset}`,
      );
    }
    const record = new TextDecoder().decode(body.subarray(space + 1, at + length - 1));
    const equals = record.indexOf("=");
    if (equals > 0) records.set(record.slice(0, equals), record.slice(equals + 1));
    at += length;
  }
  return records;
}

function cString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
}

/** Reads a byte stream in pieces of exactly the sizes asked for, without copying where it can. */
class ByteReader {
  /** Bytes consumed so far. */
  offset = 0;
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #chunk: Uint8Array = new Uint8Array(0);
  #at = 0;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }

  /** @returns Up to `max` bytes (a view, not a copy), or `null` at the end of the stream. */
  async readSome(max: number): Promise<Uint8Array | null> {
    while (this.#at >= this.#chunk.length) {
      const { done, value } = await this.#reader.read();
      if (done) return null;
      this.#chunk = value;
      this.#at = 0;
    }
    const piece = this.#chunk.subarray(this.#at, this.#at + max);
    this.#at += piece.length;
    this.offset += piece.length;
    return piece;
  }

  /** @returns Exactly `length` bytes, or `null` if the stream ends first. */
  async readExactly(length: number): Promise<Uint8Array | null> {
    const first = await this.readSome(length);
    if (first === null || first.length === length) return first;
    const out = new Uint8Array(length);
    out.set(first);
    for (let at = first.length; at < length;) {
      const piece = await this.readSome(length - at);
      if (piece === null) return null;
      out.set(piece, at);
      at += piece.length;
    }
    return out;
  }

  async skip(length: number, headerOffset: number): Promise<void> {
    for (let left = length; left > 0;) {
      const piece = await this.readSome(left);
      if (piece === null) {
        throw new Error(
          `Expected the tar entry whose header is at byte offset ${headerOffset} to continue ` +
            `but the archive ended at byte offset ${this.offset}`,
        );
      }
      left -= piece.length;
    }
  }

  async drain(): Promise<void> {
    while (await this.readSome(Infinity) !== null);
  }

  async cancel(): Promise<void> {
    // A stream that already failed rejects cancel() with its error, which the caller has seen.
    await this.#reader.cancel().catch(() => {});
    this.#reader.releaseLock();
  }
}
