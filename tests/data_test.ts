import assert from "node:assert/strict";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import {
  augmentInto,
  CIFAR10_CLASSES,
  CIFAR10_MEAN,
  CIFAR10_STD,
  drawAugmentation,
  epochBatches,
  IMAGE_BYTES,
  limitSplit,
  loadCifar10,
  makeBatch,
  normalizeInto,
  parseBatch,
  parseClassNames,
  RECORD_BYTES,
  type Split,
} from "../lib/data.ts";
import { Rng } from "../lib/train/rng.ts";
import { standardBatch, writeCifar10Folder } from "./support/cifar10_fixture.ts";

await tf.setBackend("cpu");

const PLANE = 32 * 32;

/** One record in the file layout: label, then R, G, B planes; `pixel(c, y, x)` gives each value. */
function record(label: number, pixel: (c: number, y: number, x: number) => number): Uint8Array {
  const bytes = new Uint8Array(RECORD_BYTES);
  bytes[0] = label;
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) bytes[1 + c * PLANE + y * 32 + x] = pixel(c, y, x);
    }
  }
  return bytes;
}

/** A batch file of records whose pixels all equal (label * 10 + record index) % 256. */
function batchFile(labels: number[]): Uint8Array {
  const out = new Uint8Array(labels.length * RECORD_BYTES);
  labels.forEach((label, i) =>
    out.set(record(label, () => (label * 10 + i) % 256), i * RECORD_BYTES)
  );
  return out;
}

/** A split whose image i has every byte equal to i % 256; labels as given. */
function indexedSplit(labels: number[]): Split {
  const images = new Uint8Array(labels.length * IMAGE_BYTES);
  for (let i = 0; i < labels.length; i++) {
    images.fill(i % 256, i * IMAGE_BYTES, (i + 1) * IMAGE_BYTES);
  }
  return { images, labels: Uint8Array.from(labels), count: labels.length };
}

/** NHWC byte index of channel c at (x, y). */
const at = (x: number, y: number, c: number) => (y * 32 + x) * 3 + c;

const normalized = (value: number, c: number) => (value / 255 - CIFAR10_MEAN[c]) / CIFAR10_STD[c];

Deno.test("parseBatch() reorders planar R, G, B records into NHWC", () => {
  const bytes = new Uint8Array(2 * RECORD_BYTES);
  bytes.set(record(3, (c, y, x) => (c * 80 + y * 2 + x) % 256), 0);
  bytes.set(record(9, (c) => 200 + c), RECORD_BYTES);
  const split = parseBatch(bytes, "data_batch_1.bin");
  assert.equal(split.count, 2);
  assert.deepEqual([...split.labels], [3, 9]);
  assert.equal(split.images.length, 2 * IMAGE_BYTES);
  for (const [x, y] of [[0, 0], [31, 0], [5, 7], [31, 31]]) {
    for (let c = 0; c < 3; c++) {
      assert.equal(split.images[at(x, y, c)], (c * 80 + y * 2 + x) % 256, `pixel ${x},${y},${c}`);
    }
  }
  assert.deepEqual([...split.images.subarray(IMAGE_BYTES, IMAGE_BYTES + 6)], [
    200,
    201,
    202,
    200,
    201,
    202,
  ]);
});

Deno.test("parseBatch() rejects sizes that are not whole records", async (t) => {
  await t.step("an empty file", () => {
    assert.throws(() => parseBatch(new Uint8Array(0), "test_batch.bin"), {
      message: "Expected the size of test_batch.bin to be a non-zero multiple of 3073 bytes " +
        "but found 0 bytes (an empty file)",
    });
  });
  await t.step("a partial last record, naming its offset", () => {
    assert.throws(() => parseBatch(new Uint8Array(2 * RECORD_BYTES + 5), "data_batch_2.bin"), {
      message: "Expected the size of data_batch_2.bin to be a non-zero multiple of 3073 bytes " +
        "but found 6151 bytes (the last record, at byte offset 6146, has only 5 bytes)",
    });
  });
});

Deno.test("parseBatch() rejects a label outside 0..9 with its byte offset", () => {
  const bytes = batchFile([1, 2, 12, 3]);
  assert.throws(() => parseBatch(bytes, "data_batch_3.bin"), {
    message: "Expected a label in 0..9 in data_batch_3.bin at byte offset 6146 but found 12",
  });
});

Deno.test("parseClassNames() ignores blank lines and CRLF, and wants 10 names", () => {
  const encode = (text: string) => new TextEncoder().encode(text);
  const text = "\n" + CIFAR10_CLASSES.join("\r\n") + "\n\n  \n";
  assert.deepEqual(parseClassNames(encode(text), "batches.meta.txt"), [...CIFAR10_CLASSES]);
  assert.throws(() => parseClassNames(encode("cat\ndog\n"), "x/batches.meta.txt"), {
    message:
      'Expected 10 class names (one a line) in x/batches.meta.txt but found 2: ["cat","dog"]',
  });
});

Deno.test("loadCifar10() reads a folder", async (t) => {
  const root = await Deno.makeTempDir();
  try {
    const folder = join(root, "cifar-10-batches-bin");
    await writeCifar10Folder(folder);
    for (const source of [root, folder]) {
      await t.step(
        `given ${source === root ? "the parent folder" : "the folder itself"}`,
        async () => {
          const data = await loadCifar10({ source });
          assert.deepEqual(data.classNames, [...CIFAR10_CLASSES]);
          assert.equal(data.train.count, 50000);
          assert.equal(data.test.count, 10000);
          // Batches are concatenated in order 1..5: record i of batch k is labelled (k + i) % 10.
          assert.deepEqual([...data.train.labels.subarray(0, 3)], [0, 1, 2]);
          assert.deepEqual([...data.train.labels.subarray(10000, 10003)], [1, 2, 3]);
          assert.equal(data.train.images[10000 * IMAGE_BYTES], 20); // batch 2, record 0
          assert.deepEqual([...data.test.labels.subarray(0, 3)], [5, 6, 7]);
          assert.equal(data.test.images[2 * IMAGE_BYTES], 102);
        },
      );
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("loadCifar10() names the file and path of what is wrong", async (t) => {
  const root = await Deno.makeTempDir();
  try {
    // One good folder written; every other folder here links to its files but the one changed.
    const good = join(root, "cifar-10-batches-bin");
    await writeCifar10Folder(good);
    const variant = (name: string, override: Record<string, Uint8Array | null>) =>
      writeCifar10Folder(join(root, name), override, good).then(() => join(root, name));
    await t.step("a source that does not exist", async () => {
      const missing = join(root, "nowhere");
      await assert.rejects(() => loadCifar10({ source: missing }), {
        message: "Expected source to be a cifar-10-batches-bin folder, a folder holding one, " +
          `a .tar.gz archive or an http(s) URL, but found nothing at ${missing}`,
      });
    });
    await t.step("a missing batch file", async () => {
      const parent = join(root, "parent");
      const folder = join(parent, "cifar-10-batches-bin");
      await Deno.mkdir(parent);
      await writeCifar10Folder(folder, { "data_batch_4.bin": null }, good);
      await assert.rejects(() => loadCifar10({ source: parent }), {
        message: `Expected ${folder} to hold the CIFAR-10 binary files but ` +
          "data_batch_4.bin is missing",
      });
    });
    await t.step("a folder without the files or the subfolder", async () => {
      const empty = join(root, "empty");
      await Deno.mkdir(empty);
      await assert.rejects(() => loadCifar10({ source: empty }), {
        message: new RegExp(
          `^Expected ${empty} to hold the CIFAR-10 binary files or a cifar-10-batches-bin/ ` +
            "subfolder but data_batch_1.bin, .*, batches.meta.txt are missing$",
        ),
      });
    });
    await t.step("a bad label, with the file's path", async () => {
      const batch3 = standardBatch(2).slice();
      batch3[2 * RECORD_BYTES] = 12;
      const folder = await variant("bad-label", { "data_batch_3.bin": batch3 });
      await assert.rejects(() => loadCifar10({ source: folder }), {
        message: `Expected a label in 0..9 in ${
          join(folder, "data_batch_3.bin")
        } at byte offset 6146 but found 12`,
      });
    });
    await t.step("a meta file with 9 names", async () => {
      const nine = new TextEncoder().encode(CIFAR10_CLASSES.slice(0, 9).join("\n"));
      const folder = await variant("bad-meta", { "batches.meta.txt": nine });
      await assert.rejects(() => loadCifar10({ source: folder }), {
        message: new RegExp(
          `^Expected 10 class names \\(one a line\\) in ${
            join(folder, "batches.meta.txt")
          } but found 9`,
        ),
      });
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("loadCifar10() refuses a batch file of the wrong size from its size, before reading it", async (t) => {
  const root = await Deno.makeTempDir();
  try {
    const good = join(root, "good");
    await writeCifar10Folder(good);
    const expected = "exactly 30730000 bytes (10000 records of 3073 bytes)";
    const cases: [string, string, number, string][] = [
      ["9,999 records", "data_batch_1.bin", 9_999 * RECORD_BYTES, "30726927 bytes (9999 records)"],
      ["1,000 records", "test_batch.bin", 1_000 * RECORD_BYTES, "3073000 bytes (1000 records)"],
      [
        "10,001 records",
        "data_batch_5.bin",
        10_001 * RECORD_BYTES,
        "30733073 bytes (10001 records)",
      ],
      ["half a record more", "data_batch_2.bin", 30_730_000 + 1500, "30731500 bytes"],
      // 2.16 GB of zeros (a sparse file: nothing is written); reading it would take as much memory.
      [
        "704,000 records",
        "data_batch_3.bin",
        704_000 * RECORD_BYTES,
        "2163392000 bytes (704000 records)",
      ],
    ];
    for (const [what, name, size, found] of cases) {
      await t.step(what, async () => {
        const folder = join(root, name + size);
        await writeCifar10Folder(folder, { [name]: new Uint8Array(0) }, good);
        await Deno.truncate(join(folder, name), size);
        await assert.rejects(() => loadCifar10({ source: folder }), {
          message: `Expected ${join(folder, name)} to be ${expected} but found ${found}`,
        });
      });
    }
    await t.step("a batches.meta.txt over its cap", async () => {
      const folder = join(root, "big-meta");
      await writeCifar10Folder(folder, { "batches.meta.txt": new Uint8Array(70_000) }, good);
      await assert.rejects(() => loadCifar10({ source: folder }), {
        message: `Expected ${
          join(folder, "batches.meta.txt")
        } to be at most 65536 bytes but found 70000 bytes`,
      });
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("normalizeInto() applies ToTensor then Normalize per channel", () => {
  const out = new Float32Array(8).fill(99);
  normalizeInto(new Uint8Array([255, 0, 128, 0, 255, 7]), out, 1);
  const expected = [
    99,
    (1 - 0.4914) / 0.2023,
    (0 - 0.4822) / 0.1994,
    (128 / 255 - 0.4465) / 0.2010,
    (0 - 0.4914) / 0.2023,
    (1 - 0.4822) / 0.1994,
    (7 / 255 - 0.4465) / 0.2010,
    99,
  ];
  expected.forEach((value, i) => assert.ok(Math.abs(out[i] - value) < 1e-6, `index ${i}`));
  assert.throws(() => normalizeInto(new Uint8Array(6), new Float32Array(6), 1), RangeError);
});

Deno.test("augmentInto() crops the zero-padded image and then flips it", async (t) => {
  // R = x, G = y, B = 200: every source pixel says where it came from, and none is 0 in B.
  const src = new Uint8Array(IMAGE_BYTES);
  for (let y = 0; y < 32; y++) {
    for (let x = 0; x < 32; x++) src.set([x, y, 200], at(x, y, 0));
  }
  const dst = new Uint8Array(IMAGE_BYTES);
  const pixel = (x: number, y: number) => [...dst.subarray(at(x, y, 0), at(x, y, 0) + 3)];

  await t.step("the centred window without flip is the identity", () => {
    augmentInto(src, dst, { dx: 4, dy: 4, flip: false });
    assert.deepEqual(dst, src);
  });
  await t.step("flip alone mirrors columns", () => {
    augmentInto(src, dst, { dx: 4, dy: 4, flip: true });
    assert.deepEqual(pixel(0, 0), [31, 0, 200]);
    assert.deepEqual(pixel(31, 17), [0, 17, 200]);
  });
  await t.step("dx = 8, dy = 0 shows padding on top and on the right", () => {
    augmentInto(src, dst, { dx: 8, dy: 0, flip: false });
    assert.deepEqual(pixel(0, 3), [0, 0, 0]); // rows 0..3 are padding
    assert.deepEqual(pixel(0, 4), [4, 0, 200]); // source (4, 0)
    assert.deepEqual(pixel(27, 31), [31, 27, 200]);
    assert.deepEqual(pixel(28, 31), [0, 0, 0]); // columns 28..31 are padding
  });
  await t.step("dx = 0 then flip puts the padding on the right", () => {
    augmentInto(src, dst, { dx: 0, dy: 8, flip: true });
    assert.deepEqual(pixel(0, 0), [27, 4, 200]); // crop column 31 = source column 27
    assert.deepEqual(pixel(27, 27), [0, 31, 200]);
    assert.deepEqual(pixel(28, 0), [0, 0, 0]);
    assert.deepEqual(pixel(5, 28), [0, 0, 0]); // rows 28..31 are padding
  });
  await t.step("padding normalises to (0 - mean) / std", () => {
    augmentInto(src, dst, { dx: 0, dy: 0, flip: false });
    const out = new Float32Array(IMAGE_BYTES);
    normalizeInto(dst, out);
    for (let c = 0; c < 3; c++) {
      assert.ok(Math.abs(out[at(0, 0, c)] - -CIFAR10_MEAN[c] / CIFAR10_STD[c]) < 1e-6);
    }
  });
  await t.step("offsets outside 0..8 are refused", () => {
    assert.throws(() => augmentInto(src, dst, { dx: 9, dy: 0, flip: false }), {
      name: "RangeError",
      message: "Expected dx and dy to be integers in 0..8 but found dx=9, dy=0",
    });
  });
});

Deno.test("augmentInto() and drawAugmentation() with a smaller crop padding", async (t) => {
  const src = new Uint8Array(IMAGE_BYTES);
  for (let y = 0; y < 32; y++) {
    for (let x = 0; x < 32; x++) src.set([x, y, 200], at(x, y, 0));
  }
  const dst = new Uint8Array(IMAGE_BYTES);
  await t.step("padding 2: dx = dy = 2 is the identity, dx = 0 shifts by 2", () => {
    augmentInto(src, dst, { dx: 2, dy: 2, flip: false, padding: 2 });
    assert.deepEqual(dst, src);
    augmentInto(src, dst, { dx: 0, dy: 2, flip: false, padding: 2 });
    assert.deepEqual([...dst.subarray(at(1, 0, 0), at(1, 0, 0) + 3)], [0, 0, 0]);
    assert.deepEqual([...dst.subarray(at(2, 0, 0), at(2, 0, 0) + 3)], [0, 0, 200]);
  });
  await t.step("padding 0 leaves only the flip", () => {
    augmentInto(src, dst, { dx: 0, dy: 0, flip: false, padding: 0 });
    assert.deepEqual(dst, src);
    const rng = new Rng(5);
    for (let i = 0; i < 50; i++) {
      const { dx, dy } = drawAugmentation(rng, 0);
      assert.deepEqual([dx, dy], [0, 0]);
    }
  });
  await t.step("draws stay within 0..2 * padding, and bad values are refused", () => {
    const rng = new Rng(4);
    const seen = new Set<number>();
    for (let i = 0; i < 500; i++) {
      const { dx, dy, padding } = drawAugmentation(rng, 2);
      seen.add(dx).add(dy);
      assert.equal(padding, 2);
    }
    assert.deepEqual([...seen].sort(), [0, 1, 2, 3, 4]);
    assert.throws(() => augmentInto(src, dst, { dx: 5, dy: 0, flip: false, padding: 2 }), {
      name: "RangeError",
      message: "Expected dx and dy to be integers in 0..4 but found dx=5, dy=0",
    });
    assert.throws(() => augmentInto(src, dst, { dx: 0, dy: 0, flip: false, padding: 17 }), {
      name: "RangeError",
      message: "Expected padding to be an integer in 0..16 but found 17",
    });
  });
});

Deno.test("drawAugmentation() covers every offset and flips about half the time", () => {
  const rng = new Rng(3);
  const dxs = new Set<number>();
  const dys = new Set<number>();
  let flips = 0;
  for (let i = 0; i < 2000; i++) {
    const { dx, dy, flip } = drawAugmentation(rng);
    dxs.add(dx);
    dys.add(dy);
    if (flip) flips++;
  }
  assert.deepEqual([...dxs].sort(), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual([...dys].sort(), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
  assert.ok(flips > 900 && flips < 1100, `${flips} flips of 2000`);
});

Deno.test("makeBatch() normalises, augments from the rng, and checks its inputs", async (t) => {
  const split = indexedSplit([4, 5, 6]);
  await t.step("without augmentation: normalised images in index order", () => {
    const { x, y } = makeBatch(split, [2, 0], { augment: false });
    assert.deepEqual(x.shape, [2, 32, 32, 3]);
    assert.equal(x.dtype, "float32");
    assert.equal(y.dtype, "int32");
    assert.deepEqual([...y.dataSync()], [6, 4]);
    const values = x.dataSync();
    assert.ok(Math.abs(values[0] - normalized(2, 0)) < 1e-6);
    assert.ok(Math.abs(values[IMAGE_BYTES + 2] - normalized(0, 2)) < 1e-6);
    tf.dispose([x, y]);
  });
  await t.step("with augmentation: augmentInto + normalizeInto with params drawn in order", () => {
    const photo: Split = {
      images: Uint8Array.from({ length: 2 * IMAGE_BYTES }, (_, i) => (i * 7) % 251),
      labels: new Uint8Array([1, 2]),
      count: 2,
    };
    const { x, y } = makeBatch(photo, [1, 0], { augment: true, rng: new Rng(11) });
    const replay = new Rng(11);
    const expected = new Float32Array(2 * IMAGE_BYTES);
    const scratch = new Uint8Array(IMAGE_BYTES);
    [1, 0].forEach((index, i) => {
      const image = photo.images.subarray(index * IMAGE_BYTES, (index + 1) * IMAGE_BYTES);
      augmentInto(image, scratch, drawAugmentation(replay));
      normalizeInto(scratch, expected, i * IMAGE_BYTES);
    });
    assert.deepEqual(x.dataSync(), expected);
    tf.dispose([x, y]);
  });
  await t.step("bad inputs", () => {
    assert.throws(() => makeBatch(split, [0, 3], { augment: false }), {
      name: "RangeError",
      message: "Expected indices to be integers in 0..2 but found 3 at position 1",
    });
    assert.throws(() => makeBatch(split, [], { augment: false }), RangeError);
    assert.throws(() => makeBatch(split, [0], { augment: true }), {
      name: "TypeError",
      message: "Expected an rng when augment is true but found none",
    });
  });
});

/** Labels of one epoch, disposing every batch. */
function epochLabels(split: Split, rng: Rng | null, batchSize = 4, augment = false): number[] {
  const labels: number[] = [];
  for (const { x, y } of epochBatches(split, { batchSize, rng, augment })) {
    labels.push(...y.dataSync());
    tf.dispose([x, y]);
  }
  return labels;
}

Deno.test("epochBatches() keeps the last partial batch", () => {
  const split = indexedSplit(Array.from({ length: 10 }, (_, i) => i));
  const sizes: number[] = [];
  for (const { x, y, size } of epochBatches(split, { batchSize: 4, rng: null, augment: false })) {
    sizes.push(size);
    assert.equal(x.shape[0], size);
    assert.equal(y.shape[0], size);
    tf.dispose([x, y]);
  }
  assert.deepEqual(sizes, [4, 4, 2]);
});

Deno.test("epochBatches() without an rng keeps dataset order and does not augment", () => {
  const split = indexedSplit([3, 1, 4, 1, 5]);
  assert.deepEqual(epochLabels(split, null), [3, 1, 4, 1, 5]);
  const [batch] = epochBatches(split, { batchSize: 5, rng: null, augment: false });
  const values = batch.x.dataSync();
  for (let i = 0; i < 5; i++) {
    assert.ok(Math.abs(values[i * IMAGE_BYTES] - normalized(i, 0)) < 1e-6, `image ${i}`);
  }
  tf.dispose([batch.x, batch.y]);
});

Deno.test("epochBatches() shuffles reproducibly from the seed and differently each epoch", () => {
  const split = indexedSplit(Array.from({ length: 50 }, (_, i) => i % 10));
  const values = Array.from({ length: 50 }, (_, i) => i);
  // Each image's pixels are its index, so an unaugmented batch reveals the permutation.
  const order = (rng: Rng) => {
    const seen: number[] = [];
    for (const { x, y } of epochBatches(split, { batchSize: 8, rng, augment: false })) {
      const data = x.dataSync();
      for (let i = 0; i < data.length; i += IMAGE_BYTES) {
        seen.push(values.findIndex((v) => Math.abs(normalized(v, 0) - data[i]) < 1e-6));
      }
      tf.dispose([x, y]);
    }
    return seen;
  };
  const rng = new Rng(42);
  const first = order(rng);
  const second = order(rng);
  assert.deepEqual([...first].sort((a, b) => a - b), values, "a permutation");
  assert.deepEqual([...second].sort((a, b) => a - b), values, "a permutation");
  assert.notDeepEqual(first, second);
  assert.notDeepEqual(first, values);
  assert.deepEqual(order(new Rng(42)), first);
});

Deno.test("epochBatches() with augmentation is reproducible from the rng state", () => {
  const split: Split = {
    images: Uint8Array.from({ length: 6 * IMAGE_BYTES }, (_, i) => (i * 13) % 253),
    labels: new Uint8Array([0, 1, 2, 3, 4, 5]),
    count: 6,
  };
  const snapshot = (rng: Rng) => {
    const batches: Float32Array[] = [];
    for (const { x, y } of epochBatches(split, { batchSize: 4, rng, augment: true })) {
      batches.push(x.dataSync() as Float32Array);
      tf.dispose([x, y]);
    }
    return batches;
  };
  const rng = new Rng(7);
  snapshot(rng); // advance past the first epoch
  const state = rng.state();
  const resumed = snapshot(Rng.fromState(state));
  assert.deepEqual(snapshot(rng), resumed);
});

Deno.test("epochBatches() checks its options", () => {
  const split = indexedSplit([0, 1]);
  assert.throws(() => epochBatches(split, { batchSize: 0, rng: null, augment: false }), {
    name: "RangeError",
    message: "Expected batchSize to be an integer >= 1 but found 0",
  });
  assert.throws(() => epochBatches(split, { batchSize: 2, rng: null, augment: true }), {
    name: "TypeError",
    message: "Expected an rng when augment is true but found null",
  });
});

Deno.test("epochBatches() leaves no tensors behind once batches are disposed", () => {
  const split = indexedSplit(Array.from({ length: 23 }, (_, i) => i % 10));
  const before = tf.memory().numTensors;
  const rng = new Rng(1);
  for (let epoch = 0; epoch < 3; epoch++) epochLabels(split, rng, 5, true);
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("limitSplit() draws a class-balanced, seeded, shuffled subset", async (t) => {
  const labels = Array.from({ length: 200 }, (_, i) => (i * 7) % 10);
  const split = indexedSplit(labels);
  await t.step("limit / 10 per class, the remainder to the first classes", () => {
    const subset = limitSplit(split, 25, 1);
    assert.equal(subset.count, 25);
    const perClass = Array.from(
      { length: 10 },
      (_, c) => subset.labels.filter((l) => l === c).length,
    );
    assert.deepEqual(perClass, [3, 3, 3, 3, 3, 2, 2, 2, 2, 2]);
  });
  await t.step("images follow their labels, without repeats", () => {
    const subset = limitSplit(split, 40, 1);
    const picked = new Set<number>();
    for (let i = 0; i < subset.count; i++) {
      const source = subset.images[i * IMAGE_BYTES]; // the source index (< 256)
      assert.equal(subset.labels[i], labels[source]);
      assert.ok(
        subset.images.subarray(i * IMAGE_BYTES, (i + 1) * IMAGE_BYTES).every((v) => v === source),
      );
      picked.add(source);
    }
    assert.equal(picked.size, 40);
  });
  await t.step(
    "the same seed gives the same subset; another seed another; the order is mixed",
    () => {
      const a = limitSplit(split, 30, 5);
      assert.deepEqual(limitSplit(split, 30, 5), a);
      assert.notDeepEqual(limitSplit(split, 30, 6).images, a.images);
      const sorted = [...a.labels].sort((x, y) => x - y);
      assert.notDeepEqual([...a.labels], sorted);
    },
  );
  await t.step("a limit of at least the count returns the split itself", () => {
    assert.equal(limitSplit(split, 200, 1), split);
    assert.equal(limitSplit(split, 1000, 1), split);
  });
  await t.step("limits that are not integers >= 1 are refused", () => {
    for (const limit of [0, -3, 2.5, NaN]) {
      assert.throws(() => limitSplit(split, limit, 1), {
        name: "RangeError",
        message: `Expected limit to be an integer >= 1 but found ${limit}`,
      });
    }
  });
  await t.step("a class with too few images is refused", () => {
    const skewed = indexedSplit([0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.throws(() => limitSplit(skewed, 14, 1), {
      name: "RangeError",
      message: "Expected at least 2 images of class 1 for a balanced subset of 14 but found 1",
    });
  });
});
