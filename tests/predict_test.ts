/**
 * lib/predict.ts (and the shared web/preprocess.js): decoding, crop + area resize against
 * hand-computed values and Pillow's BOX filter, ranking, and `deno task predict` end to end.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { encode as encodeFastPng } from "fast-png";
import jpeg from "jpeg-js";
import { constants as zlib, deflateRawSync, deflateSync } from "node:zlib";
import { initBackend } from "../lib/backends/init.ts";
import { CIFAR10_CLASSES, IMAGE_BYTES, normalizeInto } from "../lib/data.ts";
import { resnet18 } from "../lib/model.ts";
import { saveModel } from "../lib/io/tfjs_model.ts";
import { encodePng } from "../lib/io/png.ts";
import {
  checkImageHeader,
  classifyImageFile,
  classifyImageFiles,
  classifyPixels,
  classifySplit,
  cropAndResize,
  decodeImage,
  exifOrientation,
  formatResults,
  ImageError,
  loadRunModel,
  MAX_DECODE_BYTES,
  MAX_FILE_BYTES,
  orient,
  readImageFile,
  toCifarPixels,
  topK,
} from "../lib/predict/classify.ts";
import { normalizeRgb } from "../lib/predict/preprocess.js";

await initBackend("cpu");

const ROOT = new URL("..", import.meta.url);

/** A smooth, non-square RGB test picture. */
function picture(width: number, height: number): Uint8Array {
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      rgb[i] = (255 * x) / (width - 1);
      rgb[i + 1] = (255 * y) / (height - 1);
      rgb[i + 2] = (x * 7 + y * 3) % 256;
    }
  }
  return rgb;
}

function rgba(rgb: Uint8Array, alpha = 255): Uint8Array {
  const out = new Uint8Array((rgb.length / 3) * 4).fill(alpha);
  for (let i = 0; i < rgb.length / 3; i++) out.set(rgb.subarray(i * 3, i * 3 + 3), i * 4);
  return out;
}

// ------------------------------------------------------------------ crop and resize

Deno.test("cropAndResize() returns a 32x32 image unchanged", () => {
  const rgb = picture(32, 32);
  assert.deepEqual(cropAndResize(rgb, 32, 32, 3, 32), rgb);
  assert.deepEqual(cropAndResize(rgba(rgb), 32, 32, 4, 32), rgb);
});

Deno.test("cropAndResize() center-crops and averages areas with fractional weights", () => {
  // 5x3 gray image: the centered 3x3 square is columns 1..3. Scaling 3 -> 2 gives each
  // output cell 1.5 source pixels: weights 2/3 and 1/3 on each axis.
  const values = [
    [9, 0, 30, 60, 9],
    [9, 90, 120, 150, 9],
    [9, 180, 210, 240, 9],
  ];
  const rgb = new Uint8Array(values.flat().flatMap((v) => [v, v, 255 - v]));
  const out = cropAndResize(rgb, 5, 3, 3, 2);
  const w = [2 / 3, 1 / 3];
  const expected = (oy: number, ox: number) => {
    let sum = 0;
    for (let j = 0; j < 2; j++) {
      for (let i = 0; i < 2; i++) {
        const sy = oy === 0 ? j : 2 - j;
        const sx = ox === 0 ? i : 2 - i;
        sum += w[j] * w[i] * values[sy][1 + sx];
      }
    }
    return Math.round(sum);
  };
  // Top-left: (4*0 + 2*30 + 2*90 + 1*120) / 9 = 40
  assert.equal(expected(0, 0), 40);
  for (let oy = 0; oy < 2; oy++) {
    for (let ox = 0; ox < 2; ox++) {
      assert.equal(out[(oy * 2 + ox) * 3], expected(oy, ox), `pixel (${ox}, ${oy})`);
    }
  }
  // A tall image crops rows: the leftover row of a 2x3 image goes to the bottom.
  const tall = new Uint8Array([1, 1, 1, 1, 1, 1, 5, 5, 5, 5, 5, 5, 7, 7, 7, 7, 7, 7]);
  assert.deepEqual(cropAndResize(tall, 2, 3, 3, 1), new Uint8Array([3, 3, 3]));
});

Deno.test("cropAndResize() enlarges a small image by repeating pixels", () => {
  const out = cropAndResize(new Uint8Array([10, 20, 30, 40, 50, 60]), 2, 1, 3, 2);
  // The 1x1 crop is the left pixel (the odd leftover column goes right).
  assert.deepEqual(out, new Uint8Array([10, 20, 30, 10, 20, 30, 10, 20, 30, 10, 20, 30]));
});

Deno.test("cropAndResize() names a wrong size, channel count or dimension", () => {
  assert.throws(
    () => cropAndResize(new Uint8Array(10), 2, 2, 3, 32),
    /Expected 12 bytes for a 2x2 image with 3 channels but found 10/,
  );
  assert.throws(
    () => cropAndResize(new Uint8Array(8), 2, 2, 2, 32),
    /Expected channels to be 3 or 4 but found 2/,
  );
  assert.throws(
    () => cropAndResize(new Uint8Array(0), 0, 2, 3, 32),
    /Expected width to be an integer >= 1 but found 0/,
  );
});

/**
 * Exact area averages by another route: repeat every source pixel `size` times along each
 * axis, then average blocks of `side` (all integer sums until the one division).
 */
function areaMeanByRepetition(rgb: Uint8Array, width: number, height: number, size: number) {
  const side = Math.min(width, height);
  const [left, top] = [Math.floor((width - side) / 2), Math.floor((height - side) / 2)];
  const source = (r: number) => Math.floor(r / size); // repeated index -> crop index
  const rows = new Float64Array(side * size * 3); // [crop row, output column, channel]
  for (let y = 0; y < side; y++) {
    for (let ox = 0; ox < size; ox++) {
      for (let r = ox * side; r < (ox + 1) * side; r++) {
        const at = ((top + y) * width + left + source(r)) * 3;
        for (let c = 0; c < 3; c++) rows[(y * size + ox) * 3 + c] += rgb[at + c];
      }
    }
  }
  const out = new Float64Array(size * size * 3);
  for (let oy = 0; oy < size; oy++) {
    for (let r = oy * side; r < (oy + 1) * side; r++) {
      for (let i = 0; i < size * 3; i++) out[oy * size * 3 + i] += rows[source(r) * size * 3 + i];
    }
  }
  return out.map((v) => v / (side * side));
}

Deno.test("cropAndResize() equals exact area averages computed by pixel repetition", () => {
  for (const [width, height] of [[300, 200], [45, 61], [37, 37], [20, 24], [33, 32]]) {
    // A sawtooth in blue, so partial pixels at cell edges matter.
    const rgb = picture(width, height);
    const ours = cropAndResize(rgb, width, height, 3, 32);
    const exact = areaMeanByRepetition(rgb, width, height, 32);
    const worst = Math.max(...exact.map((v, i) => Math.abs(ours[i] - v)));
    assert.ok(worst <= 0.5 + 1e-9, `${width}x${height}: off by ${worst} from the exact mean`);
  }
});

// ------------------------------------------------------------------ decoding

Deno.test("decodeImage() reads RGB, gray, gray+alpha, RGBA, 16-bit and palette PNGs", async () => {
  const rgb = picture(5, 4);
  assert.deepEqual(decodeImage(await encodePng(rgb, 5, 4), "rgb.png"), {
    width: 5,
    height: 4,
    data: rgb,
  });
  const gray = decodeImage(
    encodeFastPng({ width: 2, height: 1, data: new Uint8Array([7, 200]), channels: 1, depth: 8 }),
    "gray.png",
  );
  assert.deepEqual(gray.data, new Uint8Array([7, 7, 7, 200, 200, 200]));
  // Alpha composites over white: 0 at alpha 0 is white; 0 at alpha 51 is 255 * 0.8 = 204.
  const grayAlpha = decodeImage(
    encodeFastPng({ width: 2, height: 1, data: new Uint8Array([0, 0, 0, 51]), channels: 2 }),
    "ga.png",
  );
  assert.deepEqual(grayAlpha.data, new Uint8Array([255, 255, 255, 204, 204, 204]));
  const withAlpha = decodeImage(
    encodeFastPng({ width: 1, height: 1, data: new Uint8Array([100, 0, 255, 128]), channels: 4 }),
    "rgba.png",
  );
  // 100 * 128/255 + 255 * 127/255 = 177.2; 0 -> 127; 255 -> 255
  assert.deepEqual(withAlpha.data, new Uint8Array([177, 127, 255]));
  const deep = decodeImage(
    encodeFastPng({
      width: 1,
      height: 1,
      data: new Uint16Array([65535, 0, 32896]),
      channels: 3,
      depth: 16,
    }),
    "deep.png",
  );
  assert.deepEqual(deep.data, new Uint8Array([255, 0, 128]));
  // 2-bit indices 0,1,2 / 3,0,1 packed per row; the first two palette entries are see-through.
  const indexed = decodeImage(
    encodeFastPng({
      width: 3,
      height: 2,
      data: new Uint8Array([0b00_01_10_00, 0b11_00_01_00]),
      channels: 1,
      depth: 2,
      palette: [[0, 0, 255, 0], [0, 255, 0, 255 * 0.6], [255, 0, 0, 255], [9, 9, 9, 255]],
    }),
    "indexed.png",
  );
  assert.deepEqual(
    indexed.data,
    new Uint8Array([
      255,
      255,
      255,
      102,
      255,
      102,
      255,
      0,
      0,
      9,
      9,
      9,
      255,
      255,
      255,
      102,
      255,
      102,
    ]),
  );
});

/** A JPEG with an EXIF APP1 segment whose orientation tag is `orientation`. */
function jpegWithOrientation(rgb: Uint8Array, width: number, height: number, orientation: number) {
  const plain = new Uint8Array(jpeg.encode({ data: rgba(rgb), width, height }, 95).data);
  const tiff = [
    0x49,
    0x49,
    0x2a,
    0x00,
    0x08,
    0x00,
    0x00,
    0x00, // "II", 42, IFD0 at 8
    0x01,
    0x00, // one entry
    0x12,
    0x01,
    0x03,
    0x00,
    0x01,
    0x00,
    0x00,
    0x00,
    orientation,
    0x00,
    0x00,
    0x00,
    0x00,
    0x00,
    0x00,
    0x00, // no next IFD
  ];
  const payload = [0x45, 0x78, 0x69, 0x66, 0x00, 0x00, ...tiff]; // "Exif\0\0"
  const length = payload.length + 2;
  const app1 = [0xff, 0xe1, length >> 8, length & 0xff, ...payload];
  return new Uint8Array([...plain.subarray(0, 2), ...app1, ...plain.subarray(2)]);
}

Deno.test("decodeImage() reads a JPEG and applies its EXIF orientation", () => {
  // 16x8: left half red, right half blue (flat areas survive JPEG nearly exactly).
  const rgb = new Uint8Array(16 * 8 * 3);
  for (let i = 0; i < 16 * 8; i++) rgb.set(i % 16 < 8 ? [230, 20, 20] : [20, 20, 230], i * 3);
  const near = (a: ArrayLike<number>, b: number[]) =>
    Array.from(a).every((v, i) => Math.abs(v - b[i]) <= 12);
  const upright = decodeImage(jpegWithOrientation(rgb, 16, 8, 1), "up.jpg");
  assert.deepEqual([upright.width, upright.height], [16, 8]);
  assert.ok(near(upright.data.subarray(0, 3), [230, 20, 20]), `${upright.data.subarray(0, 3)}`);
  // 6: shown turned 90 degrees clockwise, so the left (red) half ends up on top.
  const turned = decodeImage(jpegWithOrientation(rgb, 16, 8, 6), "turned.jpg");
  assert.deepEqual([turned.width, turned.height], [8, 16]);
  assert.ok(near(turned.data.subarray(0, 3), [230, 20, 20]), "top-left is red");
  assert.ok(near(turned.data.subarray((15 * 8 + 7) * 3, (15 * 8 + 7) * 3 + 3), [20, 20, 230]));
});

Deno.test("orient() maps all eight EXIF orientations", () => {
  // 2x1 image [A, B]; where A lands for each orientation.
  const image = { width: 2, height: 1, data: new Uint8Array([1, 1, 1, 2, 2, 2]) };
  const first = (o: number) => {
    const r = orient(image, o);
    return `${r.width}x${r.height}:${Array.from(r.data.filter((_, i) => i % 3 === 0))}`;
  };
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8].map(first), [
    "2x1:1,2",
    "2x1:2,1",
    "2x1:2,1",
    "2x1:1,2",
    "1x2:1,2",
    "1x2:1,2",
    "1x2:2,1",
    "1x2:2,1",
  ]);
});

Deno.test("exifOrientation() falls back to upright for missing or malformed EXIF", () => {
  assert.equal(exifOrientation(undefined), 1);
  assert.equal(exifOrientation(new Uint8Array([0, 1, 2])), 1);
  assert.equal(exifOrientation(new Uint8Array([0, 0x4d, 0x4d, 0, 42, 0, 0, 0, 99])), 1);
});

Deno.test("decodeImage() names the file and what it found instead of an image", async () => {
  const cases: [Uint8Array, RegExp][] = [
    [new Uint8Array(0), /^empty\.png: expected a PNG or JPEG image but found an empty file$/],
    [
      new TextEncoder().encode("hello world"),
      /^empty\.png: .* but found text starting "hello wo"$/,
    ],
    [new TextEncoder().encode("GIF89a...."), /but found a GIF image$/],
    [new Uint8Array([0, 1, 2, 250]), /but found bytes 00 01 02 fa$/],
  ];
  for (const [bytes, pattern] of cases) {
    assert.throws(
      () => decodeImage(bytes, "empty.png"),
      (e) => e instanceof ImageError && pattern.test(e.message),
    );
  }
  const png = await encodePng(picture(8, 8), 8, 8);
  assert.throws(
    () => decodeImage(png.subarray(0, 40), "cut.png"),
    /^ImageError: cut\.png: not a readable PNG \(.+\)$/,
  );
  const huge = png.slice();
  new DataView(huge.buffer).setUint32(16, 20000); // IHDR width
  new DataView(huge.buffer).setUint32(20, 6000); // IHDR height: 120 megapixels
  assert.throws(
    () => decodeImage(huge, "huge.png"),
    /^ImageError: huge\.png: expected at most 100 megapixels but found 20000x6000$/,
  );
  const jpg = jpegWithOrientation(picture(8, 8), 8, 8, 1);
  assert.throws(
    () => decodeImage(jpg.subarray(0, 60), "cut.jpg"),
    /^ImageError: cut\.jpg: not a readable JPEG \(.+\)$/,
  );
});

// ------------------------------------------------------------------ hostile files

/** CRC-32 as PNG chunks carry it (PNG spec, annex D). */
function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** A PNG from its IHDR fields and IDAT payload, chunk CRCs included. */
function pngFile(
  width: number,
  height: number,
  depth: number,
  colourType: number,
  idat: Uint8Array,
  interlace = 0,
): Uint8Array {
  const chunk = (type: string, data: Uint8Array) => {
    const out = new Uint8Array(12 + data.length);
    const view = new DataView(out.buffer);
    view.setUint32(0, data.length);
    out.set(new TextEncoder().encode(type), 4);
    out.set(data, 8);
    view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
    return out;
  };
  const ihdr = new Uint8Array(13);
  new DataView(ihdr.buffer).setUint32(0, width);
  new DataView(ihdr.buffer).setUint32(4, height);
  ihdr.set([depth, colourType, 0, 0, interlace], 8);
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", idat),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
}

/**
 * A real zlib stream of `n` zero bytes, built without `n` bytes of memory: a fully flushed
 * deflate block of 8 MiB of zeros owes nothing to what came before, so it can be repeated.
 */
function zlibOfZeros(n: number): Uint8Array {
  const chunk = 8 * 2 ** 20;
  const block = deflateRawSync(new Uint8Array(chunk), { level: 9, finishFlush: zlib.Z_FULL_FLUSH });
  const last = deflateRawSync(new Uint8Array(n % chunk), { level: 9 });
  const count = Math.floor(n / chunk);
  const out = new Uint8Array(2 + count * block.length + last.length + 4);
  out.set([0x78, 0xda]);
  for (let i = 0; i < count; i++) out.set(block, 2 + i * block.length);
  out.set(last, 2 + count * block.length);
  // Adler-32 of zeros: its sum a stays 1 and b adds a for every byte.
  new DataView(out.buffer).setUint32(out.length - 4, (((n % 65521) << 16) | 1) >>> 0);
  return out;
}

/**
 * A valid baseline JPEG of flat gray (YCbCr, luma sampled `h` x `v`): every block is 2 bits
 * (DC difference 0, end of block) under one-code Huffman tables, so any size is cheap to make.
 * `scanBytes` cuts the scan short, as a file that lies about its size would be.
 */
function flatJpeg(width: number, height: number, h = 2, v = 2, scanBytes?: number): Uint8Array {
  const segment = (marker: number, body: number[]) => [
    0xff,
    marker,
    (body.length + 2) >> 8,
    (body.length + 2) & 255,
    ...body,
  ];
  const oneCodeTable = (tableClass: number) =>
    segment(0xc4, [tableClass, 1, ...new Array(15).fill(0), 0]);
  const header = [
    0xff,
    0xd8,
    ...segment(0xdb, [0, ...new Array(64).fill(1)]),
    ...segment(
      0xc0,
      [8, height >> 8, height & 255, width >> 8, width & 255, 3, 1, (h << 4) | v, 0]
        .concat([2, 0x11, 0, 3, 0x11, 0]),
    ),
    ...oneCodeTable(0x00),
    ...oneCodeTable(0x10),
    ...segment(0xda, [3, 1, 0, 2, 0, 3, 0, 0, 63, 0]),
  ];
  const bits = Math.ceil(width / 8 / h) * Math.ceil(height / 8 / v) * (h * v + 2) * 2;
  const length = Math.min(Math.ceil(bits / 8), scanBytes ?? Infinity);
  const out = new Uint8Array(header.length + length + 2);
  out.set(header);
  if (scanBytes === undefined && bits % 8 !== 0) {
    out[header.length + length - 1] = (1 << (8 - (bits % 8))) - 1; // pad with 1 bits
  }
  out.set([0xff, 0xd9], out.length - 2);
  return out;
}

/** The file the issue names: 778 KB, declaring 10000x10000 16-bit RGBA (800 MB of samples). */
function bigDeepPng(): Uint8Array {
  return pngFile(10000, 10000, 16, 6, zlibOfZeros(10000 * (1 + 10000 * 8)));
}

Deno.test("flatJpeg() and zlibOfZeros() (the test helpers) make files that decode", () => {
  const gray = decodeImage(flatJpeg(20, 12), "flat.jpg");
  assert.deepEqual([gray.width, gray.height], [20, 12]);
  assert.ok(gray.data.every((v) => v === 128));
  const png = decodeImage(pngFile(3, 2, 8, 2, zlibOfZeros(2 * (1 + 9))), "zeros.png");
  assert.deepEqual(png.data, new Uint8Array(18));
  // 64x64 at 4:2:0 is 16 MCUs of 6 blocks, 2 bits each: a 24-byte scan, here cut to 10.
  assert.equal(flatJpeg(64, 64, 2, 2, 10).length, flatJpeg(64, 64).length - 24 + 10);
});

/** RGB scanlines in Adam7's seven passes (PNG spec, 8.2), each row with filter type 0. */
function adam7Scanlines(rgb: Uint8Array, width: number, height: number): Uint8Array {
  const passes = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [
    1,
    0,
    2,
    2,
  ]]
    .concat([[0, 1, 1, 2]]);
  const out: number[] = [];
  for (const [x0, y0, dx, dy] of passes) {
    if (x0 >= width) continue; // an empty pass has no rows at all
    for (let y = y0; y < height; y += dy) {
      out.push(0);
      for (let x = x0; x < width; x += dx) {
        out.push(...rgb.subarray((y * width + x) * 3, (y * width + x) * 3 + 3));
      }
    }
  }
  return new Uint8Array(out);
}

Deno.test("decodeImage() reads an interlaced PNG: its data's size is counted per Adam7 pass", () => {
  for (const [width, height] of [[7, 5], [1, 1], [16, 9]]) {
    const rgb = picture(width, height);
    const png = pngFile(width, height, 8, 2, deflateSync(adam7Scanlines(rgb, width, height)), 1);
    assert.deepEqual(decodeImage(png, "interlaced.png").data, rgb, `${width}x${height}`);
  }
});

Deno.test("readImageFile() refuses a device, a FIFO and a folder without reading or blocking", async () => {
  const dir = await Deno.makeTempDir({ prefix: "predict_test_" });
  try {
    await assert.rejects(
      readImageFile("/dev/zero"),
      (e) =>
        e instanceof ImageError &&
        e.message === "/dev/zero: expected an image file but found a character device",
    );
    const fifo = `${dir}/pipe.png`;
    const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert.equal(made.code, 0, "mkfifo");
    // Nothing writes to the FIFO: opening it would block forever.
    await assert.rejects(
      readImageFile(fifo),
      new ImageError(`${fifo}: expected an image file but found a FIFO (named pipe)`),
    );
    const link = `${dir}/zero.png`;
    await Deno.symlink("/dev/zero", link);
    await assert.rejects(
      readImageFile(link),
      new ImageError(`${link}: expected an image file but found a character device`),
    );
    await assert.rejects(
      readImageFile(dir),
      new ImageError(`${dir}: expected an image file but found a folder`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readImageFile() refuses a file over the byte cap before reading it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "predict_test_" });
  try {
    const path = `${dir}/huge.jpg`;
    // Sparse: its size is one byte over the cap, its disk use nothing.
    const file = await Deno.open(path, { create: true, write: true });
    await file.truncate(MAX_FILE_BYTES + 1);
    file.close();
    await assert.rejects(
      readImageFile(path),
      new ImageError(
        `${path}: expected a file of at most 64 MiB (67108864 bytes) but found 67108865 bytes; ` +
          `shrink the image first`,
      ),
    );
    await Deno.writeFile(path, new Uint8Array([1, 2, 3]));
    assert.deepEqual(await readImageFile(path), new Uint8Array([1, 2, 3]));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("decodeImage() refuses the 778 KB 16-bit RGBA PNG of 10000x10000 from its header", () => {
  const png = bigDeepPng();
  assert.equal(Math.round(png.length / 1000), 778, `${png.length} bytes`);
  assert.throws(
    () => decodeImage(png, "deep.png"),
    new ImageError(
      "deep.png: expected an image that decodes in at most 1024 MiB but found a 10000x10000 " +
        "16-bit RGBA PNG, which needs 3338 MiB",
    ),
  );
});

Deno.test("decodeImage() refuses a PNG whose data inflates to more than its header allows", () => {
  // 100x100 RGB needs 30,100 bytes of scanlines; this stream holds 64 MiB of zeros (65 KB).
  const bomb = pngFile(100, 100, 8, 2, zlibOfZeros(64 * 2 ** 20));
  assert.throws(
    () => decodeImage(bomb, "bomb.png"),
    new ImageError(
      "bomb.png: not a readable PNG (expected its image data to inflate to 30100 bytes, as a " +
        "100x100 8-bit RGB image needs, but it inflates to more)",
    ),
  );
  // The header claims 9000x9000, the data could hold 64 pixels at most.
  assert.throws(
    () => decodeImage(pngFile(9000, 9000, 8, 2, zlibOfZeros(100)), "liar.png"),
    new ImageError(
      "liar.png: not a readable PNG (a 9000x9000 PNG needs at least 235474 bytes of image data " +
        "but the file has 12: it is cut short, or its header claims a larger image than it holds)",
    ),
  );
});

Deno.test("decodeImage() names the file when a PNG header says width or height 0", () => {
  for (const [width, height] of [[0, 30], [40, 0]]) {
    assert.throws(
      () => decodeImage(pngFile(width, height, 8, 2, zlibOfZeros(10)), "empty.png"),
      new ImageError(
        `empty.png: expected a width and height of at least 1 in the PNG header but found ` +
          `${width}x${height}`,
      ),
    );
  }
  assert.throws(
    () => decodeImage(pngFile(4, 4, 4, 2, zlibOfZeros(12)), "odd.png"),
    new ImageError(
      "odd.png: not a readable PNG (expected a bit depth of 8 or 16 for RGB at byte 24 but found 4)",
    ),
  );
});

Deno.test("decodeImage() refuses a 5 KB JPEG declaring 9000x9000 from its frame header", () => {
  const liar = flatJpeg(9000, 9000, 2, 2, 5000);
  assert.ok(liar.length < 5200, `${liar.length} bytes`);
  assert.throws(
    () => decodeImage(liar, "liar.jpg"),
    new ImageError(
      "liar.jpg: not a readable JPEG (a 9000x9000 JPEG needs at least 237446 bytes of image " +
        "data but the file has 5079: it is cut short, or its header claims a larger image than " +
        "it holds)",
    ),
  );
  // Complete (950 KB), it is a real image, but one over the memory budget.
  assert.throws(
    () => decodeImage(flatJpeg(9000, 9000, 1, 1), "big.jpg"),
    new ImageError(
      "big.jpg: expected an image that decodes in at most 1024 MiB but found a 9000x9000 4:4:4 " +
        "JPEG, which needs 1623 MiB",
    ),
  );
  const lossless = flatJpeg(8, 8);
  lossless[lossless.indexOf(0xc0, 2)] = 0xc3; // SOF0 -> SOF3
  assert.throws(
    () => decodeImage(lossless, "lossless.jpg"),
    new ImageError(
      "lossless.jpg: not a readable JPEG (expected a baseline or progressive JPEG (SOF0, SOF1 or " +
        "SOF2) but found SOF3 at byte 71 (lossless, hierarchical or arithmetic-coded))",
    ),
  );
  assert.throws(
    () => decodeImage(new Uint8Array([0xff, 0xd8, 0xff, 0xd9]), "bare.jpg"),
    new ImageError(
      "bare.jpg: not a readable JPEG (expected a frame header (SOF marker) before byte 2 but " +
        "found the end of the image)",
    ),
  );
});

Deno.test("checkImageHeader() lets a 48 MP phone JPEG through, counting what jpeg-js allocates", () => {
  const header = checkImageHeader(flatJpeg(8000, 6000, 2, 2), "phone.jpg");
  // Blocks (1000x750 luma, 500x375 per chroma, 256 bytes each), lines (8000x6000 and
  // 4000x3000 twice), the 3-byte image twice.
  const expected = (1000 * 750 + 2 * 500 * 375) * 256 + 8000 * 6000 + 2 * 4000 * 3000 +
    2 * 8000 * 6000 * 3;
  assert.deepEqual(
    { layout: header.layout, decodeBytes: header.decodeBytes },
    { layout: "4:2:0", decodeBytes: expected },
  );
  assert.ok(expected <= MAX_DECODE_BYTES);
  assert.ok(
    checkImageHeader(flatJpeg(8000, 6000, 1, 1), "full.jpg").decodeBytes <= MAX_DECODE_BYTES,
  );
});

Deno.test("decodeImage() throws only ImageError for 2000 corrupted PNGs and JPEGs (seeded)", async () => {
  let seed = 12345; // a fixed LCG: the same files every run
  const random = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const samples = [
    await encodePng(picture(20, 15), 20, 15),
    jpegWithOrientation(picture(20, 15), 20, 15, 6),
    flatJpeg(40, 24),
    pngFile(7, 5, 8, 2, deflateSync(adam7Scanlines(picture(7, 5), 7, 5)), 1),
  ];
  const others: string[] = [];
  for (let n = 0; n < 2000; n++) {
    const base = samples[n % samples.length];
    const bytes = base.slice(0, random() < 0.2 ? Math.floor(random() * base.length) : base.length);
    // Mostly in the headers, where sizes and offsets live.
    for (let k = 0; k < 1 + random() * 4; k++) {
      bytes[Math.floor(random() * Math.min(200, bytes.length))] = Math.floor(random() * 256);
    }
    try {
      decodeImage(bytes, "fuzzed");
    } catch (error) {
      if (!(error instanceof ImageError)) others.push(`#${n}: ${error}`);
    }
  }
  assert.deepEqual(others, []);
});

// ------------------------------------------------------------------ ranking and classifying

Deno.test("topK() ranks by probability, ties in label order, and checks its arguments", () => {
  assert.deepEqual(topK([0.2, 0.5, 0.2, 0.1], ["a", "b", "c", "d"], 3), [
    { label: 1, className: "b", probability: 0.5 },
    { label: 0, className: "a", probability: 0.2 },
    { label: 2, className: "c", probability: 0.2 },
  ]);
  assert.throws(
    () => topK([1], ["a", "b"], 1),
    /Expected 1 class names \(one per probability\) but found 2/,
  );
  assert.throws(() => topK([1], ["a"], 0), /Expected k to be an integer >= 1 but found 0/);
});

Deno.test("normalizeRgb() (the page's) equals normalizeInto() (training's) bit for bit", () => {
  const all = Uint8Array.from({ length: 768 }, (_, i) => i % 256);
  const ours = new Float32Array(768);
  normalizeInto(all, ours);
  const mean = [0.4914, 0.4822, 0.4465];
  const std = [0.2023, 0.1994, 0.2010];
  assert.deepEqual(normalizeRgb(all, mean, std), ours);
});

Deno.test("classifyPixels() ranks the model's softmax and leaks no tensors", async () => {
  const model = resnet18({ width: 2, seed: 5 });
  try {
    const pixels = Uint8Array.from({ length: 3 * IMAGE_BYTES }, (_, i) => (i * 31) % 256);
    const before = tf.memory().numTensors;
    const predictions = await classifyPixels(model, pixels, { k: 10 });
    assert.equal(tf.memory().numTensors, before);
    const x = new Float32Array(pixels.length);
    normalizeInto(pixels, x);
    const expected = tf.tidy(() =>
      tf.softmax(model.predict(tf.tensor4d(x, [3, 32, 32, 3])) as tf.Tensor)
        .arraySync() as number[][]
    );
    predictions.forEach((top, n) => {
      assert.equal(top.length, 10);
      for (const t of top) {
        assert.equal(t.className, CIFAR10_CLASSES[t.label]);
        assert.ok(Math.abs(t.probability - expected[n][t.label]) < 1e-6);
      }
      assert.ok(top.every((t, i) => i === 0 || top[i - 1].probability >= t.probability));
    });
    await assert.rejects(
      () => classifyPixels(model, new Uint8Array(100)),
      /Expected a multiple of 3072 bytes \(32x32 RGB images\) but found 100/,
    );
  } finally {
    model.dispose();
  }
});

Deno.test("classifySplit() returns the true label with the top 3 and checks indices", async () => {
  const model = resnet18({ width: 2 });
  try {
    const split = {
      images: new Uint8Array(3 * IMAGE_BYTES).fill(90),
      labels: new Uint8Array([4, 7, 1]),
      count: 3,
    };
    const results = await classifySplit(model, split, [2, 0]);
    assert.deepEqual(results.map((r) => [r.index, r.label, r.top.length]), [[2, 1, 3], [0, 4, 3]]);
    assert.equal((await classifySplit(model, split)).length, 3);
    await assert.rejects(
      () => classifySplit(model, split, [0, 3]),
      /Expected indices in 0\.\.2 but found 3 at position 1/,
    );
  } finally {
    model.dispose();
  }
});

/** A run folder as `deno task train` leaves it, width 2. */
async function makeRun(): Promise<{ dir: string; model: tf.LayersModel }> {
  const dir = await Deno.makeTempDir({ prefix: "predict_test_" });
  const model = resnet18({ width: 2, seed: 3 });
  await saveModel(model, `${dir}/model`);
  return { dir, model };
}

Deno.test("classifyImageFiles() classifies the readable files and names what is wrong with the rest", async () => {
  const { dir, model } = await makeRun();
  try {
    const rgb = picture(40, 30);
    await Deno.writeFile(`${dir}/a.png`, await encodePng(rgb, 40, 30));
    await Deno.writeTextFile(`${dir}/notes.txt`, "not an image");
    const results = await classifyImageFiles(model, [
      `${dir}/a.png`,
      `${dir}/notes.txt`,
      `${dir}/gone.jpg`,
      dir,
    ]);
    assert.equal(results.length, 4);
    const [good, text, gone, folder] = results;
    assert.ok("top" in good);
    assert.deepEqual(
      good.top,
      (await classifyPixels(model, toCifarPixels({ width: 40, height: 30, data: rgb })))[0],
    );
    assert.deepEqual(text, {
      file: `${dir}/notes.txt`,
      error: `${dir}/notes.txt: expected a PNG or JPEG image but found text starting "not an i"`,
    });
    assert.deepEqual(gone, {
      file: `${dir}/gone.jpg`,
      error: `${dir}/gone.jpg: cannot read (no such file)`,
    });
    assert.deepEqual(folder, {
      file: dir,
      error: `${dir}: expected an image file but found a folder`,
    });
    assert.match(formatResults([good]), new RegExp(`^${dir}/a\\.png\\n  \\w+ +\\d+\\.\\d%\\n`));

    const loaded = await loadRunModel(dir);
    assert.deepEqual(await classifyImageFile(loaded, `${dir}/a.png`), good.top);
    await assert.rejects(classifyImageFile(loaded, `${dir}/notes.txt`), ImageError);
    loaded.dispose();
    await assert.rejects(
      loadRunModel(`${dir}/nowhere`),
      /Expected a run folder with model\/model\.json \(or a folder with model\.json\) at .*nowhere but found neither/,
    );
  } finally {
    model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("classifyImageFiles() reports any failure of one file by its name and classifies the rest", async () => {
  const { dir, model } = await makeRun();
  try {
    const good = `${dir}/good.png`;
    await Deno.writeFile(good, await encodePng(picture(40, 30), 40, 30));
    const zeroWidth = `${dir}/zero-width.png`;
    await Deno.writeFile(zeroWidth, pngFile(0, 30, 8, 2, zlibOfZeros(10)));
    const results = await classifyImageFiles(model, [good, zeroWidth, "/dev/zero", good]);
    assert.deepEqual(results.map((r) => "top" in r), [true, false, false, true]);
    assert.deepEqual(results.slice(1, 3), [
      {
        file: zeroWidth,
        error: `${zeroWidth}: expected a width and height of at least 1 in the PNG header but ` +
          `found 0x30`,
      },
      {
        file: "/dev/zero",
        error: "/dev/zero: expected an image file but found a character device",
      },
    ]);
    // Not only ImageError: whatever a decoder throws stays with its file.
    const failing = (bytes: Uint8Array, source: string) => {
      if (source === zeroWidth) throw new TypeError("Cannot read properties of undefined");
      if (source === `${dir}/thrown.png`) throw "a bare string"; // jpeg-js throws strings
      return decodeImage(bytes, source);
    };
    await Deno.copyFile(good, `${dir}/thrown.png`);
    const mixed = await classifyImageFiles(model, [zeroWidth, good, `${dir}/thrown.png`], {
      decode: failing,
    });
    assert.deepEqual(mixed[0], {
      file: zeroWidth,
      error: `${zeroWidth}: could not be decoded (TypeError: Cannot read properties of undefined)`,
    });
    assert.deepEqual(mixed[1], { file: good, top: (results[0] as { top: unknown }).top });
    assert.deepEqual(mixed[2], {
      file: `${dir}/thrown.png`,
      error: `${dir}/thrown.png: could not be decoded (a bare string)`,
    });
  } finally {
    model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

// ------------------------------------------------------------------ the command

/** `deno task predict ...`, as the task starts it (bin/task.ts grants the paths named). */
async function predictCli(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-run", "bin/task.ts", "predict", ...args],
    cwd: ROOT,
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

Deno.test("deno task predict prints the top 3 per image, reports bad files, and exits 1 if any failed", async () => {
  const { dir, model } = await makeRun();
  try {
    await Deno.writeFile(`${dir}/a.png`, await encodePng(picture(50, 40), 50, 40));
    await Deno.writeFile(`${dir}/b.jpg`, jpegWithOrientation(picture(20, 30), 20, 30, 1));
    await Deno.writeTextFile(`${dir}/c.txt`, "hello");
    const ok = await predictCli(["--model", dir, `${dir}/a.png`, `${dir}/b.jpg`]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(
      ok.stdout,
      new RegExp(`^${dir}/a\\.png\\n(  \\w+ +\\d+\\.\\d%\\n){3}${dir}/b\\.jpg\\n`),
    );

    const mixed = await predictCli([
      "--json",
      "--top",
      "2",
      "--model",
      dir,
      `${dir}/a.png`,
      `${dir}/c.txt`,
    ]);
    assert.equal(mixed.code, 1);
    const json = JSON.parse(mixed.stdout);
    const expected = await classifyImageFiles(model, [`${dir}/a.png`, `${dir}/c.txt`], { k: 2 });
    assert.equal(json[0].file, `${dir}/a.png`);
    assert.deepEqual(
      json[0].top.map((t: { label: number }) => t.label),
      (expected[0] as { top: { label: number }[] }).top.map((t) => t.label),
    );
    assert.deepEqual(json[1], expected[1]);
    assert.match(
      mixed.stderr,
      new RegExp(`error: ${dir}/c\\.txt: expected a PNG or JPEG image but found text`),
    );
    assert.match(mixed.stderr, /1 of 2 files could not be classified/);
  } finally {
    model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task predict names the flag that is wrong", async () => {
  const cases: [string[], RegExp][] = [
    [
      ["a.png"],
      /error: --model: expected a run folder \(from deno task train\) but found none \(see --help\)/,
    ],
    [
      ["--model", "runs/x"],
      /error: expected at least one image file after the flags but found none/,
    ],
    [
      ["--model", "runs/x", "--top", "0", "a.png"],
      /error: --top: expected an integer >= 1 but found "0"/,
    ],
    [
      ["--model", "runs/x", "--backend", "gpu", "a.png"],
      /error: --backend: expected one of cpu, wasm, native, webgpu, auto but found "gpu"/,
    ],
    [["--model", "runs/x", "--colour", "a.png"], /error: Unknown option '--colour'/],
  ];
  for (const [args, pattern] of cases) {
    const { code, stderr } = await predictCli(args);
    assert.equal(code, 2, args.join(" "));
    assert.match(stderr, pattern);
  }
  const help = await predictCli(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /center-cropped to a square/);
});

Deno.test("deno task predict refuses hostile files by name and still classifies the good one", async () => {
  const { dir, model } = await makeRun();
  model.dispose();
  try {
    const good = `${dir}/good.png`;
    await Deno.writeFile(good, await encodePng(picture(50, 40), 50, 40));
    await Deno.writeFile(`${dir}/deep.png`, bigDeepPng());
    await Deno.writeFile(`${dir}/liar.jpg`, flatJpeg(9000, 9000, 2, 2, 5000));
    await Deno.writeFile(`${dir}/zero-width.png`, pngFile(0, 30, 8, 2, zlibOfZeros(10)));
    const fifo = `${dir}/pipe.jpg`;
    assert.equal((await new Deno.Command("mkfifo", { args: [fifo] }).output()).code, 0);
    const files = [
      "/dev/zero",
      fifo,
      `${dir}/deep.png`,
      `${dir}/liar.jpg`,
      `${dir}/zero-width.png`,
    ];
    const started = Date.now();
    const { code, stdout, stderr } = await predictCli(["--model", dir, good, ...files]);
    assert.equal(code, 1, stderr);
    assert.ok(Date.now() - started < 30_000, "nothing blocked or read without end");
    assert.match(stdout, new RegExp(`^${dir}/good\\.png\\n(  \\w+ +\\d+\\.\\d%\\n){3}$`));
    const errors = stderr.split("\n").filter((line) => line.startsWith("error: "));
    assert.deepEqual(errors, [
      "error: /dev/zero: expected an image file but found a character device",
      `error: ${fifo}: expected an image file but found a FIFO (named pipe)`,
      `error: ${dir}/deep.png: expected an image that decodes in at most 1024 MiB but found a ` +
      "10000x10000 16-bit RGBA PNG, which needs 3338 MiB",
      `error: ${dir}/liar.jpg: not a readable JPEG (a 9000x9000 JPEG needs at least 237446 bytes ` +
      "of image data but the file has 5079: it is cut short, or its header claims a larger image " +
      "than it holds)",
      `error: ${dir}/zero-width.png: expected a width and height of at least 1 in the PNG header ` +
      "but found 0x30",
    ]);
    assert.match(stderr, /5 of 6 files could not be classified/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
