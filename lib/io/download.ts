/**
 * Getting the CIFAR-10 binary files the way torchvision's `download=True`
 * does: download the archive once into a root folder, check its md5, extract
 * it, and reuse the extracted folder on every later run without touching the
 * network. A local `.tar.gz` or an already-extracted folder works too.
 *
 * Nothing half-done is ever trusted: a download goes to a `.part` file that
 * gets its final name only after its length and md5 check out, and
 * extraction writes into a `.partial` folder that is renamed into place only
 * when every expected file is in it.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { extractTar, readTarFiles } from "./tar.ts";
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

const REQUIRED_FILES = [...CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE, CIFAR10_META_FILE];
// Extraction writes these and nothing else; readme.html is kept when present but not required.
const ARCHIVE_FILES = [...REQUIRED_FILES, "readme.html"];

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
   * checked for a local archive when given; ignored for a folder.
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

/** The CIFAR-10 files found by {@linkcode openCifar10Files}, all required ones checked present. */
export interface Cifar10Files {
  /** The folder or archive they come from. */
  location: string;
  /** @returns How to name file `name` in messages, e.g. `data/cifar-10-batches-bin/test_batch.bin`. */
  pathOf(name: string): string;
  /** @returns The bytes of file `name` (e.g. `"test_batch.bin"`). */
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
    throw new Error(
      `Could not download ${url}: ${messageOf(error)}. ` +
        "Offline? Pass a local copy: --data <cifar-10-binary.tar.gz or extracted folder>",
      { cause: error },
    );
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
 * omitted) and they are not cached there yet. Checks that every required
 * file is present; the caller parses them.
 *
 * @param options Where to get the data; see {@linkcode LoadOptions}.
 * @returns Access to the files.
 * @throws {Error} For a missing source, missing files, a failed download or a bad archive, naming the path.
 *
 * @example
 * ```ts
 * import { openCifar10Files } from "./download.ts";
 * if (import.meta.main) {
 *   const files = await openCifar10Files({ root: "./data", log: console.log });
 *   console.log((await files.read("batches.meta.txt")).length);
 * }
 * ```
 */
export async function openCifar10Files(options: LoadOptions = {}): Promise<Cifar10Files> {
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
    const folder = await ensureDownloaded(url, checkMd5(md5), root, options.onProgress, log);
    return folderFiles(folder);
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
    const nested = join(source, CIFAR10_FOLDER);
    const folder = (await isDirectory(nested)) ? nested : source;
    const expected = folder === source
      ? `the CIFAR-10 binary files or a ${CIFAR10_FOLDER}/ subfolder`
      : "the CIFAR-10 binary files";
    await requireFolderFiles(folder, expected, "");
    log(`Using ${folder}`);
    return folderFiles(folder);
  }
  if (!/\.(tar\.gz|tgz)$/i.test(source)) {
    throw new Error(
      `Expected source ${source} to be a folder or a .tar.gz archive but found a file ` +
        `with another extension`,
    );
  }
  log(`Reading ${source}`);
  return await archiveFiles(source, options.md5 === undefined ? undefined : checkMd5(options.md5));
}

async function ensureDownloaded(
  url: string,
  md5: string,
  root: string,
  onProgress: ((progress: DownloadProgress) => void) | undefined,
  log: (message: string) => void,
): Promise<string> {
  const folder = join(root, CIFAR10_FOLDER);
  if (await isDirectory(folder)) {
    const hint = " (delete the folder to download it again)";
    await requireFolderFiles(folder, "the CIFAR-10 binary files", hint);
    log(`Using ${folder} (already downloaded)`);
    return folder;
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
  await extractArchive(archive, root);
  return folder;
}

/** Extracts into `root/cifar-10-batches-bin.partial/` and renames the result into place. */
async function extractArchive(archive: string, root: string): Promise<void> {
  const partial = join(root, `${CIFAR10_FOLDER}.partial`);
  await removeIfPresent(partial);
  try {
    const file = await Deno.open(archive);
    let written: string[];
    try {
      const tar = file.readable.pipeThrough(new DecompressionStream("gzip"));
      written = await extractTar(tar, partial, { select: selectMember });
    } catch (error) {
      throw new Error(`Could not extract ${archive}: ${messageOf(error)}`, { cause: error });
    }
    requireMembers(written, archive);
    await Deno.rename(join(partial, CIFAR10_FOLDER), join(root, CIFAR10_FOLDER));
  } finally {
    await removeIfPresent(partial);
  }
}

async function archiveFiles(path: string, md5: string | undefined): Promise<Cifar10Files> {
  const hash = md5 === undefined ? null : createHash("md5");
  const file = await Deno.open(path);
  let compressed: ReadableStream<Uint8Array<ArrayBuffer>> = file.readable;
  if (hash !== null) {
    // Hash the compressed bytes on their way to the decompressor: one pass over the file.
    compressed = compressed.pipeThrough(
      new TransformStream({
        transform(chunk, controller) {
          hash.update(chunk);
          controller.enqueue(chunk);
        },
      }),
    );
  }
  let files: Map<string, Uint8Array>;
  try {
    const tar = compressed.pipeThrough(new DecompressionStream("gzip"));
    files = await readTarFiles(tar, { select: selectMember });
  } catch (error) {
    throw new Error(`Could not read ${path}: ${messageOf(error)}`, { cause: error });
  }
  const actualMd5 = hash?.digest("hex");
  if (actualMd5 !== md5) {
    throw new Error(`Expected md5 ${md5} for ${path} but found ${actualMd5}`);
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

function folderFiles(folder: string): Cifar10Files {
  return {
    location: folder,
    pathOf: (name) => join(folder, name),
    read: (name) => Deno.readFile(join(folder, name)),
  };
}

function selectMember(path: string): string | null {
  const [folder, name, ...rest] = path.split("/");
  return folder === CIFAR10_FOLDER && rest.length === 0 && ARCHIVE_FILES.includes(name)
    ? path
    : null;
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

async function requireFolderFiles(folder: string, expected: string, hint: string): Promise<void> {
  const missing: string[] = [];
  for (const name of REQUIRED_FILES) {
    if (!(await isFile(join(folder, name)))) missing.push(name);
  }
  if (missing.length > 0) {
    throw new Error(
      `Expected ${folder} to hold ${expected} but ` +
        `${missing.join(", ")} ${missing.length === 1 ? "is" : "are"} missing${hint}`,
    );
  }
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
