import assert from "node:assert/strict";
import { decode } from "fast-png";
import { encodePng, pngDataUrl } from "../lib/io/png.ts";

/** `width * height` RGB pixels that differ from their neighbours (nothing to compress away). */
function pixels(width: number, height: number): Uint8Array {
  return new Uint8Array(width * height * 3).map((_, i) => (i * 31 + (i >> 7)) % 256);
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

Deno.test("encodePng() round-trips through fast-png's decode as 8-bit RGB", async () => {
  for (const [width, height] of [[32, 32], [1, 1], [7, 3], [300, 200]]) {
    const rgb = pixels(width, height);
    const png = await encodePng(rgb, width, height);
    assert.deepEqual([...png.subarray(0, 8)], PNG_SIGNATURE);
    const decoded = decode(png);
    assert.deepEqual(
      [decoded.width, decoded.height, decoded.channels, decoded.depth],
      [width, height, 3, 8],
    );
    assert.deepEqual(new Uint8Array(decoded.data), rgb, `${width}x${height}`);
  }
});

Deno.test("encodePng() encodes only the view it is given, as imageAt() returns", async () => {
  const images = pixels(32, 64); // two 32x32 images, one after the other
  const second = images.subarray(32 * 32 * 3);
  const decoded = decode(await encodePng(second, 32, 32));
  assert.deepEqual(new Uint8Array(decoded.data), second.slice());
});

Deno.test("encodePng() rejects a buffer of the wrong length, naming both lengths", async () => {
  await assert.rejects(() => encodePng(new Uint8Array(5), 2, 2), {
    name: "RangeError",
    message: "Expected 12 bytes for a 2x2 RGB image but found 5",
  });
});

Deno.test("encodePng() rejects a size that is not an integer greater than 0", async () => {
  await assert.rejects(() => encodePng(new Uint8Array(0), 0, 0), {
    name: "RangeError",
    message: "Expected width to be an integer greater than 0 but found 0",
  });
  await assert.rejects(() => encodePng(new Uint8Array(0), 4, 0), {
    name: "RangeError",
    message: "Expected height to be an integer greater than 0 but found 0",
  });
  await assert.rejects(() => encodePng(new Uint8Array(6), 0.5, 4), {
    name: "RangeError",
    message: "Expected width to be an integer greater than 0 but found 0.5",
  });
});

Deno.test("pngDataUrl() is encodePng()'s bytes in base64", async () => {
  const rgb = pixels(32, 32);
  const url = await pngDataUrl(rgb, 32, 32);
  const prefix = "data:image/png;base64,";
  assert.ok(url.startsWith(prefix));
  const bytes = Uint8Array.from(atob(url.slice(prefix.length)), (c) => c.charCodeAt(0));
  assert.deepEqual(bytes, await encodePng(rgb, 32, 32));
});
