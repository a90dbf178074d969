/**
 * A small reader for (gzip'd) ustar archives, built on web streams, with an
 * extractor that refuses entries which would land outside its target folder.
 *
 * It reads what the CIFAR-10 archive needs and what common tools write:
 * POSIX ustar and GNU headers, GNU long names (`L`) and pax `path` records.
 * Sizes may be octal or GNU base-256. Links and device files are reported by
 * {@linkcode readTar} and refused by the extractors, as are duplicate paths.
 * {@linkcode gunzip} inflates a `.tar.gz` and says which way a broken one is
 * broken (empty, not gzip, truncated, corrupted).
 *
 * Nothing is allocated or inflated from a size before it is checked: a member's
 * declared size goes to `select` with its header, before a byte of its body is
 * read, and `maxTotalBytes` bounds how much of the stream is ever read.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { createGunzip } from "node:zlib";
import { writeAll } from "./write_all.ts";

/** Tar archives are read and written in blocks of this many bytes. */
export const TAR_BLOCK_BYTES = 512;

/** What a tar entry is; `"other"` covers devices, FIFOs and unknown type flags. */
export type TarEntryType = "file" | "directory" | "symlink" | "hardlink" | "other";

/** What a tar header says about an entry, before any of its body is read. */
export interface TarHeader {
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
}

/** One entry of a tar archive, as {@linkcode readTar} yields it. */
export interface TarEntry extends TarHeader {
  /**
   * Streams the body. Call at most once, and before asking for the next
   * entry: the reader skips whatever is left unread when it moves on.
   */
  chunks(): AsyncGenerator<Uint8Array>;
  /** Reads the whole body into one array (same rules as `chunks()`). */
  bytes(): Promise<Uint8Array>;
}

/** Options of {@linkcode readTar}. */
export interface ReadTarOptions {
  /**
   * The most bytes of (uncompressed) tar stream to read, headers and padding
   * included. An entry whose body would end past it is refused from its
   * header, before its body is read or skipped; so is anything after the
   * end-of-archive block that would go past it. A gzip bomb inflates no
   * further than this.
   * @default Infinity
   */
  maxTotalBytes?: number;
}

/** Which members to keep, and where; shared by {@linkcode extractTar} and {@linkcode readTarFiles}. */
export interface SelectOptions extends ReadTarOptions {
  /**
   * Maps a member's checked path (see {@linkcode safeTarPath}) to its
   * relative output path, or to `null` to skip it. It sees the member's
   * header (its declared `size`) before any of the body is read, and may
   * throw to refuse the archive (a member of the wrong size, say).
   * @default keeps every regular file under its own path
   */
  select?: (path: string, header: TarHeader) => string | null;
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
 * @param stream The uncompressed tar bytes, e.g. `gunzip(file.readable)`.
 * @param options The most bytes to read.
 * @returns An async generator of entries in archive order.
 * @throws {Error} For a bad checksum, a malformed number field, a stream that ends early or
 *   one longer than `maxTotalBytes`, with the byte offset.
 *
 * @example
 * ```ts
 * import { readTar } from "./tar.ts";
 * // An empty archive is just two zero blocks.
 * const empty = new Blob([new Uint8Array(1024)]).stream();
 * for await (const entry of readTar(empty)) throw new Error(`unexpected ${entry.name}`);
 * ```
 */
export async function* readTar(
  stream: ReadableStream<Uint8Array>,
  options: ReadTarOptions = {},
): AsyncGenerator<TarEntry> {
  const { maxTotalBytes = Infinity } = options;
  const input = new ByteReader(stream, maxTotalBytes);
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
      const name = longName ?? header.name;
      // Checked when the body is about to be read or skipped, so that `select` sees the header first.
      const checkFits = () => {
        const end = input.offset + header.size + padding;
        if (end > maxTotalBytes) {
          throw new Error(
            `Expected at most ${maxTotalBytes} bytes of tar data but the entry ` +
              `${JSON.stringify(name)} (header at byte offset ${offset}) ` +
              `declares ${header.size} bytes, which would end at byte offset ${end}`,
          );
        }
      };

      // Metadata entries describe the entry that follows them.
      if ("LKxg".includes(header.typeFlag)) {
        checkFits();
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
        if (started) throw new Error(`The body of tar entry ${name} was already read`);
        started = true;
        checkFits();
        while (remaining > 0) {
          const chunk = await input.readSome(remaining);
          if (chunk === null) {
            throw new Error(
              `Expected ${header.size} bytes for tar entry ${
                JSON.stringify(name)
              } (header at byte offset ${offset}) but the archive ended at byte offset ${input.offset}`,
            );
          }
          remaining -= chunk.length;
          yield chunk;
        }
      };
      const entry: TarEntry = {
        ...header,
        name,
        linkName: longLinkName ?? header.linkName,
        chunks,
        bytes: async () => {
          checkFits();
          const out = allocate(header.size, name, offset);
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
      if (!started) checkFits();
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

/**
 * Inflates a gzip stream (a `.tar.gz` file's bytes), with errors that say how
 * it is broken: an empty file, not a gzip file, one that ends early
 * (truncated), a checksum that does not match (corrupted). Reads its input one
 * piece at a time as its output is asked for, so a gzip bomb is inflated only
 * as far as the reader goes.
 *
 * @param compressed The gzip bytes, e.g. `file.readable`.
 * @returns The inflated bytes; cancelling it cancels `compressed` (closing a file behind it).
 *
 * @example
 * ```ts
 * import { gunzip } from "./tar.ts";
 * const packed = new Blob(["hello"]).stream().pipeThrough(new CompressionStream("gzip"));
 * const text = await new Response(gunzip(packed)).text();
 * if (text !== "hello") throw new Error(`inflated to ${text}`);
 * ```
 */
export function gunzip(compressed: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  const reader = compressed.getReader();
  const inflater = createGunzip();
  let pending: Uint8Array = new Uint8Array(0);
  let fedBytes = 0;
  let firstBytes: Uint8Array | undefined;
  let failure: Error | undefined;
  // zlib reports an error through the write callback, the "error" event or both; either way
  // it becomes one message, and rejects the write or end being waited for.
  const fail = (error: unknown) => (failure ??= gzipError(error, fedBytes, firstBytes));
  let rejectWaiting: ((error: Error) => void) | undefined;
  inflater.on("error", (error: Error) => rejectWaiting?.(fail(error)));
  const wait = (start: (resolve: () => void) => void) =>
    new Promise<void>((resolve, reject) => {
      if (failure !== undefined) return reject(failure);
      rejectWaiting = reject;
      start(resolve);
    });
  const write = (piece: Uint8Array) =>
    wait((resolve) =>
      inflater.write(piece, (error) => (error ? rejectWaiting?.(fail(error)) : resolve()))
    );
  const end = () =>
    wait((resolve) => {
      inflater.once("end", resolve);
      inflater.end();
    });
  let enqueued = 0;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      inflater.on("data", (chunk: Uint8Array) => {
        try {
          controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          enqueued++;
        } catch {
          inflater.destroy(); // the reader has gone away
        }
      });
    },
    async pull(controller) {
      try {
        // A pull must yield something (or end the stream): the stream does not call it again.
        for (const before = enqueued; enqueued === before;) {
          if (pending.length === 0) {
            const { done, value } = await reader.read();
            if (done) {
              await end();
              controller.close();
              return;
            }
            firstBytes ??= value.slice(0, 4);
            pending = value;
          }
          // Pieces of 16 KiB: inflating one yields at most about 16 MiB, even from a bomb.
          const piece = pending.subarray(0, GZIP_PIECE_BYTES);
          pending = pending.subarray(piece.length);
          fedBytes += piece.length;
          await write(piece);
        }
      } catch (error) {
        inflater.destroy();
        await reader.cancel().catch(() => {});
        throw failure ?? error;
      }
    },
    async cancel(reason) {
      inflater.destroy();
      await reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

const GZIP_PIECE_BYTES = 1 << 14;

/** zlib's terse error (`unexpected end of file`, ...) as a message that names the cause. */
function gzipError(error: unknown, fedBytes: number, firstBytes: Uint8Array | undefined): Error {
  const { code, message } = error as { code?: string; message?: string };
  const again = "download or copy it again";
  const text = code === "Z_BUF_ERROR" && fedBytes === 0
    ? "Expected gzip data but found an empty file (0 bytes)"
    : code === "Z_BUF_ERROR"
    ? `Expected the gzip stream to go on but it ends after ${fedBytes} bytes ` +
      `(a truncated file: ${again})`
    : message === "incorrect header check" && firstBytes !== undefined &&
        (firstBytes[0] !== 0x1f || firstBytes[1] !== 0x8b)
    ? `Expected gzip data (starting with bytes 1f 8b) but found bytes ${hex(firstBytes)} ` +
      "(not a gzip file)"
    : message === "incorrect data check" || message === "incorrect length check"
    ? `Expected the gzip checksum to match the inflated data but it does not ` +
      `(a corrupted file: ${again})`
    : `Expected valid gzip data but found corrupt data at or before compressed byte offset ` +
      `${fedBytes} (${message ?? String(error)}; a corrupted file: ${again})`;
  return new Error(text, { cause: error });
}

function hex(bytes: Uint8Array): string {
  return [...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join(" ");
}

async function* selectedFiles(
  stream: ReadableStream<Uint8Array>,
  { select = (path: string) => path, maxTotalBytes }: SelectOptions,
): AsyncGenerator<{ entry: TarEntry; path: string }> {
  // Where each path was first seen: a second copy would silently replace the first.
  const seen = new Map<string, TarEntry>();
  for await (const entry of readTar(stream, { maxTotalBytes })) {
    const where = `the tar header at byte offset ${entry.offset}`;
    const path = safeTarPath(entry.name, where);
    const first = seen.get(path);
    if (first !== undefined && (first.type !== "directory" || entry.type !== "directory")) {
      throw new Error(
        `Expected each path once in the archive but found ${JSON.stringify(path)} again in ` +
          `${where} (first in the tar header at byte offset ${first.offset})`,
      );
    }
    seen.set(path, entry);
    if (entry.type !== "file" && entry.type !== "directory") {
      const link = entry.linkName === "" ? "" : ` -> ${JSON.stringify(entry.linkName)}`;
      const what = `${REFUSED[entry.type]} (type flag ${JSON.stringify(entry.typeFlag)})`;
      throw new Error(
        `Expected only regular files and folders in the archive but found ${what} ` +
          `${JSON.stringify(entry.name)}${link} in ${where}`,
      );
    }
    if (entry.type === "directory") continue;
    const output = select(path, entry);
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

/** A zeroed buffer for an entry's body; a size no allocation can give is refused by name. */
function allocate(size: number, name: string, offset: number): Uint8Array {
  try {
    return new Uint8Array(size);
  } catch (error) {
    throw new Error(
      `Expected tar entry ${JSON.stringify(name)} (header at byte offset ${offset}) to fit in ` +
        `memory but it declares ${size} bytes`,
      { cause: error },
    );
  }
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
  #maxBytes: number;

  constructor(stream: ReadableStream<Uint8Array>, maxBytes: number) {
    this.#reader = stream.getReader();
    this.#maxBytes = maxBytes;
  }

  /** @returns Up to `max` bytes (a view, not a copy), or `null` at the end of the stream. */
  async readSome(max: number): Promise<Uint8Array | null> {
    while (this.#at >= this.#chunk.length) {
      const { done, value } = await this.#reader.read();
      if (done) return null;
      this.#chunk = value;
      this.#at = 0;
    }
    if (this.offset >= this.#maxBytes) {
      throw new Error(
        `Expected at most ${this.#maxBytes} bytes of tar data but the stream goes on ` +
          `past byte offset ${this.#maxBytes}`,
      );
    }
    const allowed = Math.min(max, this.#maxBytes - this.offset);
    const piece = this.#chunk.subarray(this.#at, this.#at + allowed);
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
