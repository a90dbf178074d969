/**
 * lib/predict.ts (and the shared web/preprocess.js): decoding, crop + area resize against
 * hand-computed values and Pillow's BOX filter, ranking, and `deno task predict` end to end.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { encode as encodeFastPng } from "fast-png";
import jpeg from "jpeg-js";
import { initBackend } from "../lib/backends/init.ts";
import { CIFAR10_CLASSES, IMAGE_BYTES, normalizeInto } from "../lib/data.ts";
import { resnet18 } from "../lib/model.ts";
import { saveModel } from "../lib/io/tfjs_model.ts";
import { encodePng } from "../lib/io/png.ts";
import {
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
  orient,
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

// ------------------------------------------------------------------ the command

async function predictCli(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-P=predict", "bin/predict.ts", ...args],
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
