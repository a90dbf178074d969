/**
 * The CIFAR-10 data pipeline of the article: read the binary batches into
 * NHWC uint8 arrays, then build float batches with ToTensor + Normalize and,
 * for training, RandomCrop(32, padding=4) + RandomHorizontalFlip.
 *
 * Images stay uint8 until a batch is built: 50000 x 3072 bytes is 150 MB,
 * four times less than floats, and normalising a batch costs little.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import {
  CIFAR10_META_FILE,
  CIFAR10_TEST_FILE,
  CIFAR10_TRAIN_FILES,
  type Cifar10Files,
  type LoadOptions,
  openCifar10Files,
} from "./io/download.ts";
import { Rng } from "./train/rng.ts";
import {
  CHANNELS,
  IMAGE_BYTES,
  IMAGE_SIZE,
  NUM_CLASSES,
  RECORD_BYTES,
} from "./io/cifar10_format.ts";

export type { LoadOptions } from "./io/download.ts";
export { CHANNELS, IMAGE_BYTES, IMAGE_SIZE, NUM_CLASSES, RECORD_BYTES };

/** Per-channel mean of the training set, on the 0..1 scale (the article's Normalize). */
export const CIFAR10_MEAN: readonly [number, number, number] = Object.freeze([
  0.4914,
  0.4822,
  0.4465,
] as [number, number, number]);

/** Per-channel standard deviation used by the article's Normalize. */
export const CIFAR10_STD: readonly [number, number, number] = Object.freeze([
  0.2023,
  0.1994,
  0.2010,
] as [number, number, number]);

/** The class names in label order, as `batches.meta.txt` lists them. */
export const CIFAR10_CLASSES: readonly string[] = Object.freeze([
  "airplane",
  "automobile",
  "bird",
  "cat",
  "deer",
  "dog",
  "frog",
  "horse",
  "ship",
  "truck",
]);

/** Zero padding added on each side before a random 32x32 crop (the article's RandomCrop). */
export const CROP_PADDING = 4;
/** The most padding a crop may use: a window shifted further would hold less than half the image. */
export const MAX_CROP_PADDING = 16;

/** A set of images with their labels. */
export interface Split {
  /** [count, 32, 32, 3] NHWC, 0..255. */
  images: Uint8Array;
  /** [count], 0..9. */
  labels: Uint8Array;
  /** Number of images. */
  count: number;
}

/** The whole dataset as {@linkcode loadCifar10} returns it. */
export interface Cifar10 {
  /** The 50000 training images, batches 1 to 5 in order. */
  train: Split;
  /** The 10000 test images. */
  test: Split;
  /** Names by label, from `batches.meta.txt`. */
  classNames: string[];
}

/**
 * One training augmentation: where the 32x32 crop window sits in the
 * zero-padded image (40x40 with the article's padding of 4), and whether the
 * crop is then mirrored.
 */
export interface AugmentParams {
  /** Column of the crop window's left edge in the padded image, 0..2 * padding (padding = no shift). */
  dx: number;
  /** Row of the crop window's top edge in the padded image, 0..2 * padding (padding = no shift). */
  dy: number;
  /** Mirror left-right after cropping. */
  flip: boolean;
  /** Zeros added on each side before cropping. @default CROP_PADDING (4, the article's) */
  padding?: number;
}

/** A batch as {@linkcode epochBatches} yields it; the caller disposes `x` and `y`. */
export interface Batch {
  /** [size, 32, 32, 3] float32 NHWC, normalised. */
  x: tf.Tensor4D;
  /** [size] int32 labels. */
  y: tf.Tensor1D;
  /** Number of images in this batch (the last one may be smaller). */
  size: number;
}

/**
 * Image `index` of a split: its 3072 bytes, `[32, 32, 3]` NHWC (a view, no copy).
 *
 * @throws {RangeError} If `index` is not an integer in `0..split.count - 1`.
 *
 * @example
 * ```ts
 * import { imageAt } from "./data.ts";
 * const split = { images: new Uint8Array(2 * 3072).fill(7), labels: new Uint8Array(2), count: 2 };
 * console.log(imageAt(split, 1).length); // 3072
 * ```
 */
export function imageAt(split: Split, index: number): Uint8Array {
  if (!Number.isInteger(index) || index < 0 || index >= split.count) {
    throw new RangeError(
      `Expected an image index in 0..${split.count - 1} but found ${index}`,
    );
  }
  return split.images.subarray(index * IMAGE_BYTES, (index + 1) * IMAGE_BYTES);
}

/**
 * Loads CIFAR-10, downloading it first if needed (see {@linkcode LoadOptions}),
 * and parses all six batches and the class names with every read checked:
 * each batch must be exactly 10,000 records, every label in 0..9. A download
 * is parsed before it is kept as the cache, so a cached folder has passed
 * these checks.
 *
 * @param options Where the data comes from; by default it is downloaded into `./data` once.
 * @returns The training and test splits and the class names.
 * @throws {Error} For a missing source or file, a failed download or malformed data, naming the file.
 *
 * @example
 * ```ts
 * import { loadCifar10 } from "./data.ts";
 * if (import.meta.main) {
 *   const { train, test, classNames } = await loadCifar10({ log: console.log });
 *   console.log(train.count, test.count, classNames); // 50000 10000 ["airplane", ...]
 * }
 * ```
 */
export async function loadCifar10(options: LoadOptions = {}): Promise<Cifar10> {
  const data = await openCifar10Files(options, parseFiles);
  options.log?.(`Loaded ${data.train.count} training and ${data.test.count} test images`);
  return data;
}

/** Parses the class names, the five training batches (in order) and the test batch. */
async function parseFiles(files: Cifar10Files): Promise<Cifar10> {
  const classNames = parseClassNames(
    await files.read(CIFAR10_META_FILE),
    files.pathOf(CIFAR10_META_FILE),
  );
  const trainFiles = [];
  for (const name of CIFAR10_TRAIN_FILES) {
    trainFiles.push({ bytes: await files.read(name), fileName: files.pathOf(name) });
  }
  const train = parseBatches(trainFiles);
  const test = parseBatch(await files.read(CIFAR10_TEST_FILE), files.pathOf(CIFAR10_TEST_FILE));
  return { train, test, classNames };
}

/**
 * Parses one CIFAR-10 binary batch file into NHWC uint8 images.
 *
 * @param bytes The file's bytes: records of 1 label byte + 1024 R + 1024 G + 1024 B bytes.
 * @param fileName Named in error messages.
 * @returns The split, images reordered from planar RGB to NHWC.
 * @throws {Error} If the size is not a non-zero multiple of {@linkcode RECORD_BYTES},
 *   or a label is not in 0..9 (naming the byte offset).
 *
 * @example
 * ```ts
 * import { parseBatch, RECORD_BYTES } from "./data.ts";
 * const record = new Uint8Array(RECORD_BYTES);
 * record[0] = 7; // label
 * record[1] = 255; // R of pixel (0, 0)
 * const split = parseBatch(record, "one.bin");
 * if (split.count !== 1 || split.labels[0] !== 7 || split.images[0] !== 255) throw new Error("bad parse");
 * ```
 */
export function parseBatch(bytes: Uint8Array, fileName: string): Split {
  return parseBatches([{ bytes, fileName }]);
}

/**
 * Parses `batches.meta.txt`: one class name a line, blank lines ignored.
 *
 * @param bytes The file's bytes (UTF-8).
 * @param fileName Named in error messages.
 * @returns The {@linkcode NUM_CLASSES} names in label order.
 * @throws {Error} If there are not exactly 10 names.
 *
 * @example
 * ```ts
 * import { CIFAR10_CLASSES, parseClassNames } from "./data.ts";
 * const text = new TextEncoder().encode(CIFAR10_CLASSES.join("\n") + "\n\n");
 * if (parseClassNames(text, "batches.meta.txt")[9] !== "truck") throw new Error("bad names");
 * ```
 */
export function parseClassNames(bytes: Uint8Array, fileName: string): string[] {
  const names = new TextDecoder().decode(bytes).split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "");
  if (names.length !== NUM_CLASSES) {
    throw new Error(
      `Expected ${NUM_CLASSES} class names (one a line) in ${fileName} but found ${names.length}: ` +
        JSON.stringify(names),
    );
  }
  return names;
}

/** Parses several batch files into one split, checking all sizes before allocating. */
function parseBatches(files: { bytes: Uint8Array; fileName: string }[]): Split {
  let count = 0;
  for (const { bytes, fileName } of files) {
    const partial = bytes.length % RECORD_BYTES;
    if (bytes.length === 0 || partial !== 0) {
      const detail = bytes.length === 0
        ? "an empty file"
        : `the last record, at byte offset ${bytes.length - partial}, has only ${partial} bytes`;
      throw new Error(
        `Expected the size of ${fileName} to be a non-zero multiple of ${RECORD_BYTES} bytes ` +
          `but found ${bytes.length} bytes (${detail})`,
      );
    }
    count += bytes.length / RECORD_BYTES;
  }
  const split = allocateSplit(count);
  let first = 0;
  for (const { bytes, fileName } of files) {
    first += parseRecordsInto(bytes, fileName, split, first);
  }
  return split;
}

function parseRecordsInto(
  bytes: Uint8Array,
  fileName: string,
  split: Split,
  first: number,
): number {
  const count = bytes.length / RECORD_BYTES;
  const plane = IMAGE_SIZE * IMAGE_SIZE;
  const { images, labels } = split;
  for (let r = 0; r < count; r++) {
    const offset = r * RECORD_BYTES;
    const label = bytes[offset];
    if (label >= NUM_CLASSES) {
      throw new Error(
        `Expected a label in 0..${NUM_CLASSES - 1} in ${fileName} at byte offset ${offset} ` +
          `but found ${label}`,
      );
    }
    labels[first + r] = label;
    // Planar R, G, B planes -> interleaved NHWC: pixel p's channels land side by side.
    const red = offset + 1;
    let out = (first + r) * IMAGE_BYTES;
    for (let p = 0; p < plane; p++, out += CHANNELS) {
      images[out] = bytes[red + p];
      images[out + 1] = bytes[red + plane + p];
      images[out + 2] = bytes[red + 2 * plane + p];
    }
  }
  return count;
}

/**
 * A class-balanced random subset: `limit / 10` images of each class, the
 * remainder going one each to the first classes, in a shuffled order. The
 * same `seed` always picks the same images in the same order.
 *
 * @param split The split to draw from.
 * @param limit How many images to keep; `limit >= split.count` returns `split` itself.
 * @param seed Seed of the {@linkcode Rng} that picks and orders them.
 * @returns A new split (or `split` itself).
 * @throws {RangeError} If `limit` is not an integer >= 1, or a class has too few images.
 *
 * @example
 * ```ts
 * import { limitSplit, NUM_CLASSES } from "./data.ts";
 * const count = 100;
 * const split = {
 *   images: new Uint8Array(count * 3072),
 *   labels: Uint8Array.from({ length: count }, (_, i) => i % NUM_CLASSES),
 *   count,
 * };
 * const small = limitSplit(split, 25, 0);
 * if (small.count !== 25 || small.labels.filter((label) => label === 0).length !== 3) {
 *   throw new Error("not balanced");
 * }
 * ```
 */
export function limitSplit(split: Split, limit: number, seed: number): Split {
  if (!Number.isInteger(limit) || limit < 1) {
    throw new RangeError(`Expected limit to be an integer >= 1 but found ${limit}`);
  }
  if (limit >= split.count) return split;
  const rng = new Rng(seed);
  const byClass: number[][] = Array.from({ length: NUM_CLASSES }, () => []);
  for (let i = 0; i < split.count; i++) byClass[split.labels[i]].push(i);
  const chosen: number[] = [];
  for (let label = 0; label < NUM_CLASSES; label++) {
    const quota = Math.floor(limit / NUM_CLASSES) + (label < limit % NUM_CLASSES ? 1 : 0);
    const candidates = byClass[label];
    if (candidates.length < quota) {
      throw new RangeError(
        `Expected at least ${quota} images of class ${label} for a balanced subset of ${limit} ` +
          `but found ${candidates.length}`,
      );
    }
    rng.shuffle(candidates);
    for (let i = 0; i < quota; i++) chosen.push(candidates[i]);
  }
  rng.shuffle(chosen);
  const subset = allocateSplit(chosen.length);
  chosen.forEach((index, i) => {
    subset.images.set(
      imageAt(split, index),
      i * IMAGE_BYTES,
    );
    subset.labels[i] = split.labels[index];
  });
  return subset;
}

// (v / 255 - mean[c]) / std[c] for every byte value v and channel c: one lookup per pixel.
const NORMALIZED = new Float32Array(CHANNELS * 256);
for (let c = 0; c < CHANNELS; c++) {
  for (let v = 0; v < 256; v++) {
    NORMALIZED[c * 256 + v] = (v / 255 - CIFAR10_MEAN[c]) / CIFAR10_STD[c];
  }
}

/**
 * ToTensor then Normalize: writes `(src / 255 - mean) / std` per channel into
 * `dst` at `dstOffset`.
 *
 * @param src NHWC pixels, 0..255 (one image or several; length a multiple of 3).
 * @param dst Receives `src.length` floats.
 * @param dstOffset Where in `dst` to start writing.
 *
 * @example
 * ```ts
 * import { CIFAR10_MEAN, CIFAR10_STD, normalizeInto } from "./data.ts";
 * const out = new Float32Array(3);
 * normalizeInto(new Uint8Array([255, 0, 0]), out);
 * if (Math.abs(out[0] - (1 - CIFAR10_MEAN[0]) / CIFAR10_STD[0]) > 1e-6) throw new Error("bad R");
 * ```
 */
export function normalizeInto(src: Uint8Array, dst: Float32Array, dstOffset = 0): void {
  if (src.length % CHANNELS !== 0 || dstOffset < 0 || dstOffset + src.length > dst.length) {
    throw new RangeError(
      `Expected ${src.length} pixel values (a multiple of ${CHANNELS}) to fit in dst ` +
        `of length ${dst.length} at offset ${dstOffset}`,
    );
  }
  for (let i = 0; i < src.length; i += CHANNELS) {
    dst[dstOffset + i] = NORMALIZED[src[i]];
    dst[dstOffset + i + 1] = NORMALIZED[256 + src[i + 1]];
    dst[dstOffset + i + 2] = NORMALIZED[512 + src[i + 2]];
  }
}

/**
 * RandomCrop(32, padding=4) then RandomHorizontalFlip with the random choices
 * made: pads `src` with zeros (as torchvision pads the raw image, so a padded
 * pixel normalises to `-mean / std`), cuts the 32x32 window at (`dx`, `dy`)
 * and mirrors it if `flip`. Output pixel (x, y) is source pixel
 * (`x' + dx - 4`, `y + dy - 4`) where `x' = flip ? 31 - x : x`, or 0 outside.
 *
 * @param src One NHWC uint8 image (3072 bytes).
 * @param dst Receives the augmented image (3072 bytes); must not overlap `src`.
 * @param params The crop offset and flip, see {@linkcode AugmentParams}.
 *
 * @example
 * ```ts
 * import { augmentInto } from "./data.ts";
 * const src = new Uint8Array(3072).fill(9);
 * const dst = new Uint8Array(3072);
 * augmentInto(src, dst, { dx: 0, dy: 4, flip: false }); // window shifted 4 left: zero columns 0..3
 * if (dst[0] !== 0 || dst[4 * 3] !== 9) throw new Error("bad crop");
 * ```
 */
export function augmentInto(src: Uint8Array, dst: Uint8Array, params: AugmentParams): void {
  const { dx, dy, flip, padding = CROP_PADDING } = params;
  if (!isIntIn(padding, 0, MAX_CROP_PADDING)) {
    throw new RangeError(
      `Expected padding to be an integer in 0..${MAX_CROP_PADDING} but found ${padding}`,
    );
  }
  const maxOffset = 2 * padding;
  if (!isIntIn(dx, 0, maxOffset) || !isIntIn(dy, 0, maxOffset)) {
    throw new RangeError(
      `Expected dx and dy to be integers in 0..${maxOffset} but found dx=${dx}, dy=${dy}`,
    );
  }
  if (src.length < IMAGE_BYTES || dst.length < IMAGE_BYTES) {
    throw new RangeError(
      `Expected src and dst of at least ${IMAGE_BYTES} bytes but found ${src.length} and ${dst.length}`,
    );
  }
  const size = IMAGE_SIZE;
  for (let y = 0; y < size; y++) {
    const sy = y + dy - padding;
    const row = y * size * CHANNELS;
    if (sy < 0 || sy >= size) {
      dst.fill(0, row, row + size * CHANNELS);
      continue;
    }
    for (let x = 0; x < size; x++) {
      const sx = (flip ? size - 1 - x : x) + dx - padding;
      const out = row + x * CHANNELS;
      if (sx < 0 || sx >= size) {
        dst[out] = dst[out + 1] = dst[out + 2] = 0;
      } else {
        const from = (sy * size + sx) * CHANNELS;
        dst[out] = src[from];
        dst[out + 1] = src[from + 1];
        dst[out + 2] = src[from + 2];
      }
    }
  }
}

/**
 * Draws one image's augmentation in torchvision's order: crop row, crop
 * column, then the flip coin (p = 0.5).
 *
 * @param rng The generator to draw from (3 draws, whatever the padding).
 * @param padding Zeros on each side before the crop. @default CROP_PADDING
 * @returns The parameters for {@linkcode augmentInto}.
 *
 * @example
 * ```ts
 * import { drawAugmentation } from "./data.ts";
 * import { Rng } from "./train/rng.ts";
 * const a = drawAugmentation(new Rng(1));
 * const b = drawAugmentation(new Rng(1));
 * if (a.dx !== b.dx || a.dy !== b.dy || a.flip !== b.flip) throw new Error("not reproducible");
 * ```
 */
export function drawAugmentation(rng: Rng, padding = CROP_PADDING): AugmentParams {
  const dy = rng.int(2 * padding + 1);
  const dx = rng.int(2 * padding + 1);
  const flip = rng.next() < 0.5;
  return { dx, dy, flip, padding };
}

/**
 * Builds one batch of normalised float images and int labels, augmenting
 * each image first when `augment` is set (drawing from `rng` image by image).
 *
 * @param split Where the images come from.
 * @param indices Which images, in batch order.
 * @param options `augment` turns on crop + flip, which needs `rng`; `cropPadding`
 *   (default {@linkcode CROP_PADDING}) sets the crop's range.
 * @returns `x` [n, 32, 32, 3] float32 and `y` [n] int32; the caller disposes both.
 * @throws {RangeError} For no indices or an index outside the split.
 * @throws {TypeError} If `augment` is set without an `rng`.
 *
 * @example
 * ```ts
 * import { makeBatch } from "./data.ts";
 * const split = { images: new Uint8Array(2 * 3072), labels: new Uint8Array([3, 5]), count: 2 };
 * const { x, y } = makeBatch(split, [1, 0], { augment: false });
 * if (x.shape.join() !== "2,32,32,3" || y.dataSync()[0] !== 5) throw new Error("bad batch");
 * x.dispose();
 * y.dispose();
 * ```
 */
export function makeBatch(
  split: Split,
  indices: ArrayLike<number>,
  options: { augment: boolean; rng?: Rng; cropPadding?: number },
): { x: tf.Tensor4D; y: tf.Tensor1D } {
  const { augment, rng, cropPadding = CROP_PADDING } = options;
  if (augment && rng === undefined) {
    throw new TypeError("Expected an rng when augment is true but found none");
  }
  const n = indices.length;
  if (n === 0) throw new RangeError("Expected at least one index but found none");
  // Fresh arrays each batch: tf may keep a reference to them instead of copying.
  const x = new Float32Array(n * IMAGE_BYTES); // [n, 32, 32, 3] NHWC
  const y = new Int32Array(n);
  const augmented = augment ? new Uint8Array(IMAGE_BYTES) : null;
  for (let i = 0; i < n; i++) {
    const index = indices[i];
    if (!isIntIn(index, 0, split.count - 1)) {
      throw new RangeError(
        `Expected indices to be integers in 0..${
          split.count - 1
        } but found ${index} at position ${i}`,
      );
    }
    const image = imageAt(split, index);
    if (augmented !== null && rng !== undefined) {
      augmentInto(image, augmented, drawAugmentation(rng, cropPadding));
      normalizeInto(augmented, x, i * IMAGE_BYTES);
    } else {
      normalizeInto(image, x, i * IMAGE_BYTES);
    }
    y[i] = split.labels[index];
  }
  return {
    x: tf.tensor4d(x, [n, IMAGE_SIZE, IMAGE_SIZE, CHANNELS], "float32"),
    y: tf.tensor1d(y, "int32"),
  };
}

/**
 * One epoch of batches, like a PyTorch DataLoader with `drop_last=False`.
 * The permutation is drawn from `rng` when this is called (a fresh one each
 * epoch); augmentations are drawn from the same `rng` as batches are taken,
 * so the run is reproducible from the rng's state.
 *
 * @param split The images to iterate over.
 * @param options `batchSize`; `rng` (`null`: dataset order, no augmentation); `augment`;
 *   `cropPadding` (default {@linkcode CROP_PADDING}).
 * @returns A generator of batches; the caller disposes each batch's tensors.
 * @throws {RangeError} If `batchSize` is not an integer >= 1.
 * @throws {TypeError} If `augment` is set and `rng` is null.
 *
 * @example
 * ```ts
 * import { epochBatches } from "./data.ts";
 * import { Rng } from "./train/rng.ts";
 * const split = { images: new Uint8Array(5 * 3072), labels: new Uint8Array(5), count: 5 };
 * const sizes = [];
 * for (const { x, y, size } of epochBatches(split, { batchSize: 2, rng: new Rng(0), augment: true })) {
 *   sizes.push(size);
 *   x.dispose();
 *   y.dispose();
 * }
 * if (sizes.join() !== "2,2,1") throw new Error("the last partial batch is kept");
 * ```
 */
export function epochBatches(
  split: Split,
  options: { batchSize: number; rng: Rng | null; augment: boolean; cropPadding?: number },
): Generator<Batch> {
  const { batchSize, rng, augment, cropPadding = CROP_PADDING } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`Expected batchSize to be an integer >= 1 but found ${batchSize}`);
  }
  if (augment && rng === null) {
    throw new TypeError("Expected an rng when augment is true but found null");
  }
  const order = new Uint32Array(split.count);
  for (let i = 0; i < order.length; i++) order[i] = i;
  if (rng !== null) rng.shuffle(order);
  return batchesInOrder(split, order, batchSize, { augment, rng: rng ?? undefined, cropPadding });
}

function* batchesInOrder(
  split: Split,
  order: Uint32Array,
  batchSize: number,
  options: { augment: boolean; rng: Rng | undefined; cropPadding: number },
): Generator<Batch> {
  for (let start = 0; start < order.length; start += batchSize) {
    const indices = order.subarray(start, Math.min(start + batchSize, order.length));
    const { x, y } = makeBatch(split, indices, options);
    yield { x, y, size: indices.length };
  }
}

function allocateSplit(count: number): Split {
  return { images: new Uint8Array(count * IMAGE_BYTES), labels: new Uint8Array(count), count };
}

function isIntIn(value: number, min: number, max: number): boolean {
  return Number.isInteger(value) && value >= min && value <= max;
}
