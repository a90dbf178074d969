/**
 * The residual-learning demonstration: how much gradient reaches each layer of a deep stack of
 * small 3x3 convolutions without BatchNorm, as a plain stack (`h = relu(conv(h))`) and as the
 * same stack with identity skip connections (`h = relu(conv(h) + h)`, the article's
 * `F(x) + x`). Both stacks start from the same weights, so the skip is the only difference.
 *
 * The weights are initialised as PyTorch (and `resnet18()`) does, with {@linkcode pytorchUniform}:
 * uniform in ±1/sqrt(fanIn). Without BatchNorm nothing rescales the signal, which is what the
 * demonstration is about.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { CHANNELS, makeBatch, NUM_CLASSES, type Split } from "../data.ts";
import { pytorchUniform, SeedSequence } from "../model.ts";
import type { LayerValue } from "../report/figures.ts";

/** Options of {@linkcode createConvStack}. */
export interface ConvStackOptions {
  /** 3x3 conv layers between the stem and the classifier. @default 20 */
  depth?: number;
  /** Channels of the stem and of every layer. @default 8 */
  channels?: number;
  /** Seed of the initialisation; equal seeds give equal weights. @default 0 */
  seed?: number;
}

/** A conv (or dense) layer's parameters. */
export interface Affine {
  /** `[3, 3, in, out]` for a conv, `[in, out]` for the classifier. */
  kernel: tf.Tensor;
  /** `[out]`. */
  bias: tf.Tensor1D;
}

/** The stack's weights: stem conv (3 -> channels), `depth` convs, classifier (channels -> 10). */
export interface ConvStack {
  stem: Affine;
  layers: Affine[];
  head: Affine;
}

/**
 * Builds the stack's weights. The caller disposes them with {@linkcode disposeConvStack}.
 *
 * @param options Depth, channels and seed.
 * @returns Freshly initialised weights.
 * @throws {RangeError} If `depth` or `channels` is not an integer >= 1.
 *
 * @example
 * ```ts
 * import { createConvStack, disposeConvStack } from "./residual_demo.ts";
 * const stack = createConvStack({ depth: 3, channels: 4 });
 * console.log(stack.layers.length, stack.layers[0].kernel.shape); // 3 [3, 3, 4, 4]
 * disposeConvStack(stack);
 * ```
 */
export function createConvStack(options: ConvStackOptions = {}): ConvStack {
  const { depth = 20, channels = 8, seed = 0 } = options;
  for (const [name, value] of [["depth", depth], ["channels", channels]] as const) {
    if (!Number.isInteger(value) || value < 1) {
      throw new RangeError(`Expected ${name} to be an integer >= 1 but found ${value}`);
    }
  }
  const seeds = new SeedSequence(seed);
  // PyTorch's default for both the weights and the biases.
  const affine = (kernelShape: number[], fanIn: number): Affine => ({
    kernel: pytorchUniform(fanIn, seeds.take()).apply(kernelShape),
    bias: pytorchUniform(fanIn, seeds.take()).apply([kernelShape.at(-1)!]) as tf.Tensor1D,
  });
  return {
    stem: affine([3, 3, CHANNELS, channels], 9 * CHANNELS),
    layers: Array.from({ length: depth }, () => affine([3, 3, channels, channels], 9 * channels)),
    head: affine([channels, NUM_CLASSES], channels),
  };
}

/** Disposes every tensor of a {@linkcode ConvStack}. */
export function disposeConvStack(stack: ConvStack): void {
  for (const { kernel, bias } of [stack.stem, ...stack.layers, stack.head]) {
    tf.dispose([kernel, bias]);
  }
}

function conv(h: tf.Tensor4D, { kernel, bias }: Affine): tf.Tensor4D {
  return tf.add(tf.conv2d(h, kernel as tf.Tensor4D, 1, "same"), bias);
}

/**
 * Mean cross-entropy of the stack on a batch, with or without the skip connections.
 *
 * @param stack The weights.
 * @param x `[batch, 32, 32, 3]` normalised images (NHWC).
 * @param y `[batch]` int32 labels.
 * @param residual `relu(conv(h) + h)` per layer instead of `relu(conv(h))`.
 * @returns The loss, a scalar the caller disposes.
 */
export function stackLoss(
  stack: ConvStack,
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  residual: boolean,
): tf.Scalar {
  return tf.tidy(() => {
    let h = tf.relu(conv(x, stack.stem)); // [batch, 32, 32, channels]
    for (const layer of stack.layers) {
      const f = conv(h, layer);
      h = tf.relu(residual ? tf.add(f, h) : f);
    }
    const pooled = tf.mean(h, [1, 2]) as tf.Tensor2D; // [batch, channels]
    const logits = tf.add(tf.matMul(pooled, stack.head.kernel as tf.Tensor2D), stack.head.bias);
    return tf.losses.softmaxCrossEntropy(tf.oneHot(y, NUM_CLASSES), logits) as tf.Scalar;
  });
}

/**
 * The L2 norm of the loss's gradient with respect to each layer's kernel, input to output:
 * how much learning signal backpropagation delivers to that layer on this batch.
 *
 * @param stack The weights (not changed).
 * @param x `[batch, 32, 32, 3]` normalised images.
 * @param y `[batch]` int32 labels.
 * @param residual With the skip connections.
 * @returns One norm per layer of `stack.layers`.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { createConvStack, disposeConvStack, layerGradientNorms } from "./residual_demo.ts";
 * const stack = createConvStack({ depth: 2, channels: 2 });
 * const x = tf.randomNormal([2, 32, 32, 3]) as tf.Tensor4D;
 * const y = tf.tensor1d([0, 1], "int32");
 * console.log((await layerGradientNorms(stack, x, y, true)).length); // 2
 * tf.dispose([x, y]);
 * disposeConvStack(stack);
 * ```
 */
export async function layerGradientNorms(
  stack: ConvStack,
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  residual: boolean,
): Promise<number[]> {
  const norms = tf.tidy(() => {
    const lossOf = (...kernels: tf.Tensor[]) =>
      stackLoss(
        { ...stack, layers: stack.layers.map((layer, i) => ({ ...layer, kernel: kernels[i] })) },
        x,
        y,
        residual,
      );
    const grads = tf.grads(lossOf)(stack.layers.map((layer) => layer.kernel));
    return tf.stack(grads.map((g) => tf.norm(g)));
  });
  // await data(), not dataSync(): the WebGPU backend cannot read synchronously.
  const values = Array.from(await norms.data());
  norms.dispose();
  return values;
}

/**
 * The demonstration itself: gradient norms per layer for the plain stack and for the residual
 * one, built from the same initial weights, as rows for `perLayerSvg()` in `figures.ts`.
 *
 * @param x `[batch, 32, 32, 3]` normalised images.
 * @param y `[batch]` int32 labels.
 * @param options Depth, channels and seed of the stack.
 * @returns `{ network: "plain" | "residual", layer: 1..depth, value: norm }` rows.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { residualDemo } from "./residual_demo.ts";
 * const x = tf.randomNormal([4, 32, 32, 3]) as tf.Tensor4D;
 * const y = tf.tensor1d([0, 1, 2, 3], "int32");
 * const rows = await residualDemo(x, y, { depth: 3, channels: 2 });
 * console.log(rows.length); // 6: 3 layers x 2 networks
 * tf.dispose([x, y]);
 * ```
 */
export async function residualDemo(
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  options: ConvStackOptions = {},
): Promise<LayerValue[]> {
  const stack = createConvStack(options);
  try {
    const rows: LayerValue[] = [];
    for (const network of ["plain", "residual"] as const) {
      const norms = await layerGradientNorms(stack, x, y, network === "residual");
      norms.forEach((value, i) => rows.push({ network, layer: i + 1, value }));
    }
    return rows;
  } finally {
    disposeConvStack(stack);
  }
}

/**
 * {@linkcode residualDemo} on the first `count` images of a split, un-augmented: the batch is
 * built and disposed here, so a notebook cell that calls this owns no tensors afterwards.
 *
 * @param split The images (e.g. the training split).
 * @param count How many of its first images form the batch.
 * @param options Depth, channels and seed of the stack.
 * @returns As {@linkcode residualDemo}.
 *
 * @example
 * ```ts
 * import { residualDemoOnImages } from "./residual_demo.ts";
 * const split = { images: new Uint8Array(4 * 3072), labels: Uint8Array.of(0, 1, 2, 3), count: 4 };
 * console.log((await residualDemoOnImages(split, 4, { depth: 2, channels: 2 })).length); // 4
 * ```
 */
export async function residualDemoOnImages(
  split: Split,
  count: number,
  options: ConvStackOptions = {},
): Promise<LayerValue[]> {
  const batch = makeBatch(split, Array.from({ length: count }, (_, i) => i), { augment: false });
  try {
    return await residualDemo(batch.x, batch.y, options);
  } finally {
    tf.dispose([batch.x, batch.y]);
  }
}
