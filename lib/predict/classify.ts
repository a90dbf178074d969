/**
 * Classifying photos with a trained model: read and decode them (`decode.ts`), run the
 * model on their 32x32 pixels (normalised with CIFAR-10's mean and std, as in training) and
 * rank the classes by softmax probability.
 *
 * The crop/resize and ranking code (`preprocess.js`) is shared with the browser page that
 * `deno task serve` serves, so `deno task predict` and the page feed the model the same pixels.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { CIFAR10_CLASSES, IMAGE_BYTES, imageAt, type Split } from "../data.ts";
import { loadModel } from "../io/tfjs_model.ts";
import { inferBatches } from "../train.ts";
import { decodeImage, ImageError, readImageFile, type RgbImage, toCifarPixels } from "./decode.ts";

export * from "./decode.ts";
import { type ClassProbability, cropAndResize, topK } from "./preprocess.js";

export { type ClassProbability, cropAndResize, topK };

/** How many classes `deno task predict` and the page show. */
export const DEFAULT_TOP_K = 3;

/** Images per forward pass when classifying many. */
const BATCH_SIZE = 64;

/** One image's ranked classes. */
export type Prediction = ClassProbability[];

/** Options for the `classify*` functions. */
export interface ClassifyOptions {
  /** How many classes to return per image. @default 3 */
  k?: number;
  /** Names by label. @default CIFAR10_CLASSES */
  classNames?: readonly string[];
}

/** Options for {@linkcode classifyImageFiles} and {@linkcode classifyImageFile}. */
export interface ClassifyFilesOptions extends ClassifyOptions {
  /**
   * Turns a file's bytes into RGB; a decoder for other formats can take its place.
   * @default decodeImage
   */
  decode?: (bytes: Uint8Array, source: string) => RgbImage;
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
  // The pixels as a split, so they go through the one inference loop (and its normalisation).
  const split: Split = { images: pixels, labels: new Uint8Array(count), count };
  const predictions: Prediction[] = [];
  for await (const { logits, size } of inferBatches(model, split, { batchSize: BATCH_SIZE })) {
    const softmax = tf.softmax(logits);
    // await data(), not dataSync(): the WebGPU backend cannot read synchronously.
    const probabilities = await softmax.data() as Float32Array;
    softmax.dispose();
    const classes = probabilities.length / size;
    for (let i = 0; i < size; i++) {
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
  options: ClassifyFilesOptions = {},
): Promise<Prediction> {
  const [result] = await classifyImageFiles(model, [path], options);
  if ("error" in result) throw new ImageError(result.error);
  return result.top;
}

/** What happened to one file: its ranked classes, or why it could not be classified. */
export type FileResult = { file: string; top: Prediction } | { file: string; error: string };

/**
 * Classifies many files in batches. A file that cannot be read or decoded gets an `error`
 * (naming the file and the problem) and does not stop the others, whatever the error: an
 * {@linkcode ImageError}, or anything else the decoders throw (a bug, or memory running out).
 * Only a failure of the model itself, common to all files, is thrown.
 *
 * @param model A trained model.
 * @param paths Image files, PNG or JPEG, any size within the budgets of `decode.ts`.
 * @param options How many classes, their names, and the decoder.
 * @returns One result per path, in order.
 */
export async function classifyImageFiles(
  model: tf.LayersModel,
  paths: readonly string[],
  options: ClassifyFilesOptions = {},
): Promise<FileResult[]> {
  const decode = options.decode ?? decodeImage;
  const results: FileResult[] = [];
  const ready: { index: number; pixels: Uint8Array }[] = [];
  for (const file of paths) {
    try {
      const image = decode(await readImageFile(file), file);
      ready.push({ index: results.length, pixels: toCifarPixels(image) });
      results.push({ file, top: [] });
    } catch (error) {
      results.push({ file, error: fileErrorMessage(file, error) });
    }
  }
  const all = new Uint8Array(ready.length * IMAGE_BYTES);
  ready.forEach((r, i) => all.set(r.pixels, i * IMAGE_BYTES));
  (await classifyPixels(model, all, options)).forEach((top, i) => {
    results[ready[i].index] = { file: paths[ready[i].index], top };
  });
  return results;
}

/**
 * One file's failure as one line that starts with the file's name: an {@linkcode ImageError}
 * already names it; anything else is named here, with its kind.
 */
function fileErrorMessage(file: string, error: unknown): string {
  if (error instanceof ImageError) return error.message;
  const what = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return `${file}: could not be decoded (${what})`;
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
    pixels.set(imageAt(split, index), i * IMAGE_BYTES);
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
