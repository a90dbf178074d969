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

/**
 * Decodes a safetensors file, checking every header entry against the data.
 *
 * @param bytes The whole file.
 * @param source Where the bytes came from, for error messages.
 * @throws {Error} naming the source, the tensor and what was wrong.
 */
export function decodeSafetensors(bytes: Uint8Array, source = "safetensors data"): SafeTensors {
  if (bytes.length < 8) {
    throw new Error(`Expected at least 8 bytes in ${source} but found ${bytes.length}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength > bytes.length - 8) {
    throw new Error(
      `Expected a header of at most ${
        bytes.length - 8
      } bytes in ${source} but its length field says ${headerLength}`,
    );
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  } catch (error) {
    throw new Error(`Expected a JSON header in ${source}: ${(error as Error).message}`);
  }
  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;
  const metadata = (header.__metadata__ ?? {}) as Record<string, string>;
  const tensors = new Map<string, NamedArray>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const { dtype, shape, data_offsets: offsets } = entry as {
      dtype: string;
      shape: number[];
      data_offsets: [number, number];
    };
    if (!(dtype in BYTES)) {
      throw new Error(
        `Expected dtype F32, I32 or I64 for ${name} in ${source} but found ${dtype}`,
      );
    }
    const count = shape.reduce((a, b) => a * b, 1);
    const [begin, end] = offsets;
    if (!(begin >= 0 && end <= dataLength && end - begin === count * BYTES[dtype as SafeDtype])) {
      throw new Error(
        `Expected ${name} in ${source} (shape [${shape}], ${dtype}) to span ${
          count * BYTES[dtype as SafeDtype]
        } bytes within ${dataLength} but found offsets [${begin}, ${end}]`,
      );
    }
    // Copy, so the result is aligned and does not pin the file's buffer.
    const raw = bytes.slice(dataStart + begin, dataStart + end).buffer;
    const data = dtype === "F32"
      ? new Float32Array(raw)
      : dtype === "I32"
      ? new Int32Array(raw)
      : new BigInt64Array(raw);
    tensors.set(name, { dtype: dtype as SafeDtype, shape, data });
  }
  return { tensors, metadata };
}
