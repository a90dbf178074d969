/**
 * Getting the CIFAR-10 binary files the way torchvision's `download=True`
 * does: download the archive once into a root folder, check its md5, extract
 * it, and reuse the extracted folder on every later run without touching the
 * network. A local `.tar.gz` or an already-extracted folder works too.
 *
 * Nothing half-done is ever trusted: a download goes to a `.part` file that
 * gets its final name only after its length and md5 check out, and
 * extraction writes into a `.partial` folder that is renamed into place only
 * when every expected file is in it and has been parsed and checked.
 *
 * Every file has a known size (each batch exactly 10,000 records of 3,073
 * bytes, the small text files a few bytes), checked from the tar header or
 * the file system before a byte of it is read, so a hostile archive cannot
 * make this allocate or inflate more than the real data set takes.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { BATCH_BYTES, RECORD_BYTES, RECORDS_PER_BATCH } from "./cifar10_format.ts";
import { extractTar, gunzip, readTarFiles, type TarHeader } from "./tar.ts";
import { writeAll } from "./write_all.ts";

/** The official CIFAR-10 binary archive (about 170 MB). */
export const CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";

/** md5 of {@linkcode CIFAR10_URL}, as published on the CIFAR-10 page. */
export const CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530";

/** File name a downloaded archive is kept under, inside the root folder. */
export const CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz";

/** The folder the archive unpacks to; its presence in the root folder is the cache. */
export const CIFAR10_FOLDER = "cifar-10-batches-bin";

/** The five training batches, in the order their records are concatenated. */
export const CIFAR10_TRAIN_FILES: readonly string[] = Object.freeze([
  "data_batch_1.bin",
  "data_batch_2.bin",
  "data_batch_3.bin",
  "data_batch_4.bin",
  "data_batch_5.bin",
]);

/** The test batch. */
export const CIFAR10_TEST_FILE = "test_batch.bin";

/** Class names, one a line. */
export const CIFAR10_META_FILE = "batches.meta.txt";

const README_FILE = "readme.html";
const REQUIRED_FILES = [...CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE, CIFAR10_META_FILE];
// Extraction writes these and nothing else; readme.html is kept when present but not required.
const ARCHIVE_FILES = [...REQUIRED_FILES, README_FILE];

// The official batches.meta.txt is 61 bytes (ten names) and readme.html 266: caps, not exact sizes.
const MAX_META_BYTES = 1 << 16;
const MAX_README_BYTES = 1 << 20;
// The most tar data read from an archive: the six batches, plus room for the small files,
// headers, and members that are not kept. Also bounds what a gzip bomb can make us inflate.
const MAX_TAR_BYTES = 6 * BATCH_BYTES + (16 << 20);

/** Progress of a download, reported after every chunk received. */
export interface DownloadProgress {
  /** Bytes received so far. */
  receivedBytes: number;
  /** The full size from the response's Content-Length; absent when the server does not say. */
  totalBytes?: number;
}

/** Options of {@linkcode downloadFile}. */
export interface DownloadOptions {
  /**
   * Expected md5 (32 hex digits); the file gets its final name only if it matches.
   * @default no check
   */
  md5?: string;
  /**
   * Called after every chunk received.
   * @default no reporting
   */
  onProgress?: (progress: DownloadProgress) => void;
}

/** Options of `loadCifar10()` (in `data.ts`) and {@linkcode openCifar10Files}. */
export interface LoadOptions {
  /**
   * A folder (`cifar-10-batches-bin` itself or a folder holding it), a local
   * `.tar.gz` archive (read into memory, nothing written), or an http(s) URL
   * to download into `root`.
   * @default downloads {@linkcode CIFAR10_URL} into `root`
   */
  source?: string;
  /**
   * Where a download and its extracted folder are kept. If
   * `root/cifar-10-batches-bin` exists it is used as is, whatever the URL.
   * @default "./data"
   */
  root?: string;
  /**
   * md5 of the archive. Required for a URL other than {@linkcode CIFAR10_URL};
   * checked for a local archive when given, before it is read; refused with
   * a folder, which has no md5 to check.
   * @default CIFAR10_MD5 for CIFAR10_URL
   */
  md5?: string;
  /**
   * Download progress, called after every chunk.
   * @default no reporting
   */
  onProgress?: (progress: DownloadProgress) => void;
  /**
   * One line per step taken (using the cache, downloading, verifying, extracting).
   * @default silent
   */
  log?: (message: string) => void;
}

/**
 * The CIFAR-10 files found by {@linkcode openCifar10Files}: all required ones
 * checked present and of the right size.
 */
export interface Cifar10Files {
  /** The folder or archive they come from. */
  location: string;
  /** @returns How to name file `name` in messages, e.g. `data/cifar-10-batches-bin/test_batch.bin`. */
  pathOf(name: string): string;
  /** @returns The bytes of file `name` (e.g. `"test_batch.bin"`), its size checked before reading. */
  read(name: string): Promise<Uint8Array>;
}

/**
 * Downloads `url` to `path`, streaming: the body goes to `path + ".part"`
 * while its md5 is computed, and the part file is renamed to `path` only
 * when the byte count matches the Content-Length and the md5 matches.
 * On any failure the part file is removed and `path` is left untouched.
 *
 * @param url An http(s) URL.
 * @param path Where the file should end up; its folder is created if missing.
 * @param options Expected md5 and a progress callback.
 * @throws {Error} For an HTTP status other than 2xx, a broken connection, a short body or an md5 mismatch.
 *
 * @example
 * ```ts
 * import { CIFAR10_MD5, CIFAR10_URL, downloadFile } from "./download.ts";
 * if (import.meta.main) {
 *   await downloadFile(CIFAR10_URL, "data/cifar-10-binary.tar.gz", {
 *     md5: CIFAR10_MD5,
 *     onProgress: ({ receivedBytes, totalBytes }) => console.log(receivedBytes, totalBytes),
 *   });
 * }
 * ```
 */
export async function downloadFile(
  url: string,
  path: string,
  options: DownloadOptions = {},
): Promise<void> {
  const expectedMd5 = options.md5 === undefined ? undefined : checkMd5(options.md5);
  let response: Response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new Error(`Could not download ${url}: ${fetchAdvice(url, error, expectedMd5)}`, {
      cause: error,
    });
  }
  if (!response.ok || response.body === null) {
    await response.body?.cancel();
    throw new Error(
      `Expected HTTP status 200 from ${url} but found ${response.status} ${response.statusText}`,
    );
  }
  const lengthHeader = response.headers.get("content-length");
  const totalBytes = lengthHeader !== null && /^\d+$/.test(lengthHeader)
    ? Number(lengthHeader)
    : undefined;

  const partPath = `${path}.part`;
  let file: Deno.FsFile;
  try {
    await Deno.mkdir(dirname(path), { recursive: true });
    file = await Deno.open(partPath, { write: true, create: true, truncate: true });
  } catch (error) {
    await response.body.cancel();
    throw error;
  }
  const hash = createHash("md5");
  let receivedBytes = 0;
  try {
    try {
      for await (const chunk of response.body) {
        hash.update(chunk);
        await writeAll(file, chunk);
        receivedBytes += chunk.length;
        options.onProgress?.(
          totalBytes === undefined ? { receivedBytes } : { receivedBytes, totalBytes },
        );
      }
    } catch (error) {
      const of = totalBytes === undefined ? "" : ` of ${totalBytes}`;
      throw new Error(
        `Download of ${url} failed after ${receivedBytes}${of} bytes: ${messageOf(error)}`,
        { cause: error },
      );
    } finally {
      file.close();
    }
    if (totalBytes !== undefined && receivedBytes !== totalBytes) {
      throw new Error(
        `Expected ${totalBytes} bytes from ${url} (its Content-Length) but received ${receivedBytes}`,
      );
    }
    const actualMd5 = hash.digest("hex");
    if (expectedMd5 !== undefined && actualMd5 !== expectedMd5) {
      throw new Error(
        `Expected md5 ${expectedMd5} for ${url} but found ${actualMd5} ` +
          `(a corrupted or different file; nothing was kept)`,
      );
    }
    await Deno.rename(partPath, path);
  } catch (error) {
    await Deno.remove(partPath).catch(() => {});
    throw error;
  }
}

/**
 * Computes a file's md5, streaming it (the file is never held in memory).
 *
 * @param path The file.
 * @returns The digest as 32 lowercase hex digits.
 *
 * @example
 * ```ts
 * import { md5File } from "./download.ts";
 * const path = await Deno.makeTempFile();
 * if (await md5File(path) !== "d41d8cd98f00b204e9800998ecf8427e") throw new Error("md5 of nothing");
 * await Deno.remove(path);
 * ```
 */
export async function md5File(path: string): Promise<string> {
  const hash = createHash("md5");
  const file = await Deno.open(path);
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

/**
 * Finds the CIFAR-10 binary files for `options.source`, downloading and
 * extracting them into `options.root` first when the source is a URL (or
 * omitted) and they are not cached there yet, and hands them to `parse`.
 * Checks that every required file is present and of its exact size; `parse`
 * checks the contents. A freshly extracted folder gets the cache's name only
 * once `parse` has accepted it, and a cache that `parse` refuses is reported
 * with the command that clears it.
 *
 * @param options Where to get the data; see {@linkcode LoadOptions}.
 * @param parse Reads and checks the files (`loadCifar10()` parses all of them); throws if they are bad.
 * @returns What `parse` returns.
 * @throws {Error} For a missing source, missing or wrongly sized files, a failed download or a bad
 *   archive, naming the path; or what `parse` throws.
 *
 * @example
 * ```ts
 * import { openCifar10Files } from "./download.ts";
 * if (import.meta.main) {
 *   const metaBytes = await openCifar10Files(
 *     { root: "./data", log: console.log },
 *     async (files) => (await files.read("batches.meta.txt")).length,
 *   );
 *   console.log(metaBytes);
 * }
 * ```
 */
export async function openCifar10Files<T>(
  options: LoadOptions,
  parse: (files: Cifar10Files) => Promise<T>,
): Promise<T> {
  const { source, root = "./data", log = () => {} } = options;
  if (source === undefined || /^https?:\/\//i.test(source)) {
    const url = source ?? CIFAR10_URL;
    const md5 = options.md5 ?? (url === CIFAR10_URL ? CIFAR10_MD5 : undefined);
    if (md5 === undefined) {
      throw new Error(
        `Expected an md5 checksum (options.md5) for source ${url}; ` +
          `only ${CIFAR10_URL} has a known one`,
      );
    }
    return await fromDownload(
      url,
      checkMd5(md5),
      root,
      { onProgress: options.onProgress, log },
      parse,
    );
  }
  const info = await Deno.stat(source).catch((error) => {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  });
  if (info === null) {
    throw new Error(
      `Expected source to be a ${CIFAR10_FOLDER} folder, a folder holding one, a .tar.gz archive ` +
        `or an http(s) URL, but found nothing at ${source}`,
    );
  }
  if (info.isDirectory) {
    if (options.md5 !== undefined) {
      throw new Error(
        `Expected an md5 only with a .tar.gz archive or a URL but source ${source} is a folder ` +
          "(its files have no md5 to check: pass the archive, or leave out the md5)",
      );
    }
    const nested = join(source, CIFAR10_FOLDER);
    const folder = (await isDirectory(nested)) ? nested : source;
    const expected = folder === source
      ? `the CIFAR-10 binary files or a ${CIFAR10_FOLDER}/ subfolder`
      : "the CIFAR-10 binary files";
    await requireFolderFiles(folder, expected);
    log(`Using ${folder}`);
    return await parse(folderFiles(folder));
  }
  if (!/\.(tar\.gz|tgz)$/i.test(source)) {
    throw new Error(
      `Expected source ${source} to be a folder or a .tar.gz archive but found a file ` +
        `with another extension`,
    );
  }
  if (options.md5 !== undefined) {
    const md5 = checkMd5(options.md5);
    const actualMd5 = await md5File(source);
    if (actualMd5 !== md5) {
      throw new Error(
        `Expected md5 ${md5} for ${source} but found ${actualMd5} (a corrupted or different file)`,
      );
    }
    log(`Verified md5 ${md5} of ${source}`);
  }
  log(`Reading ${source}`);
  return await parse(await archiveFiles(source));
}

async function fromDownload<T>(
  url: string,
  md5: string,
  root: string,
  report: { onProgress?: (progress: DownloadProgress) => void; log: (message: string) => void },
  parse: (files: Cifar10Files) => Promise<T>,
): Promise<T> {
  const { onProgress, log } = report;
  const folder = join(root, CIFAR10_FOLDER);
  if (await isDirectory(folder)) {
    try {
      await requireFolderFiles(folder, "the CIFAR-10 binary files");
      log(`Using ${folder} (already downloaded)`);
      return await parse(folderFiles(folder));
    } catch (error) {
      throw new Error(
        `${messageOf(error)} (${folder} is the cache of an earlier download and fails its check: ` +
          `clear it with \`rm -r ${shellQuote(folder)}\` and run again to download it again)`,
        { cause: error },
      );
    }
  }
  await Deno.mkdir(root, { recursive: true });
  const archive = join(root, CIFAR10_ARCHIVE);
  if ((await isFile(archive)) && (await md5File(archive)) === md5) {
    log(`Using ${archive} (already downloaded, md5 ${md5} verified)`);
  } else {
    log(`Downloading ${url} to ${archive}`);
    await downloadFile(url, archive, { md5, onProgress });
    log(`Verified md5 ${md5}`);
  }
  log(`Extracting ${archive} to ${folder}`);
  return await extractArchive(archive, root, parse);
}

/**
 * Extracts into `root/cifar-10-batches-bin.partial/`, parses the files there, and only then
 * renames them into place: a folder under the cache's name has always passed every check.
 */
async function extractArchive<T>(
  archive: string,
  root: string,
  parse: (files: Cifar10Files) => Promise<T>,
): Promise<T> {
  const partial = join(root, `${CIFAR10_FOLDER}.partial`);
  await removeIfPresent(partial);
  try {
    const file = await Deno.open(archive);
    let written: string[];
    try {
      written = await extractTar(gunzip(file.readable), partial, {
        select: selectMember,
        maxTotalBytes: MAX_TAR_BYTES,
      });
    } catch (error) {
      throw new Error(`Could not extract ${archive}: ${messageOf(error)}`, { cause: error });
    }
    requireMembers(written, archive);
    const extracted = join(partial, CIFAR10_FOLDER);
    let result: T;
    try {
      // Named in messages as members of the archive: the temporary folder is about to go.
      result = await parse(folderFiles(extracted, join(archive, CIFAR10_FOLDER)));
    } catch (error) {
      throw new Error(`${messageOf(error)} (nothing was extracted from ${archive})`, {
        cause: error,
      });
    }
    const target = join(root, CIFAR10_FOLDER);
    await Deno.rename(extracted, target).catch(async (error) => {
      // Another run may have finished the same extraction first; its folder passed the same checks.
      if (!(await isDirectory(target))) throw error;
    });
    return result;
  } finally {
    await removeIfPresent(partial);
  }
}

async function archiveFiles(path: string): Promise<Cifar10Files> {
  const file = await Deno.open(path);
  let files: Map<string, Uint8Array>;
  try {
    files = await readTarFiles(gunzip(file.readable), {
      select: selectMember,
      maxTotalBytes: MAX_TAR_BYTES,
    });
  } catch (error) {
    throw new Error(`Could not read ${path}: ${messageOf(error)}`, { cause: error });
  }
  requireMembers(files.keys(), path);
  const pathOf = (name: string) => `${path}/${CIFAR10_FOLDER}/${name}`;
  return {
    location: path,
    pathOf,
    read: (name) => {
      const bytes = files.get(`${CIFAR10_FOLDER}/${name}`);
      if (bytes === undefined) {
        throw new Error(`Expected ${pathOf(name)} but it is not in the archive`);
      }
      return Promise.resolve(bytes);
    },
  };
}

/** The files of `folder`, named in messages as if in `shownAs`. */
function folderFiles(folder: string, shownAs = folder): Cifar10Files {
  return {
    location: shownAs,
    pathOf: (name) => join(shownAs, name),
    read: (name) => readFileOfSize(join(folder, name), name, join(shownAs, name)),
  };
}

/** Reads a file after checking its size, and checks that it did not change size while being read. */
async function readFileOfSize(path: string, name: string, shownAs: string): Promise<Uint8Array> {
  using file = await Deno.open(path);
  const info = await file.stat();
  if (!info.isFile) throw new Error(`Expected ${shownAs} to be a regular file but it is not`);
  checkSize(name, info.size, shownAs, "found");
  const bytes = new Uint8Array(info.size);
  for (let at = 0; at < bytes.length;) {
    const read = await file.read(bytes.subarray(at));
    if (read === null) {
      throw new Error(
        `Expected ${info.size} bytes in ${shownAs} but it ended at byte offset ${at} ` +
          "(it changed while being read)",
      );
    }
    at += read;
  }
  if ((await file.read(new Uint8Array(1))) !== null) {
    throw new Error(
      `Expected ${shownAs} to end at byte offset ${info.size} but it goes on ` +
        "(it changed while being read)",
    );
  }
  return bytes;
}

/**
 * Refuses a file whose size is not the one its name calls for: each batch exactly
 * {@linkcode BATCH_BYTES}, the text files no more than their caps.
 */
function checkSize(name: string, size: number, shownAs: string, found: string): void {
  const isBatch = name !== CIFAR10_META_FILE && name !== README_FILE;
  const maxBytes = name === CIFAR10_META_FILE ? MAX_META_BYTES : MAX_README_BYTES;
  if (isBatch ? size === BATCH_BYTES : size <= maxBytes) return;
  const expected = isBatch
    ? `exactly ${BATCH_BYTES} bytes (${RECORDS_PER_BATCH} records of ${RECORD_BYTES} bytes)`
    : `at most ${maxBytes} bytes`;
  const records = isBatch && size % RECORD_BYTES === 0 ? ` (${size / RECORD_BYTES} records)` : "";
  throw new Error(`Expected ${shownAs} to be ${expected} but ${found} ${size} bytes${records}`);
}

/** Keeps the CIFAR-10 members, refusing one of the wrong size from its header, before its body. */
function selectMember(path: string, header: TarHeader): string | null {
  const [folder, name, ...rest] = path.split("/");
  if (folder !== CIFAR10_FOLDER || rest.length !== 0 || !ARCHIVE_FILES.includes(name)) return null;
  checkSize(name, header.size, path, `its tar header at byte offset ${header.offset} declares`);
  return path;
}

function requireMembers(paths: Iterable<string>, archive: string): void {
  const found = new Set(paths);
  const missing = REQUIRED_FILES.map((name) => `${CIFAR10_FOLDER}/${name}`)
    .filter((path) => !found.has(path));
  if (missing.length > 0) {
    throw new Error(
      `Expected ${archive} to contain ${missing.join(", ")} but ` +
        `${missing.length === 1 ? "it is" : "they are"} missing`,
    );
  }
}

async function requireFolderFiles(folder: string, expected: string): Promise<void> {
  const sizes = new Map<string, number>();
  for (const name of REQUIRED_FILES) {
    const info = await Deno.stat(join(folder, name)).catch(() => null);
    if (info?.isFile) sizes.set(name, info.size);
  }
  const missing = REQUIRED_FILES.filter((name) => !sizes.has(name));
  if (missing.length > 0) {
    throw new Error(
      `Expected ${folder} to hold ${expected} but ` +
        `${missing.join(", ")} ${missing.length === 1 ? "is" : "are"} missing`,
    );
  }
  // Every size before any read: a short or oversized file is refused without reading it.
  for (const [name, size] of sizes) checkSize(name, size, join(folder, name), "found");
}

/** Why a fetch failed, with the fix: a host the task may not reach is granted with --allow-net. */
function fetchAdvice(url: string, error: unknown, md5: string | undefined): string {
  if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
    const host = new URL(url).host;
    const flags = url === CIFAR10_URL
      ? ""
      : ` --data ${url}${md5 === undefined ? "" : ` --md5 ${md5}`}`;
    return `this task may not connect to ${host}; grant it that host: ` +
      `deno run -P=train --allow-net=${host} bin/train.ts${flags}`;
  }
  return `${messageOf(error)}. ` +
    "Offline? Pass a local copy: --data <cifar-10-binary.tar.gz or extracted folder>";
}

/** `path` as one shell word: quoted only when it holds something a shell would split or expand. */
function shellQuote(path: string): string {
  return /^[\w./-]+$/.test(path) ? path : `'${path.replaceAll("'", "'\\''")}'`;
}

function checkMd5(md5: string): string {
  if (!/^[0-9a-f]{32}$/i.test(md5)) {
    throw new TypeError(
      `Expected md5 to be 32 hexadecimal digits but found ${JSON.stringify(md5)}`,
    );
  }
  return md5.toLowerCase();
}

async function isDirectory(path: string): Promise<boolean> {
  return (await Deno.stat(path).catch(() => null))?.isDirectory ?? false;
}

async function isFile(path: string): Promise<boolean> {
  return (await Deno.stat(path).catch(() => null))?.isFile ?? false;
}

async function removeIfPresent(path: string): Promise<void> {
  await Deno.remove(path, { recursive: true }).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
