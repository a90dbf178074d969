/**
 * Floating-point operations per image of a conv net, counted from its layers' shapes, so the
 * bench can say what fraction of the machine's arithmetic a training step uses.
 *
 * What counts:
 * - **Multiply-adds of Conv and Dense layers, as 2 FLOPs each** (the usual convention: one
 *   multiply-add is a multiply and an add). A conv's are its output positions times its kernel's
 *   elements (`ho * wo * kh * kw * cin * cout`), a dense layer's `in * units` per position. These
 *   are {@linkcode ModelFlops.forwardFlops} and the basis of every GFLOP/s the bench prints.
 * - **Training**: each such layer's forward pass, its weight gradient (the same multiply-adds
 *   again) and its input gradient (again), except where no gradient is needed: no weight
 *   gradient for a frozen layer, no input gradient where nothing upstream has weights, i.e. the
 *   stem conv that reads the images, which the project's backends skip
 *   (`lib/backends/stem_conv.ts`; the stock cpu backend's fused conv still computes it).
 * - **Elementwise work** (batch norm, bias adds, activations, residual adds, pooling) is counted
 *   apart, forward only ({@linkcode ModelFlops.forwardElementwiseOps}), and in no GFLOP/s: it is
 *   well under 1 % of a ResNet's FLOPs, and its cost is memory traffic, not arithmetic.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";

/** What one layer with multiply-adds contributes, per image. */
export interface LayerFlops {
  /** The layer's name, e.g. `layer1.0.conv1`. */
  name: string;
  /** Its class, e.g. `Conv2D`. */
  className: string;
  /** 2 x its forward multiply-adds. */
  forwardFlops: number;
  /** Forward + weight gradient (if trainable) + input gradient (if needed). */
  trainFlops: number;
  /** Whether training computes its input's gradient (false at the stem). */
  inputGradient: boolean;
}

/** A model's FLOPs per image; see the module doc for what counts. */
export interface ModelFlops {
  /** 2 x the multiply-adds of the Conv and Dense layers in one forward pass (inference). */
  forwardFlops: number;
  /** Those layers' FLOPs in one training step: forward, weight and input gradients. */
  trainFlops: number;
  /** Elementwise operations of a forward pass (batch norm, biases, activations, adds, pooling). */
  forwardElementwiseOps: number;
  /** The layers with multiply-adds, in the model's order. */
  layers: LayerFlops[];
}

/** Layers whose multiply-adds are output positions x kernel elements (see `kernelShape`). */
const CONV_OR_DENSE = new Set(["Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "Dense"]);

/** Layers with weights but no multiply-adds: elementwise per output value. */
const ELEMENTWISE_WITH_WEIGHTS = new Set(["BatchNormalization", "PReLU"]);

/** Merge layers: `inputs - 1` operations per output value. */
const MERGE = new Set(["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"]);

/** One-input activations: one operation per output value. */
const ACTIVATIONS = new Set([
  "ReLU",
  "Activation",
  "LeakyReLU",
  "ELU",
  "ThresholdedReLU",
  "Softmax",
]);

/** The layer internals read here (public in tfjs-layers' sources, not all in its typings). */
interface LayerNode {
  inboundLayers: tf.layers.Layer[];
}

/** The calls of a layer: each call's inputs come from `inboundLayers`. */
const inboundNodes = (layer: tf.layers.Layer) =>
  (layer as unknown as { inboundNodes: LayerNode[] }).inboundNodes;

const product = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

/** One example's shape at a layer's output (batch dimension dropped), checked to be known. */
function exampleShape(layer: tf.layers.Layer, shape: tf.Shape | tf.Shape[]): number[] {
  const single = Array.isArray(shape[0]) ? (shape as tf.Shape[])[0] : (shape as tf.Shape);
  const dims = single.slice(1);
  if (!dims.every((d): d is number => typeof d === "number" && d > 0)) {
    throw new RangeError(
      `countFlops: expected layer "${layer.name}" to have a known shape per example but found ` +
        `${JSON.stringify(single)}`,
    );
  }
  return dims;
}

/** The kernel's shape and the output channels it makes (depthwise: `cin * multiplier`). */
function kernelShape(layer: tf.layers.Layer): { shape: number[]; outChannels: number } {
  const suffix = layer.getClassName() === "DepthwiseConv2D" ? "/depthwise_kernel" : "/kernel";
  const kernel = layer.weights.find((w) => w.originalName.endsWith(suffix));
  if (kernel === undefined) {
    throw new Error(
      `countFlops: expected ${layer.getClassName()} layer "${layer.name}" to have a weight ` +
        `named "*${suffix}" but found ${JSON.stringify(layer.weights.map((w) => w.originalName))}`,
    );
  }
  const shape = kernel.shape as number[];
  const outChannels = layer.getClassName() === "DepthwiseConv2D"
    ? shape[2] * shape[3]
    : shape[shape.length - 1];
  return { shape, outChannels };
}

/** Whether a layer's output depends on a trainable weight, given its inbound layers'. */
function readsWeights(layer: tf.layers.Layer, dependsOnWeights: Set<tf.layers.Layer>): boolean {
  return inboundNodes(layer).some((node) =>
    node.inboundLayers.some((inbound) => dependsOnWeights.has(inbound))
  );
}

/** Forward elementwise operations of a layer without multiply-adds (0 for reshapes, padding). */
function elementwiseOps(layer: tf.layers.Layer): number {
  const className = layer.getClassName();
  const outputs = product(exampleShape(layer, layer.outputShape));
  if (ELEMENTWISE_WITH_WEIGHTS.has(className)) {
    // Inference batch norm folds into x * scale + shift.
    return className === "BatchNormalization" ? 2 * outputs : outputs;
  }
  if (ACTIVATIONS.has(className)) return outputs;
  if (MERGE.has(className)) {
    const inputs = inboundNodes(layer)[0]?.inboundLayers.length ?? 1;
    return (inputs - 1) * outputs;
  }
  // Pooling reads each input value once (exact for non-overlapping windows).
  if (/Pooling/.test(className)) {
    const inbound = inboundNodes(layer)[0]?.inboundLayers[0];
    return inbound === undefined ? 0 : product(exampleShape(inbound, inbound.outputShape));
  }
  return 0;
}

/**
 * Counts the FLOPs per image of a model built of Conv, Dense, BatchNormalization and weightless
 * layers (activations, adds, padding, pooling, reshapes), from its shapes.
 *
 * Each layer is counted once (a layer shared by two calls has one output shape in tfjs).
 *
 * @param model A functional or sequential model with known input sizes.
 * @returns Forward and training FLOPs per image (2 per multiply-add), the forward elementwise
 *   operations counted apart, and each conv or dense layer's share.
 * @throws {Error} If a layer holds weights but is not one of the kinds above (its FLOPs would go
 *   uncounted), or a shape per example is unknown.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { countFlops } from "./flops.ts";
 *
 * const input = tf.input({ shape: [4] });
 * const output = tf.layers.dense({ units: 3 }).apply(input) as tf.SymbolicTensor;
 * const model = tf.model({ inputs: input, outputs: output });
 * // 4 x 3 multiply-adds; training needs no input gradient at the first layer.
 * console.log(countFlops(model).forwardFlops, countFlops(model).trainFlops); // 24 48
 * model.dispose();
 * ```
 */
export function countFlops(model: tf.LayersModel): ModelFlops {
  const dependsOnWeights = new Set<tf.layers.Layer>();
  const layers: LayerFlops[] = [];
  let forwardElementwiseOps = 0;
  // model.layers is in topological order: a layer's inbound layers come before it.
  for (const layer of model.layers) {
    const className = layer.getClassName();
    const trainable = layer.trainable && layer.trainableWeights.length > 0;
    const upstreamWeights = readsWeights(layer, dependsOnWeights);
    if (trainable || upstreamWeights) dependsOnWeights.add(layer);
    if (CONV_OR_DENSE.has(className)) {
      const kernel = kernelShape(layer);
      const positions = product(exampleShape(layer, layer.outputShape)) / kernel.outChannels;
      const forwardFlops = 2 * positions * product(kernel.shape);
      layers.push({
        name: layer.name,
        className,
        forwardFlops,
        trainFlops: forwardFlops * (1 + (trainable ? 1 : 0) + (upstreamWeights ? 1 : 0)),
        inputGradient: upstreamWeights,
      });
      const useBias = layer.weights.some((w) => w.originalName.endsWith("/bias"));
      if (useBias) forwardElementwiseOps += positions * kernel.outChannels;
    } else if (layer.weights.length > 0 && !ELEMENTWISE_WITH_WEIGHTS.has(className)) {
      throw new Error(
        `countFlops: expected only ${[...CONV_OR_DENSE, ...ELEMENTWISE_WITH_WEIGHTS].join(", ")} ` +
          `layers to hold weights but found ${className} layer "${layer.name}" with ` +
          `${layer.weights.length} weights; its FLOPs would go uncounted`,
      );
    } else {
      forwardElementwiseOps += elementwiseOps(layer);
    }
  }
  return {
    forwardFlops: layers.reduce((sum, l) => sum + l.forwardFlops, 0),
    trainFlops: layers.reduce((sum, l) => sum + l.trainFlops, 0),
    forwardElementwiseOps,
    layers,
  };
}
