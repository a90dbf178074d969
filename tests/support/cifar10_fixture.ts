/**
 * CIFAR-10 stand-ins of the real sizes, for tests of the loader and of the commands that load
 * data: every batch file is exactly 10,000 records (a few chosen records repeated), as
 * `loadCifar10()` requires; folders of them, and `.tar.gz` archives written by a small ustar
 * writer independent of lib/io/tar.ts (tests/tar_test.ts checks the reader against its own).
 */
import { Buffer } from "node:buffer";
import { join } from "node:path";
import { CIFAR10_CLASSES, IMAGE_BYTES, RECORD_BYTES, type Split } from "../../lib/data.ts";
import { RECORDS_PER_BATCH } from "../../lib/io/cifar10_format.ts";
import {
  CIFAR10_FOLDER,
  CIFAR10_META_FILE,
  CIFAR10_TEST_FILE,
  CIFAR10_TRAIN_FILES,
} from "../../lib/io/download.ts";

const encoder = new TextEncoder();
const PLANE = IMAGE_BYTES / 3;

/** The six batch files in the order `loadCifar10()` reads them: 1..5, then the test batch. */
export const BATCH_FILES: readonly string[] = [...CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE];

/** `split` as batch-file records: per image the label, then its R, G and B planes. */
export function recordsOf(split: Split): Uint8Array {
  const out = new Uint8Array(split.count * RECORD_BYTES);
  for (let i = 0; i < split.count; i++) {
    const at = i * RECORD_BYTES;
    out[at] = split.labels[i];
    for (let p = 0; p < PLANE; p++) {
      for (let c = 0; c < 3; c++) {
        out[at + 1 + c * PLANE + p] = split.images[i * IMAGE_BYTES + p * 3 + c];
      }
    }
  }
  return out;
}

/**
 * A batch file of `count` records (10,000 by default: the real size): `pattern`'s records
 * repeated in order. A pattern of at most 10 records (under 32 KiB) also gzips small and fast.
 */
export function repeatRecords(pattern: Uint8Array, count = RECORDS_PER_BATCH): Uint8Array {
  if (pattern.length === 0 || pattern.length % RECORD_BYTES !== 0) {
    throw new RangeError(`Expected whole records but found ${pattern.length} bytes`);
  }
  const out = new Uint8Array(count * RECORD_BYTES);
  for (let at = 0; at < out.length; at += pattern.length) {
    out.set(pattern.subarray(0, Math.min(pattern.length, out.length - at)), at);
  }
  return out;
}

/** A batch file whose records all have every pixel byte equal to `value`, labels as given. */
export function labelledRecords(labels: number[], value: (i: number) => number): Uint8Array {
  const out = new Uint8Array(labels.length * RECORD_BYTES);
  labels.forEach((label, i) => {
    out.fill(value(i), i * RECORD_BYTES, (i + 1) * RECORD_BYTES);
    out[i * RECORD_BYTES] = label;
  });
  return out;
}

/** `batches.meta.txt` as the official archive has it. */
export const META_BYTES: Uint8Array = encoder.encode(CIFAR10_CLASSES.join("\n") + "\n\n");

/**
 * Batch `k` of {@linkcode BATCH_FILES} (0-based: 0..4 training, 5 test): record `i` is labelled
 * `(k + i) % 10` and every one of its pixel bytes is `20 * k + i % 10`. Built once each.
 */
export function standardBatch(k: number): Uint8Array {
  return STANDARD_BATCHES[k] ??= repeatRecords(
    labelledRecords(Array.from({ length: 10 }, (_, i) => (k + i) % 10), (i) => 20 * k + i),
  );
}
const STANDARD_BATCHES: Uint8Array[] = [];

/** The files of a good `cifar-10-batches-bin` folder, by name (a fresh map; the bytes are shared). */
export function standardFiles(): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>([[CIFAR10_META_FILE, META_BYTES]]);
  BATCH_FILES.forEach((name, k) => files.set(name, standardBatch(k)));
  return files;
}

/**
 * Writes a CIFAR-10 folder at `dir`: the standard files, with `override` replacing some of
 * them (`null` leaves one out). With `linkFrom` (a folder this wrote before), the files not
 * overridden are hard links to that folder's: 184 MB are written once, not per folder.
 */
export async function writeCifar10Folder(
  dir: string,
  override: Record<string, Uint8Array | null> = {},
  linkFrom?: string,
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const files = standardFiles();
  for (const [name, bytes] of Object.entries(override)) {
    if (bytes === null) files.delete(name);
    else files.set(name, bytes);
  }
  for (const [name, bytes] of files) {
    if (linkFrom !== undefined && !(name in override)) {
      await Deno.link(join(linkFrom, name), join(dir, name));
    } else {
      await Deno.writeFile(join(dir, name), bytes);
    }
  }
}

/** Whether two byte arrays hold the same bytes (natively compared: these are 150 MB). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length)
    .equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

/** One member of an archive built by {@linkcode tarGz}. */
export interface TarMember {
  name: string;
  body?: Uint8Array;
  /**
   * The size the header declares, when it should differ from the body's (a bomb, a lie).
   * @default the body's length
   */
  declaredSize?: number;
  /** @default "0" (a regular file) */
  type?: string;
}

/** The standard members of an archive, under `cifar-10-batches-bin/`, plus a readme. */
export function standardMembers(): TarMember[] {
  return [
    ...[...standardFiles()].map(([name, body]) => ({ name: `${CIFAR10_FOLDER}/${name}`, body })),
    { name: `${CIFAR10_FOLDER}/readme.html`, body: encoder.encode("<p>readme</p>") },
  ];
}

/** A ustar header; sizes of 8 GiB and more are written in GNU base-256. */
export function tarHeader(name: string, size: number, type = "0"): Uint8Array {
  const block = new Uint8Array(512);
  const put = (text: string, offset: number) => block.set(encoder.encode(text), offset);
  put(name, 0);
  put("0000644\0", 100);
  put("0000000\0", 108);
  put("0000000\0", 116);
  if (size < 8 ** 11) {
    put(size.toString(8).padStart(11, "0") + "\0", 124);
  } else {
    block[124] = 0x80;
    for (let i = 135, left = size; i > 124; i--, left = Math.floor(left / 256)) {
      block[i] = left % 256;
    }
  }
  put("14560254400\0", 136);
  put(type, 156);
  put("ustar\u000000", 257);
  put("        ", 148);
  put(block.reduce((sum, byte) => sum + byte, 0).toString(8).padStart(6, "0") + "\0 ", 148);
  return block;
}

/**
 * A `.tar.gz` of `members`, ending with the end-of-archive blocks unless `end` is false (an
 * archive cut after its last member). Each member is gzip'd on its own and the pieces are
 * concatenated: a multi-member gzip stream (RFC 1952), which gunzip reads as one, so that
 * archives differing in one member cost one member's compression. Pieces are cached by body.
 */
export async function tarGz(members: TarMember[], end = true): Promise<Uint8Array<ArrayBuffer>> {
  const pieces: Uint8Array[] = [];
  for (const member of members) pieces.push(await memberGz(member));
  if (end) pieces.push(await gzip([new Uint8Array(1024)]));
  const out = new Uint8Array(pieces.reduce((n, piece) => n + piece.length, 0));
  let at = 0;
  for (const piece of pieces) {
    out.set(piece, at);
    at += piece.length;
  }
  return out;
}

const memberCache = new WeakMap<Uint8Array, Map<string, Uint8Array>>();
const NO_BODY = new Uint8Array(0);

async function memberGz(member: TarMember): Promise<Uint8Array> {
  const body = member.body ?? NO_BODY;
  const size = member.declaredSize ?? body.length;
  const key = `${member.name}\0${size}\0${member.type ?? "0"}`;
  const cached = memberCache.get(body)?.get(key);
  if (cached !== undefined) return cached;
  const padding = new Uint8Array((512 - body.length % 512) % 512);
  const gz = await gzip([tarHeader(member.name, size, member.type), body, padding]);
  if (!memberCache.has(body)) memberCache.set(body, new Map());
  memberCache.get(body)!.set(key, gz);
  return gz;
}

async function gzip(parts: Uint8Array[]): Promise<Uint8Array> {
  const stream = new Blob(parts as Uint8Array<ArrayBuffer>[]).stream()
    .pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
