/**
 * The article's ResNet-18 for CIFAR-10, built with the TensorFlow.js layers API
 * (so `model.summary()`, saving and loading work), with PyTorch's semantics:
 * its layer names (`layer1.0.conv1`, `bn1`, `fc`), its default initialisation,
 * its padding and its BatchNorm momentum.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { IMAGE_SIZE, NUM_CLASSES } from "./io/cifar10_format.ts";

/** One stage of residual blocks: how many, how wide (as a multiple of the stem width), first stride. */
export interface StageSpec {
  blocks: number;
  widthMultiplier: number;
  stride: number;
}

/** ResNet-18's four stages: 2 blocks each at 64, 128, 256, 512 channels. */
export const RESNET18_STAGES: readonly StageSpec[] = [
  { blocks: 2, widthMultiplier: 1, stride: 1 },
  { blocks: 2, widthMultiplier: 2, stride: 2 },
  { blocks: 2, widthMultiplier: 4, stride: 2 },
  { blocks: 2, widthMultiplier: 8, stride: 2 },
];

/** What PyTorch reports for the article's model: `sum(p.numel() for p in model.parameters())`. */
export const ARTICLE_PYTORCH_PARAMETERS = 11_177_866;

// PyTorch's BatchNorm2d(momentum=0.1) updates running = 0.9 * running + 0.1 * batch;
// Keras writes the same rule with momentum = 0.9.
const BN_MOMENTUM = 0.9;
const BN_EPSILON = 1e-5;

/** Options for {@linkcode resnet18}. */
export interface ResNetOptions {
  /** Channels of the stem and the first stage; later stages double it. @default 64 */
  width?: number;
  /** Residual blocks per stage. @default [2, 2, 2, 2] */
  blocksPerStage?: readonly number[];
  /** Output classes. @default 10 */
  numClasses?: number;
  /** Seed of the weight initialisation. @default 0 */
  seed?: number;
  /** Bias on the stem and block convs, as PyTorch's `nn.Conv2d` default in the article. @default true */
  convBias?: boolean;
}

/**
 * PyTorch's default initialisation of conv and linear layers
 * (`kaiming_uniform_(a=sqrt(5))` for weights, uniform(±1/sqrt(fanIn)) for biases):
 * both are uniform in ±1/sqrt(fanIn).
 */
export function pytorchUniform(
  fanIn: number,
  seed: number,
): ReturnType<typeof tf.initializers.randomUniform> {
  const bound = 1 / Math.sqrt(fanIn);
  return tf.initializers.randomUniform({ minval: -bound, maxval: bound, seed });
}

/** Hands out a distinct, reproducible seed to each layer in build order. */
export class SeedSequence {
  #next: number;
  constructor(seed: number) {
    this.#next = seed * 1000;
  }
  take(): number {
    return this.#next++;
  }
}

interface ConvSpec {
  name: string;
  inChannels: number;
  filters: number;
  kernelSize: number;
  stride: number;
  useBias: boolean;
}

/**
 * A conv with PyTorch's padding (`padding = kernelSize // 2`, the same on every side).
 * TensorFlow's `'same'` agrees for stride 1, but for stride 2 on an even input it pads only
 * bottom/right, shifting every window by a pixel; there we pad explicitly and use `'valid'`.
 */
function conv(
  x: tf.SymbolicTensor,
  spec: ConvSpec,
  seeds: SeedSequence,
): tf.SymbolicTensor {
  const pad = Math.floor(spec.kernelSize / 2);
  const fanIn = spec.kernelSize * spec.kernelSize * spec.inChannels;
  let input = x;
  let padding: "same" | "valid" = "same";
  if (spec.stride !== 1 && pad > 0) {
    input = tf.layers.zeroPadding2d({ padding: pad, name: `${spec.name}.pad` })
      .apply(x) as tf.SymbolicTensor;
    padding = "valid";
  }
  return tf.layers.conv2d({
    name: spec.name,
    filters: spec.filters,
    kernelSize: spec.kernelSize,
    strides: spec.stride,
    padding,
    useBias: spec.useBias,
    kernelInitializer: pytorchUniform(fanIn, seeds.take()),
    biasInitializer: spec.useBias ? pytorchUniform(fanIn, seeds.take()) : undefined,
  }).apply(input) as tf.SymbolicTensor;
}

function batchNorm(x: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
  return tf.layers.batchNormalization({ name, momentum: BN_MOMENTUM, epsilon: BN_EPSILON })
    .apply(x) as tf.SymbolicTensor;
}

function relu(x: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
  return tf.layers.reLU({ name }).apply(x) as tf.SymbolicTensor;
}

/** Where a residual block sits and what it maps: `inChannels` to `outChannels` at `stride`. */
export interface BlockSpec {
  /** PyTorch module path, e.g. `layer2.0`. */
  name: string;
  inChannels: number;
  outChannels: number;
  stride: number;
  useBias: boolean;
}

/**
 * The article's `ResidualBlock`: out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)),
 * where the shortcut is the identity, or a 1x1 conv + BN when the shape changes.
 *
 * @param x The block's input, `[batch, h, w, inChannels]`.
 * @param spec Name, channels and stride.
 * @param seeds Seeds for the initialisation, taken in build order.
 * @returns The block's output, `[batch, h / stride, w / stride, outChannels]`.
 */
export function residualBlock(
  x: tf.SymbolicTensor,
  spec: BlockSpec,
  seeds: SeedSequence,
): tf.SymbolicTensor {
  const { name, inChannels, outChannels, stride, useBias } = spec;
  let out = conv(x, {
    name: `${name}.conv1`,
    inChannels,
    filters: outChannels,
    kernelSize: 3,
    stride,
    useBias,
  }, seeds);
  out = relu(batchNorm(out, `${name}.bn1`), `${name}.relu1`);
  out = conv(out, {
    name: `${name}.conv2`,
    inChannels: outChannels,
    filters: outChannels,
    kernelSize: 3,
    stride: 1,
    useBias,
  }, seeds);
  out = batchNorm(out, `${name}.bn2`);
  let shortcut = x;
  if (stride !== 1 || inChannels !== outChannels) {
    shortcut = conv(x, {
      name: `${name}.shortcut.0`,
      inChannels,
      filters: outChannels,
      kernelSize: 1,
      stride,
      useBias: false,
    }, seeds);
    shortcut = batchNorm(shortcut, `${name}.shortcut.1`);
  }
  const sum = tf.layers.add({ name: `${name}.add` }).apply([out, shortcut]) as tf.SymbolicTensor;
  return relu(sum, `${name}.relu2`);
}

/**
 * Builds the article's ResNet-18 (or a narrower/shorter variant of the same shape).
 *
 * Layer names follow the PyTorch module paths (`conv1`, `bn1`, `layer1.0.conv1`,
 * `layer1.0.shortcut.0`, `fc`), so weights map one to one onto a PyTorch `state_dict`.
 *
 * @param options Width, blocks per stage, classes, seed, conv biases.
 * @returns An uncompiled `tf.LayersModel` from `[batch, 32, 32, 3]` normalised images to logits.
 *
 * @example
 * ```ts
 * import { resnet18 } from "./model.ts";
 * const model = resnet18({ width: 8 });
 * console.log(model.outputs[0].shape); // [null, 10]
 * model.dispose();
 * ```
 */
export function resnet18(options: ResNetOptions = {}): tf.LayersModel {
  const width = options.width ?? 64;
  const blocksPerStage = options.blocksPerStage ?? RESNET18_STAGES.map((s) => s.blocks);
  const numClasses = options.numClasses ?? NUM_CLASSES;
  const useBias = options.convBias ?? true;
  if (!Number.isInteger(width) || width < 1) {
    throw new RangeError(`Expected width to be an integer >= 1 but found ${width}`);
  }
  if (
    blocksPerStage.length !== RESNET18_STAGES.length ||
    !blocksPerStage.every((b) => Number.isInteger(b) && b >= 1)
  ) {
    throw new RangeError(
      `Expected blocksPerStage to be ${RESNET18_STAGES.length} integers >= 1 but found ${
        JSON.stringify(blocksPerStage)
      }`,
    );
  }
  const seeds = new SeedSequence(options.seed ?? 0);

  const input = tf.input({ shape: [IMAGE_SIZE, IMAGE_SIZE, 3], name: "images" });
  let x = conv(
    input,
    {
      name: "conv1",
      inChannels: 3,
      filters: width,
      kernelSize: 3,
      stride: 1,
      useBias,
    },
    seeds,
  );
  x = relu(batchNorm(x, "bn1"), "relu");
  let channels = width;
  RESNET18_STAGES.forEach((stage, s) => {
    const outChannels = width * stage.widthMultiplier;
    for (let b = 0; b < blocksPerStage[s]; b++) {
      x = residualBlock(x, {
        name: `layer${s + 1}.${b}`,
        inChannels: channels,
        outChannels,
        stride: b === 0 ? stage.stride : 1,
        useBias,
      }, seeds);
      channels = outChannels;
    }
  });
  // The article's avg_pool2d(out, 4) on a 4x4 map is a global average.
  x = tf.layers.globalAveragePooling2d({ name: "avgpool" }).apply(x) as tf.SymbolicTensor;
  const logits = tf.layers.dense({
    name: "fc",
    units: numClasses,
    kernelInitializer: pytorchUniform(channels, seeds.take()),
    biasInitializer: pytorchUniform(channels, seeds.take()),
  }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: logits, name: "resnet18" });
}

/** A named point in the network and the shape of one example there. */
export interface StageShape {
  name: string;
  shape: number[];
}

/**
 * The output shape of one example after the stem, each stage, the pooling and the classifier,
 * the checkpoints the article's architecture is usually described by.
 */
export function stageShapes(model: tf.LayersModel): StageShape[] {
  const names = model.layers.map((l) => l.name);
  const lastOfStage = (s: number) =>
    names.filter((n) => n.startsWith(`layer${s}.`) && n.endsWith(".relu2")).at(-1);
  const points: [string, string | undefined][] = [
    ["stem", "relu"],
    ["layer1", lastOfStage(1)],
    ["layer2", lastOfStage(2)],
    ["layer3", lastOfStage(3)],
    ["layer4", lastOfStage(4)],
    ["avgpool", "avgpool"],
    ["fc", "fc"],
  ];
  return points.map(([name, layerName]) => {
    if (layerName === undefined) throw new Error(`Expected the model to have a stage ${name}`);
    const shape = model.getLayer(layerName).outputShape as (number | null)[];
    return { name, shape: shape.slice(1) as number[] };
  });
}

/** Trainable parameters only: what PyTorch's `model.parameters()` counts. */
export function countTrainableParameters(model: tf.LayersModel): number {
  return model.trainableWeights.reduce(
    (sum, w) => sum + w.shape.reduce((a: number, b: number | null) => a * (b ?? 1), 1),
    0,
  );
}
