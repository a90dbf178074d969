import assert from "node:assert/strict";
import { decodeSafetensors, encodeSafetensors, type NamedArray } from "../lib/io/safetensors.ts";

Deno.test("encodeSafetensors() round-trips tensors and metadata with an 8-byte aligned header", () => {
  const tensors = new Map<string, NamedArray>([
    ["a.weight", { dtype: "F32", shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6.5]) }],
    ["steps", { dtype: "I32", shape: [], data: new Int32Array([7]) }],
    ["big", { dtype: "I64", shape: [1], data: new BigInt64Array([42n]) }],
  ]);
  const bytes = encodeSafetensors(tensors, { note: "hi" });
  const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal((8 + headerLength) % 8, 0);
  const decoded = decodeSafetensors(bytes);
  assert.deepEqual(decoded.metadata, { note: "hi" });
  assert.deepEqual([...decoded.tensors.keys()], ["a.weight", "steps", "big"]);
  assert.deepEqual(decoded.tensors.get("a.weight"), tensors.get("a.weight"));
  assert.deepEqual(decoded.tensors.get("steps"), tensors.get("steps"));
  assert.deepEqual(decoded.tensors.get("big"), tensors.get("big"));
});

Deno.test("decodeSafetensors() names the source and the problem in bad files", () => {
  assert.throws(
    () => decodeSafetensors(new Uint8Array(3), "x.safetensors"),
    /at least 8 bytes in x\.safetensors but found 3/,
  );
  const huge = new Uint8Array(16);
  new DataView(huge.buffer).setBigUint64(0, 1000n, true);
  assert.throws(
    () => decodeSafetensors(huge, "y"),
    /at most 8 bytes in y but its length field says 1000/,
  );
  const good = encodeSafetensors(
    new Map([["w", { dtype: "F32", shape: [4], data: new Float32Array(4) }]]),
  );
  assert.throws(
    () => decodeSafetensors(good.subarray(0, good.length - 4), "z"),
    /Expected w in z \(shape \[4\], F32\) to span 16 bytes within 12/,
  );
  const header = new TextEncoder().encode(
    JSON.stringify({ w: { dtype: "F16", shape: [1], data_offsets: [0, 2] } }),
  );
  const f16 = new Uint8Array(8 + header.length + 2);
  new DataView(f16.buffer).setBigUint64(0, BigInt(header.length), true);
  f16.set(header, 8);
  assert.throws(
    () => decodeSafetensors(f16, "h"),
    /Expected dtype F32, I32 or I64 for w in h but found F16/,
  );
});
