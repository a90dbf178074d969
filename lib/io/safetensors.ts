/**
 * The safetensors file format (what `safetensors.torch.save_file` writes): an 8-byte
 * little-endian header length, a JSON header mapping each name to its dtype, shape and
 * byte range, then the raw little-endian data. Used for checkpoints and for carrying
 * weights between PyTorch and TensorFlow.js.
 *
 * @module
 */

/** The dtypes this project reads and writes. */
export type SafeDtype = "F32" | "I32" | "I64";

/** One named tensor's data, row-major. */
export interface NamedArray {
  dtype: SafeDtype;
  shape: number[];
  data: Float32Array | Int32Array | BigInt64Array;
}

/** A decoded file: the tensors in file order and the free-form string metadata. */
export interface SafeTensors {
  tensors: Map<string, NamedArray>;
  metadata: Record<string, string>;
}

const BYTES: Record<SafeDtype, number> = { F32: 4, I32: 4, I64: 8 };

/**
 * Encodes tensors (and string metadata) as one safetensors file.
 *
 * @example
 * ```ts
 * import { decodeSafetensors, encodeSafetensors } from "./safetensors.ts";
 * const bytes = encodeSafetensors(new Map([["w", { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) }]]));
 * console.log(decodeSafetensors(bytes).tensors.get("w")?.data); // Float32Array [1, 2]
 * ```
 */
export function encodeSafetensors(
  tensors: Map<string, NamedArray>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    const size = t.data.length * BYTES[t.dtype];
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  let json = JSON.stringify(header);
  // The format asks for the data to start 8-byte aligned; pad the header with spaces.
  json += " ".repeat((8 - ((8 + new TextEncoder().encode(json).length) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const t of tensors.values()) {
    // Typed arrays are little-endian on every platform Deno runs on.
    const raw = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    out.set(raw, at);
    at += raw.length;
  }
  return out;
}

/** One header entry once checked: where its bytes are, relative to the data section. */
interface HeaderEntry {
  name: string;
  dtype: SafeDtype;
  shape: number[];
  begin: number;
  end: number;
}

/**
 * Decodes a safetensors file, checking the header as the format defines it: a JSON object
 * whose entries each have a known dtype, a shape of non-negative integers and a pair of byte
 * offsets spanning exactly that many bytes, the spans together covering the data section
 * contiguously, without overlaps, gaps or trailing bytes.
 *
 * @param bytes The whole file.
 * @param source Where the bytes came from, for error messages.
 * @throws {Error} naming the source, the tensor and what was wrong.
 *
 * @example
 * ```ts
 * import { decodeSafetensors } from "./safetensors.ts";
 * const header = new TextEncoder().encode("null");
 * const bytes = new Uint8Array(8 + header.length);
 * new DataView(bytes.buffer).setBigUint64(0, BigInt(header.length), true);
 * bytes.set(header, 8);
 * try {
 *   decodeSafetensors(bytes, "bad.safetensors");
 * } catch (error) {
 *   console.log((error as Error).message);
 *   // Expected the header of bad.safetensors to be a JSON object but found null
 * }
 * ```
 */
export function decodeSafetensors(bytes: Uint8Array, source = "safetensors data"): SafeTensors {
  const { header, dataStart } = readHeader(bytes, source);
  const dataLength = bytes.length - dataStart;
  const metadata = readMetadata(header.__metadata__, source);
  const entries = Object.entries(header)
    .filter(([name]) => name !== "__metadata__")
    .map(([name, entry]) => readEntry(name, entry, dataLength, source));
  checkContiguous(entries, dataLength, source);
  const tensors = new Map<string, NamedArray>();
  for (const { name, dtype, shape, begin, end } of entries) {
    // Copy, so the result is aligned and does not pin the file's buffer.
    const raw = bytes.slice(dataStart + begin, dataStart + end).buffer;
    const data = dtype === "F32"
      ? new Float32Array(raw)
      : dtype === "I32"
      ? new Int32Array(raw)
      : new BigInt64Array(raw);
    tensors.set(name, { dtype, shape, data });
  }
  return { tensors, metadata };
}

/** The 8-byte length, then that many bytes of JSON, which must be an object. */
function readHeader(
  bytes: Uint8Array,
  source: string,
): { header: Record<string, unknown>; dataStart: number } {
  if (bytes.length < 8) {
    throw new Error(`Expected at least 8 bytes in ${source} but found ${bytes.length}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(bytes.length - 8)) {
    throw new Error(
      `Expected a header of at most ${
        bytes.length - 8
      } bytes in ${source} but its length field says ${headerLength}`,
    );
  }
  const dataStart = 8 + Number(headerLength);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, dataStart)));
  } catch (error) {
    throw new Error(`Expected a JSON header in ${source}: ${(error as Error).message}`);
  }
  if (!isObject(header)) {
    throw new Error(
      `Expected the header of ${source} to be a JSON object but found ${describe(header)}`,
    );
  }
  return { header, dataStart };
}

/** `__metadata__`: absent, or an object of strings. */
function readMetadata(value: unknown, source: string): Record<string, string> {
  if (value === undefined) return {};
  if (!isObject(value) || !Object.values(value).every((v) => typeof v === "string")) {
    throw new Error(
      `Expected __metadata__ in ${source} to be an object of strings but found ${describe(value)}`,
    );
  }
  return value as Record<string, string>;
}

/** One tensor's entry: dtype, shape and offsets, each of the right type and consistent. */
function readEntry(name: string, entry: unknown, dataLength: number, source: string): HeaderEntry {
  const where = `${name} in ${source}`;
  if (!isObject(entry)) {
    throw new Error(`Expected ${where} to be an object but found ${describe(entry)}`);
  }
  const { dtype, shape, data_offsets: offsets } = entry;
  // Object.hasOwn: a dtype such as "__proto__" or "toString" must not find Object's prototype.
  if (typeof dtype !== "string" || !Object.hasOwn(BYTES, dtype)) {
    const found = typeof dtype === "string" ? dtype : describe(dtype);
    throw new Error(`Expected dtype F32, I32 or I64 for ${where} but found ${found}`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new Error(
      `Expected the shape of ${where} to be an array of integers >= 0 but found ${describe(shape)}`,
    );
  }
  if (
    !Array.isArray(offsets) || offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)
  ) {
    throw new Error(
      `Expected data_offsets of ${where} to be a pair of integers >= 0 but found ${
        describe(offsets)
      }`,
    );
  }
  const size = shape.reduce((a: number, b: number) => a * b, 1) * BYTES[dtype as SafeDtype];
  const [begin, end] = offsets as [number, number];
  if (!(begin <= end && end <= dataLength && end - begin === size)) {
    throw new Error(
      `Expected ${where} (shape [${shape}], ${dtype}) to span ${size} bytes within ${dataLength} but found offsets [${begin}, ${end}]`,
    );
  }
  return { name, dtype: dtype as SafeDtype, shape, begin, end };
}

/** The format's rule: the spans, in offset order, tile the data section exactly. */
function checkContiguous(entries: HeaderEntry[], dataLength: number, source: string): void {
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0, previous: string | null = null;
  for (const { name, begin, end } of sorted) {
    if (begin !== at) {
      const where = previous === null ? "" : `, where ${previous} ends,`;
      const what = begin < at ? "overlapping" : "leaving a gap";
      throw new Error(
        `Expected ${name} in ${source} to start at data byte ${at}${where} but found ${begin} ` +
          `(${what}; safetensors data must be contiguous)`,
      );
    }
    at = end;
    previous = name;
  }
  if (at !== dataLength) {
    throw new Error(
      `Expected the tensors in ${source} to cover its ${dataLength} data bytes but they end at byte ${at}`,
    );
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A found value for a message: JSON, shortened. */
function describe(value: unknown): string {
  const text = value === undefined ? "none" : JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
