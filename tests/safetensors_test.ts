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

/** A file with `header` (any JSON) and `dataBytes` zero bytes of data. */
function withHeader(header: unknown, dataBytes = 0): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const bytes = new Uint8Array(8 + json.length + dataBytes);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(json.length), true);
  bytes.set(json, 8);
  return bytes;
}

Deno.test("decodeSafetensors() names the file and what it expected in a malformed header", () => {
  const w = (entry: unknown) => ({ w: entry });
  const cases: [unknown, number, string][] = [
    [null, 0, "Expected the header of f.safetensors to be a JSON object but found null"],
    [[1], 0, "Expected the header of f.safetensors to be a JSON object but found [1]"],
    [
      { __metadata__: null },
      0,
      "Expected __metadata__ in f.safetensors to be an object of strings but found null",
    ],
    [
      { __metadata__: { a: 1 } },
      0,
      'Expected __metadata__ in f.safetensors to be an object of strings but found {"a":1}',
    ],
    [w(7), 0, "Expected w in f.safetensors to be an object but found 7"],
    [
      w({ dtype: "__proto__", shape: [1], data_offsets: [0, 4] }),
      4,
      "Expected dtype F32, I32 or I64 for w in f.safetensors but found __proto__",
    ],
    [
      w({ dtype: "toString", shape: [1], data_offsets: [0, 4] }),
      4,
      "Expected dtype F32, I32 or I64 for w in f.safetensors but found toString",
    ],
    [
      w({ dtype: "F32", shape: 4, data_offsets: [0, 16] }),
      16,
      "Expected the shape of w in f.safetensors to be an array of integers >= 0 but found 4",
    ],
    [
      w({ dtype: "F32", shape: [-1], data_offsets: [0, 4] }),
      4,
      "Expected the shape of w in f.safetensors to be an array of integers >= 0 but found [-1]",
    ],
    [
      w({ dtype: "F32", shape: [1], data_offsets: 4 }),
      4,
      "Expected data_offsets of w in f.safetensors to be a pair of integers >= 0 but found 4",
    ],
    [
      w({ dtype: "F32", shape: [1], data_offsets: [0, 2, 4] }),
      4,
      "Expected data_offsets of w in f.safetensors to be a pair of integers >= 0 but found [0,2,4]",
    ],
    [
      w({ dtype: "F32", shape: [1] }),
      4,
      "Expected data_offsets of w in f.safetensors to be a pair of integers >= 0 but found none",
    ],
    [
      w({ dtype: "F32", shape: [1], data_offsets: [4, 0] }),
      4,
      "Expected w in f.safetensors (shape [1], F32) to span 4 bytes within 4 but found offsets [4, 0]",
    ],
    [
      {
        a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
        b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
      },
      12,
      "Expected b in f.safetensors to start at data byte 8, where a ends, but found 4 " +
      "(overlapping; safetensors data must be contiguous)",
    ],
    [
      {
        a: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
        b: { dtype: "F32", shape: [1], data_offsets: [8, 12] },
      },
      12,
      "Expected b in f.safetensors to start at data byte 4, where a ends, but found 8 " +
      "(leaving a gap; safetensors data must be contiguous)",
    ],
    [
      w({ dtype: "I32", shape: [1], data_offsets: [4, 8] }),
      8,
      "Expected w in f.safetensors to start at data byte 0 but found 4 " +
      "(leaving a gap; safetensors data must be contiguous)",
    ],
    [
      w({ dtype: "F32", shape: [1], data_offsets: [0, 4] }),
      12,
      "Expected the tensors in f.safetensors to cover its 12 data bytes but they end at byte 4",
    ],
  ];
  for (const [header, dataBytes, message] of cases) {
    assert.throws(() => decodeSafetensors(withHeader(header, dataBytes), "f.safetensors"), {
      message,
    });
  }
  // Tensors stored in another order than the header lists them (as safetensors.torch writes
  // them) and empty tensors are fine.
  const ok = decodeSafetensors(withHeader({
    b: { dtype: "F32", shape: [1], data_offsets: [4, 8] },
    a: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
    e: { dtype: "I64", shape: [0], data_offsets: [8, 8] },
  }, 8));
  assert.deepEqual([...ok.tensors.keys()], ["b", "a", "e"]);
});
