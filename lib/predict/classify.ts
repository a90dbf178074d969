/**
 * Classifying photos with a trained model: decode a PNG or JPEG of any size, turn it into
 * a CIFAR-10 input (center-crop to a square, area-average down to 32x32, normalise with
 * CIFAR-10's mean and std) and rank the classes by softmax probability.
 *
 * The crop/resize and ranking code is shared with the browser page (`web/preprocess.js`),
 * so `deno task predict` and `deno task serve` feed the model the same pixels.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { decode as decodePngBytes, type DecodedPng } from "fast-png";
import jpeg from "jpeg-js";
import {
  CHANNELS,
  CIFAR10_CLASSES,
  IMAGE_BYTES,
  IMAGE_SIZE,
  normalizeInto,
  type Split,
} from "../data.ts";
import { loadModel } from "../io/tfjs_model.ts";
import { type ClassProbability, cropAndResize, topK } from "./preprocess.js";

export { type ClassProbability, cropAndResize, topK };

/** How many classes `deno task predict` and the page show. */
export const DEFAULT_TOP_K = 3;

/** Images per forward pass when classifying many. */
const BATCH_SIZE = 64;

/** The largest image decoded, in megapixels (a 12 MP phone photo is 4000x3000). */
export const MAX_MEGAPIXELS = 100;

/** An image after decoding: RGB, row-major, 8 bits a channel. */
export interface RgbImage {
  width: number;
  height: number;
  /** `width * height * 3` bytes. */
  data: Uint8Array;
}

/** A file that could not be read or decoded as an image; the message names the file. */
export class ImageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ImageError";
  }
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const JPEG_SIGNATURE = [0xff, 0xd8, 0xff];

function startsWith(bytes: Uint8Array, prefix: number[]): boolean {
  return prefix.every((b, i) => bytes[i] === b);
}

/** A short description of what a non-image file looks like, for error messages. */
function describeBytes(bytes: Uint8Array): string {
  if (bytes.length === 0) return "an empty file";
  const ascii = new TextDecoder().decode(bytes.subarray(0, 4));
  if (ascii.startsWith("GIF8")) return "a GIF image";
  if (ascii === "RIFF") return "a RIFF file (WebP?)";
  if (ascii.startsWith("BM")) return "a BMP image";
  const head = bytes.subarray(0, 8);
  const printable = head.every((b) => b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127));
  if (printable) return `text starting ${JSON.stringify(new TextDecoder().decode(head))}`;
  return `bytes ${Array.from(head, (b) => b.toString(16).padStart(2, "0")).join(" ")}`;
}

/**
 * Decodes a PNG or JPEG (told apart by their signatures, not by the file name) into RGB.
 * Transparent pixels are composited over white, as a page shows them; 16-bit PNGs are
 * rounded to 8 bits; grayscale and palette images are expanded; a JPEG's EXIF orientation
 * is applied, as browsers and photo viewers do.
 *
 * @param bytes The whole file.
 * @param source Where the bytes came from, for error messages.
 * @returns The decoded image.
 * @throws {ImageError} naming `source` when the bytes are neither PNG nor JPEG, or are corrupt.
 *
 * @example
 * ```ts
 * import { decodeImage } from "./classify.ts";
 * import { encodePng } from "../io/png.ts";
 * const image = decodeImage(await encodePng(new Uint8Array([1, 2, 3]), 1, 1), "dot.png");
 * console.log(image.width, image.data); // 1 Uint8Array(3) [1, 2, 3]
 * ```
 */
export function decodeImage(bytes: Uint8Array, source: string): RgbImage {
  if (startsWith(bytes, PNG_SIGNATURE)) return decodePng(bytes, source);
  if (startsWith(bytes, JPEG_SIGNATURE)) return decodeJpeg(bytes, source);
  throw new ImageError(
    `${source}: expected a PNG or JPEG image but found ${describeBytes(bytes)}`,
  );
}

function decodePng(bytes: Uint8Array, source: string): RgbImage {
  // Check the size in the IHDR chunk (bytes 16..23) before decoding allocates for it.
  if (bytes.length >= 24) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const [width, height] = [view.getUint32(16), view.getUint32(20)];
    if (width * height > MAX_MEGAPIXELS * 1e6) {
      throw new ImageError(
        `${source}: expected at most ${MAX_MEGAPIXELS} megapixels but found ${width}x${height}`,
      );
    }
  }
  let png: DecodedPng;
  try {
    png = decodePngBytes(bytes);
  } catch (error) {
    throw new ImageError(`${source}: not a readable PNG (${(error as Error).message})`);
  }
  const { width, height, channels, depth } = png;
  const pixels = width * height;
  let values: ArrayLike<number> = png.data;
  let perPixel = channels;
  if (png.palette !== undefined) {
    // Indexed colour: expand through the palette (fast-png merges tRNS alphas into it).
    const palette = png.palette;
    perPixel = 4;
    const rgba = new Uint8Array(pixels * 4);
    const indices = unpackBits(png.data, depth, width, height);
    for (let i = 0; i < pixels; i++) {
      const entry = palette[indices[i]];
      if (entry === undefined) {
        throw new ImageError(
          `${source}: palette index ${
            indices[i]
          } at pixel ${i} is outside the ${palette.length}-colour palette`,
        );
      }
      rgba.set([entry[0], entry[1], entry[2], entry[3] ?? 255], i * 4);
    }
    values = rgba;
  } else if (depth < 8) {
    values = unpackBits(png.data, depth, width * channels, height).map((v) =>
      Math.round((v * 255) / (2 ** depth - 1))
    );
  }
  const max = depth === 16 ? 65535 : 255;
  return { width, height, data: toRgbOverWhite(values, pixels, perPixel, max) };
}

/** Sub-byte samples (1, 2 or 4 bits, rows padded to whole bytes) as one number each. */
function unpackBits(
  data: ArrayLike<number>,
  depth: number,
  samplesPerRow: number,
  rows: number,
): Uint8Array {
  if (depth >= 8) return Uint8Array.from(data);
  const out = new Uint8Array(samplesPerRow * rows);
  const rowBytes = Math.ceil((samplesPerRow * depth) / 8);
  const mask = (1 << depth) - 1;
  for (let y = 0; y < rows; y++) {
    for (let x = 0; x < samplesPerRow; x++) {
      const bit = x * depth;
      const byte = data[y * rowBytes + (bit >> 3)];
      out[y * samplesPerRow + x] = (byte >> (8 - depth - (bit & 7))) & mask;
    }
  }
  return out;
}

/** Gray, gray+alpha, RGB or RGBA samples (0..max) to 8-bit RGB, alpha composited over white. */
function toRgbOverWhite(
  values: ArrayLike<number>,
  pixels: number,
  channels: number,
  max: number,
): Uint8Array {
  const rgb = new Uint8Array(pixels * 3);
  const hasAlpha = channels === 2 || channels === 4;
  const colours = hasAlpha ? channels - 1 : channels;
  for (let i = 0; i < pixels; i++) {
    const at = i * channels;
    const alpha = hasAlpha ? values[at + colours] / max : 1;
    for (let c = 0; c < 3; c++) {
      const v = values[at + (colours === 1 ? 0 : c)] / max;
      rgb[i * 3 + c] = Math.round(255 * (v * alpha + (1 - alpha)));
    }
  }
  return rgb;
}

function decodeJpeg(bytes: Uint8Array, source: string): RgbImage {
  let decoded: { width: number; height: number; data: Uint8Array; exifBuffer?: Uint8Array };
  try {
    decoded = jpeg.decode(bytes, {
      useTArray: true,
      formatAsRGBA: false,
      maxResolutionInMP: MAX_MEGAPIXELS,
    });
  } catch (error) {
    const message = typeof error === "string" ? error : (error as Error).message;
    throw new ImageError(`${source}: not a readable JPEG (${message})`);
  }
  const image = { width: decoded.width, height: decoded.height, data: decoded.data };
  return orient(image, exifOrientation(decoded.exifBuffer));
}

/**
 * The EXIF orientation tag (1..8; 1 = upright) from the payload of a JPEG's APP1 segment
 * after `Exif\0`, or 1 when there is none or it cannot be read.
 */
export function exifOrientation(exif: Uint8Array | undefined): number {
  if (exif === undefined) return 1;
  const tiff = exif[0] === 0 ? exif.subarray(1) : exif; // `Exif\0\0`: one more zero
  if (tiff.length < 8) return 1;
  const view = new DataView(tiff.buffer, tiff.byteOffset, tiff.byteLength);
  const little = tiff[0] === 0x49 && tiff[1] === 0x49; // "II"; "MM" is big-endian
  if (!little && !(tiff[0] === 0x4d && tiff[1] === 0x4d)) return 1;
  const ifd = view.getUint32(4, little);
  if (ifd + 2 > tiff.length) return 1;
  const entries = view.getUint16(ifd, little);
  for (let i = 0; i < entries; i++) {
    const at = ifd + 2 + i * 12;
    if (at + 12 > tiff.length) return 1;
    if (view.getUint16(at, little) === 0x0112) {
      const value = view.getUint16(at + 8, little);
      return value >= 1 && value <= 8 ? value : 1;
    }
  }
  return 1;
}

/**
 * Rotates/mirrors an image so that EXIF `orientation` (1..8) becomes upright.
 *
 * @example
 * ```ts
 * import { orient } from "./classify.ts";
 * // Orientation 6: the camera was turned 90 degrees clockwise; turn the pixels back.
 * const turned = orient({ width: 2, height: 1, data: new Uint8Array([1, 1, 1, 2, 2, 2]) }, 6);
 * console.log(turned.width, turned.height, turned.data); // 1 2 Uint8Array(6) [1, 1, 1, 2, 2, 2]
 * ```
 */
export function orient(image: RgbImage, orientation: number): RgbImage {
  if (orientation === 1) return image;
  const { width: w, height: h, data } = image;
  const swap = orientation >= 5;
  const outWidth = swap ? h : w;
  const outHeight = swap ? w : h;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < outHeight; y++) {
    for (let x = 0; x < outWidth; x++) {
      // Where output (x, y) comes from in the stored image.
      const [sx, sy] = [
        [x, y],
        [w - 1 - x, y],
        [w - 1 - x, h - 1 - y],
        [x, h - 1 - y],
        [y, x],
        [y, h - 1 - x],
        [w - 1 - y, h - 1 - x],
        [w - 1 - y, x],
      ][orientation - 1];
      out.set(data.subarray((sy * w + sx) * 3, (sy * w + sx) * 3 + 3), (y * outWidth + x) * 3);
    }
  }
  return { width: outWidth, height: outHeight, data: out };
}

/**
 * Turns a decoded image of any size into one CIFAR-10 input: center-crop to a square,
 * area-average down (or up) to 32x32 and round to bytes, as the training images are.
 *
 * @returns `32 * 32 * 3` bytes, NHWC for one image.
 */
export function toCifarPixels(image: RgbImage): Uint8Array {
  return cropAndResize(image.data, image.width, image.height, 3, IMAGE_SIZE);
}

/** One image's ranked classes. */
export type Prediction = ClassProbability[];

/** Options for the `classify*` functions. */
export interface ClassifyOptions {
  /** How many classes to return per image. @default 3 */
  k?: number;
  /** Names by label. @default CIFAR10_CLASSES */
  classNames?: readonly string[];
}

/**
 * Classifies images that are already CIFAR-sized: normalises them (the article's
 * ToTensor + Normalize), runs `model` in inference mode and ranks the softmax.
 *
 * @param model A model from `resnet18()` or `loadModel()`.
 * @param pixels `count * 3072` bytes, `[count, 32, 32, 3]` NHWC.
 * @param options How many classes per image and their names.
 * @returns One ranked list per image, in order.
 * @throws {RangeError} If `pixels` is not a whole number of 32x32 RGB images.
 */
export async function classifyPixels(
  model: tf.LayersModel,
  pixels: Uint8Array,
  options: ClassifyOptions = {},
): Promise<Prediction[]> {
  const k = options.k ?? DEFAULT_TOP_K;
  const classNames = options.classNames ?? CIFAR10_CLASSES;
  if (pixels.length % IMAGE_BYTES !== 0) {
    throw new RangeError(
      `Expected a multiple of ${IMAGE_BYTES} bytes (32x32 RGB images) but found ${pixels.length}`,
    );
  }
  const count = pixels.length / IMAGE_BYTES;
  const predictions: Prediction[] = [];
  for (let start = 0; start < count; start += BATCH_SIZE) {
    const n = Math.min(BATCH_SIZE, count - start);
    const x = new Float32Array(n * IMAGE_BYTES); // [n, 32, 32, 3] NHWC
    normalizeInto(pixels.subarray(start * IMAGE_BYTES, (start + n) * IMAGE_BYTES), x);
    const softmax = tf.tidy(() => {
      const input = tf.tensor4d(x, [n, IMAGE_SIZE, IMAGE_SIZE, CHANNELS]);
      return tf.softmax(model.predict(input) as tf.Tensor2D);
    });
    // await data(), not dataSync(): the WebGPU backend cannot read synchronously.
    const probabilities = await softmax.data() as Float32Array;
    softmax.dispose();
    const classes = probabilities.length / n;
    for (let i = 0; i < n; i++) {
      predictions.push(topK(probabilities.subarray(i * classes, (i + 1) * classes), classNames, k));
    }
  }
  return predictions;
}

/**
 * Classifies one PNG or JPEG file: the function for a notebook cell.
 *
 * @param model A trained model (see {@linkcode loadRunModel}).
 * @param path The image file.
 * @param options How many classes and their names.
 * @returns The top classes, most probable first.
 * @throws {ImageError} naming `path` if it cannot be read or is not a PNG/JPEG.
 *
 * @example
 * ```ts ignore
 * const model = await loadRunModel("runs/smoke");
 * console.table(await classifyImageFile(model, "cat.jpg"));
 * ```
 */
export async function classifyImageFile(
  model: tf.LayersModel,
  path: string,
  options: ClassifyOptions = {},
): Promise<Prediction> {
  const [result] = await classifyImageFiles(model, [path], options);
  if ("error" in result) throw new ImageError(result.error);
  return result.top;
}

/** What happened to one file: its ranked classes, or why it could not be classified. */
export type FileResult = { file: string; top: Prediction } | { file: string; error: string };

/**
 * Classifies many files in batches. A file that cannot be read or decoded gets an `error`
 * (naming the file and the problem) and does not stop the others.
 *
 * @param model A trained model.
 * @param paths Image files, PNG or JPEG, any size.
 * @param options How many classes and their names.
 * @returns One result per path, in order.
 */
export async function classifyImageFiles(
  model: tf.LayersModel,
  paths: readonly string[],
  options: ClassifyOptions = {},
): Promise<FileResult[]> {
  const results: FileResult[] = [];
  const ready: { index: number; pixels: Uint8Array }[] = [];
  for (const file of paths) {
    try {
      const image = decodeImage(await readImageFile(file), file);
      ready.push({ index: results.length, pixels: toCifarPixels(image) });
      results.push({ file, top: [] });
    } catch (error) {
      if (!(error instanceof ImageError)) throw error;
      results.push({ file, error: error.message });
    }
  }
  const all = new Uint8Array(ready.length * IMAGE_BYTES);
  ready.forEach((r, i) => all.set(r.pixels, i * IMAGE_BYTES));
  (await classifyPixels(model, all, options)).forEach((top, i) => {
    results[ready[i].index] = { file: paths[ready[i].index], top };
  });
  return results;
}

async function readImageFile(path: string): Promise<Uint8Array> {
  try {
    const info = await Deno.stat(path);
    if (info.isDirectory) {
      throw new ImageError(`${path}: expected an image file but found a folder`);
    }
    return await Deno.readFile(path);
  } catch (error) {
    if (error instanceof ImageError) throw error;
    const reason = error instanceof Deno.errors.NotFound
      ? "no such file"
      : error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied
      ? `not allowed to read it (${(error as Error).message})`
      : (error as Error).message;
    throw new ImageError(`${path}: cannot read (${reason})`);
  }
}

/** One image of a split with its true label and the model's ranked classes. */
export interface SplitPrediction {
  /** Index in the split. */
  index: number;
  /** The true label. */
  label: number;
  /** The model's top classes. */
  top: Prediction;
}

/**
 * Classifies chosen images of a CIFAR-10 split (e.g. the test set), for a notebook
 * cell that shows pictures with the true and predicted classes.
 *
 * @param model A trained model.
 * @param split The images and labels (from `loadCifar10()`).
 * @param indices Which images; all of them if omitted.
 * @param options How many classes and their names.
 * @returns One entry per index, in order.
 * @throws {RangeError} If an index is outside the split.
 *
 * @example
 * ```ts
 * import { resnet18 } from "../model.ts";
 * import { classifySplit } from "./classify.ts";
 * const model = resnet18({ width: 2 });
 * const split = { images: new Uint8Array(2 * 3072), labels: new Uint8Array([3, 5]), count: 2 };
 * const [first] = await classifySplit(model, split, [1]);
 * if (first.label !== 5 || first.top.length !== 3) throw new Error("bad prediction");
 * model.dispose();
 * ```
 */
export async function classifySplit(
  model: tf.LayersModel,
  split: Split,
  indices?: readonly number[],
  options: ClassifyOptions = {},
): Promise<SplitPrediction[]> {
  const chosen = indices ?? Array.from({ length: split.count }, (_, i) => i);
  const pixels = new Uint8Array(chosen.length * IMAGE_BYTES);
  chosen.forEach((index, i) => {
    if (!Number.isInteger(index) || index < 0 || index >= split.count) {
      throw new RangeError(
        `Expected indices in 0..${split.count - 1} but found ${index} at position ${i}`,
      );
    }
    pixels.set(
      split.images.subarray(index * IMAGE_BYTES, (index + 1) * IMAGE_BYTES),
      i * IMAGE_BYTES,
    );
  });
  return (await classifyPixels(model, pixels, options)).map((top, i) => ({
    index: chosen[i],
    label: split.labels[chosen[i]],
    top,
  }));
}

/**
 * Loads the trained model of a run folder (`<run>/model/model.json`), or of a model
 * folder given directly.
 *
 * @param dir A run folder from `deno task train`, or its `model/` folder.
 * @throws {Error} naming the folder when neither holds a model.json.
 */
export async function loadRunModel(dir: string): Promise<tf.LayersModel> {
  return await loadModel(await modelFolder(dir));
}

/**
 * The folder holding `model.json` for a run folder or a model folder.
 * @throws {Error} naming both places looked at when neither has one.
 */
export async function modelFolder(dir: string): Promise<string> {
  const exists = (path: string) => Deno.stat(path).then((s) => s.isFile, () => false);
  const candidates = [`${dir}/model`, dir];
  for (const folder of candidates) {
    if (await exists(`${folder}/model.json`)) return folder;
  }
  throw new Error(
    `Expected a run folder with model/model.json (or a folder with model.json) at ${dir} but found ` +
      `neither ${candidates.map((c) => `${c}/model.json`).join(" nor ")}`,
  );
}

/**
 * Formats results as the CLI prints them: per file, its name then one line per class.
 *
 * @example
 * ```ts
 * import { formatResults } from "./classify.ts";
 * console.log(formatResults([{ file: "a.png", top: [{ label: 3, className: "cat", probability: 0.5 }] }]));
 * // a.png
 * //   cat         50.0%
 * ```
 */
export function formatResults(results: readonly FileResult[]): string {
  return results.map((r) =>
    "error" in r ? `error: ${r.error}` : [
      r.file,
      ...r.top.map((t) =>
        `  ${t.className.padEnd(10)} ${(100 * t.probability).toFixed(1).padStart(5)}%`
      ),
    ].join("\n")
  ).join("\n");
}
