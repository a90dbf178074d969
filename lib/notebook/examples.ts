/**
 * Data for the notebook's figures: images per class, augmentation examples, the test set as the
 * article's test loader transforms it, predictions and the images they get wrong, and the
 * model's layer table. Each turns data, a model or predictions into rows or captioned images
 * for `htmlTable()`, `showImageGrid()` and the SVG figures of `lib/report/figures.ts`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import {
  augmentInto,
  drawAugmentation,
  IMAGE_BYTES,
  imageAt,
  NUM_CLASSES,
  type Split,
} from "../data.ts";
import type { CaptionedImage } from "../report/figures.ts";
import { inferBatches } from "../train.ts";
import { Rng } from "../train/rng.ts";

/** Images per class, label order. */
export function classCounts(split: Split): number[] {
  const counts = new Array<number>(NUM_CLASSES).fill(0);
  for (const label of split.labels) counts[label]++;
  return counts;
}

/**
 * The first image of each class, and the same images after one draw of the training
 * augmentation (random crop with 4 pixels of zero padding, then a coin-flip mirror).
 *
 * @param split Training images.
 * @param classNames Names by label.
 * @param seed Seeds the augmentation draws.
 * @returns Two rows for `showImageGrid()`: the originals captioned with their class, and the
 *   augmented ones captioned with the shift (dx, dy) and whether they were flipped.
 */
export function augmentationExamples(
  split: Split,
  classNames: readonly string[],
  seed: number,
): { original: CaptionedImage[]; augmented: CaptionedImage[] } {
  const indices = classNames.map((_, label) => split.labels.indexOf(label)).filter((i) => i >= 0);
  const rng = new Rng(seed);
  const original = indices.map((i) => ({
    rgb: imageAt(split, i),
    caption: classNames[split.labels[i]],
  }));
  const augmented = indices.map((i) => {
    const params = drawAugmentation(rng);
    const rgb = new Uint8Array(IMAGE_BYTES);
    augmentInto(imageAt(split, i), rgb, params);
    const shift = (d: number) => (d > 4 ? `+${d - 4}` : `${d - 4}`);
    return {
      rgb,
      caption: `(${shift(params.dx)}, ${shift(params.dy)})${params.flip ? " flip" : ""}`,
    };
  });
  return { original, augmented };
}

/**
 * A copy of `split` with the training augmentation applied once to every image: what the
 * article's test loader feeds the model, since it reuses the training transform.
 */
export function augmentedSplit(split: Split, seed: number): Split {
  const rng = new Rng(seed);
  const augmented = {
    images: new Uint8Array(split.images.length),
    labels: split.labels,
    count: split.count,
  };
  for (let i = 0; i < split.count; i++) {
    augmentInto(imageAt(split, i), imageAt(augmented, i), drawAugmentation(rng));
  }
  return augmented;
}

/**
 * The model's predicted class for each image of `split`: the arg max of the logits that
 * `inferBatches()` yields (no augmentation, inference mode).
 *
 * @param model Maps `[n, 32, 32, 3]` normalised images to `[n, 10]` logits.
 * @param split The images.
 * @param batchSize Images per forward pass. @default 500
 * @returns One label per image, in split order.
 */
export async function predictLabels(
  model: tf.LayersModel,
  split: Split,
  batchSize = 500,
): Promise<Uint8Array> {
  const predicted = new Uint8Array(split.count);
  for await (const { logits, start } of inferBatches(model, split, { batchSize })) {
    const labels = tf.argMax(logits, 1);
    try {
      predicted.set(await labels.data(), start);
    } finally {
      labels.dispose();
    }
  }
  return predicted;
}

/**
 * The first `count` images the model got wrong, captioned `true → predicted` in red.
 *
 * @param split The images that were classified.
 * @param predicted One predicted label per image of `split`.
 * @param classNames Names by label.
 * @param count How many to return at most.
 */
export function misclassifiedExamples(
  split: Split,
  predicted: Uint8Array,
  classNames: readonly string[],
  count: number,
): CaptionedImage[] {
  if (predicted.length !== split.count) {
    throw new RangeError(
      `Expected one prediction per image (${split.count}) but found ${predicted.length}`,
    );
  }
  const wrong: CaptionedImage[] = [];
  for (let i = 0; i < split.count && wrong.length < count; i++) {
    if (predicted[i] === split.labels[i]) continue;
    wrong.push({
      rgb: imageAt(split, i),
      caption: `${classNames[split.labels[i]]} → ${classNames[predicted[i]]}`,
      color: "#c0392b",
    });
  }
  return wrong;
}

/** `[null, 32, 32, 64]` -> `[batch, 32, 32, 64]`; a multi-output layer shows its first output. */
function formatShape(shape: (number | null)[] | (number | null)[][]): string {
  const first = (Array.isArray(shape[0]) ? shape[0] : shape) as (number | null)[];
  return `[${first.map((d) => d ?? "batch").join(", ")}]`;
}

/**
 * Rows for `htmlTable()` in the manner of tfjs-vis `modelSummary`: one per layer with its type,
 * output shape and trainable parameters (BatchNorm's running mean and variance are buffers,
 * as in PyTorch, and not counted).
 *
 * @example
 * ```ts
 * import { modelSummaryRows } from "./examples.ts";
 * import { resnet18 } from "../model.ts";
 * const model = resnet18({ width: 4 });
 * console.log(modelSummaryRows(model)[1]); // ["conv1", "Conv2D", "[batch, 32, 32, 4]", 112]
 * model.dispose();
 * ```
 */
export function modelSummaryRows(model: tf.LayersModel): (string | number)[][] {
  const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
  return [
    ["layer", "type", "output shape", "trainable params"],
    ...model.layers.map((layer) => [
      layer.name,
      layer.getClassName(),
      formatShape(layer.outputShape),
      layer.trainableWeights.reduce((sum, w) => sum + size(w.shape as number[]), 0),
    ]),
  ];
}
