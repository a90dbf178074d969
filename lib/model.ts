/**
 * The article's ResNet-18 for CIFAR-10, built with the TensorFlow.js layers API
 * (so `model.summary()`, saving and loading work), with PyTorch's semantics:
 * its layer names (`layer1.0.conv1`, `bn1`, `fc`), its default initialisation,
 * its padding and its BatchNorm momentum. The same blocks also build the
 * variants a learner may try (`--arch`): ResNet-34, He et al.'s (2015)
 * CIFAR-10 nets (ResNet-20, -56, ...), and the plain twin of each, the same
 * layers without shortcuts.
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

/** ResNet-34's four stages: 3, 4, 6, 3 blocks at the same widths as ResNet-18's. */
export const RESNET34_STAGES: readonly StageSpec[] = [
  { blocks: 3, widthMultiplier: 1, stride: 1 },
  { blocks: 4, widthMultiplier: 2, stride: 2 },
  { blocks: 6, widthMultiplier: 4, stride: 2 },
  { blocks: 3, widthMultiplier: 8, stride: 2 },
];

/**
 * He et al.'s CIFAR-10 nets (2015, section 4.2): three stages of `n` blocks at 16, 32, 64
 * channels, on 32x32, 16x16 and 8x8 maps, so `6n + 2` layers with weights (the stem, two
 * convs per block, the classifier).
 *
 * @example
 * ```ts
 * import { cifarStages } from "./model.ts";
 * console.log(cifarStages(3).map((s) => s.blocks)); // [3, 3, 3]: ResNet-20
 * ```
 */
export function cifarStages(n: number): StageSpec[] {
  return [1, 2, 4].map((widthMultiplier, s) => ({
    blocks: n,
    widthMultiplier,
    stride: s === 0 ? 1 : 2,
  }));
}

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

/** What `--arch` takes: `resnet` or `plain`, then the depth (layers with weights). */
export type ArchName = `resnet${number}` | `plain${number}`;

/** A network of this module's family as data: its stages, and whether blocks have shortcuts. */
export interface Architecture {
  /** The model's name, as `--arch` writes it: `resnet18`, `plain56`. */
  name: ArchName;
  /** Shortcuts around each block (a ResNet); false: its plain twin, the same layers without. */
  residual: boolean;
  stages: readonly StageSpec[];
  /** Stem width when none is asked for: 64 for the article's family, 16 for He et al.'s. */
  defaultWidth: number;
  /** Bias on the stem and block convs. */
  convBias: boolean;
}

/**
 * The deepest CIFAR-10 net {@linkcode architecture} builds: He et al.'s ResNet-1202. Past it a
 * typo (`resnet2000000`) would build a network of millions of layers before anything said so.
 */
export const MAX_CIFAR_DEPTH = 1202;

/** The architectures the usage text and errors list; `resnet`/`plain` + any depth 6n+2 work. */
export const ARCH_EXAMPLES: readonly ArchName[] = [
  "resnet18",
  "resnet34",
  "plain18",
  "plain34",
  "resnet20",
  "resnet32",
  "resnet44",
  "resnet56",
  "resnet110",
  "plain20",
  "plain56",
];

/**
 * The architecture a name stands for:
 *
 * - `resnet18` (the article's), `resnet34`: four stages of 2, 2, 2, 2 and 3, 4, 6, 3 blocks at
 *   64, 128, 256, 512 channels, conv biases as the article's PyTorch code has them;
 * - `resnet{6n+2}` (`resnet20`, `resnet56`, ...): He et al.'s CIFAR-10 nets, three stages of
 *   `n` blocks at 16, 32, 64 channels. Their convs have no bias, as in the paper: the
 *   BatchNorm after each conv subtracts the batch mean, which cancels a bias;
 * - `plain18`, `plain34`, `plain{6n+2}`: the plain twin of each, without shortcuts.
 *
 * So `resnet50` is He et al.'s CIFAR net of 8 blocks per stage, not ImageNet's ResNet-50 (whose
 * bottleneck blocks this module does not build).
 *
 * @param name What `--arch` was given.
 * @returns The architecture, as data for {@linkcode buildModel}.
 * @throws {RangeError} naming the valid architectures and what was found.
 *
 * @example
 * ```ts
 * import { architecture } from "./model.ts";
 * const plain = architecture("plain56");
 * console.log(plain.residual, plain.stages.map((s) => s.blocks)); // false [9, 9, 9]
 * ```
 */
export function architecture(name: string): Architecture {
  const match = /^(resnet|plain)([1-9]\d*)$/.exec(name);
  const depth = match === null ? NaN : Number(match[2]);
  const residual = match?.[1] === "resnet";
  if (depth === 18 || depth === 34) {
    const stages = depth === 18 ? RESNET18_STAGES : RESNET34_STAGES;
    return { name: name as ArchName, residual, stages, defaultWidth: 64, convBias: true };
  }
  if (depth >= 8 && depth <= MAX_CIFAR_DEPTH && (depth - 2) % 6 === 0) {
    const stages = cifarStages((depth - 2) / 6);
    return { name: name as ArchName, residual, stages, defaultWidth: 16, convBias: false };
  }
  const why = match === null
    ? ""
    : depth > MAX_CIFAR_DEPTH
    ? ` (deeper than ${MAX_CIFAR_DEPTH}, He et al.'s deepest)`
    : ` (${depth} is neither 18, 34 nor 6n+2 with n >= 1)`;
  throw new RangeError(
    `Expected arch to be one of ${ARCH_EXAMPLES.join(", ")}, or resnet/plain followed by ` +
      `another depth 6n+2 up to ${MAX_CIFAR_DEPTH}, but found "${name}"${why}`,
  );
}

/** Options for {@linkcode buildModel}. */
export interface BuildOptions {
  /**
   * Channels of the stem and the first stage; later stages multiply it.
   * @default the architecture's `defaultWidth` (64 for ResNet-18, 16 for ResNet-20)
   */
  width?: number;
  /** Output classes. @default 10 */
  numClasses?: number;
  /** Seed of the weight initialisation. @default 0 */
  seed?: number;
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
  /** Add the shortcut; false leaves the plain net's block, its two convs alone. @default true */
  residual?: boolean;
}

/**
 * The article's `ResidualBlock`: out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)),
 * where the shortcut is the identity, or a 1x1 conv + BN when the shape changes. With
 * `residual: false` it is a plain net's block: out = relu(bn2(conv2(relu(bn1(conv1(x)))))).
 *
 * @param x The block's input, `[batch, h, w, inChannels]`.
 * @param spec Name, channels, stride, and whether the block has its shortcut.
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
  if (spec.residual === false) return relu(out, `${name}.relu2`);
  let shortcut = x;
  // He et al.'s CIFAR nets pad the identity with zero channels here (their option A); the
  // article's projection (option B) serves both families instead: it is stock tf.layers, so a
  // saved model loads with tf.loadLayersModel (in predict and in the browser) without a custom
  // layer, and it costs ResNet-20 only 2,752 weights (1 %).
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
  const blocksPerStage = options.blocksPerStage ?? RESNET18_STAGES.map((s) => s.blocks);
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
  const stages = RESNET18_STAGES.map((stage, s) => ({ ...stage, blocks: blocksPerStage[s] }));
  const arch: Architecture = {
    name: "resnet18",
    residual: true,
    stages,
    defaultWidth: 64,
    convBias: options.convBias ?? true,
  };
  return buildModel(arch, options);
}

/**
 * Builds any {@linkcode Architecture}: the stem (3x3 conv, BN, ReLU), the stages of blocks
 * (each stage's first block at the stage's stride), global average pooling and the classifier.
 * Layers are named and seeded in build order, so one architecture, width and seed always give
 * the same weights.
 *
 * @param arch What to build, e.g. `architecture("resnet20")`.
 * @param options Width, classes, seed.
 * @returns An uncompiled `tf.LayersModel` named `arch.name`, from `[batch, 32, 32, 3]`
 *   normalised images to logits.
 * @throws {RangeError} for a width that is not an integer >= 1.
 *
 * @example
 * ```ts
 * import { architecture, buildModel } from "./model.ts";
 * const model = buildModel(architecture("plain20"), { width: 4 });
 * console.log(model.name, model.outputs[0].shape); // plain20 [null, 10]
 * model.dispose();
 * ```
 */
export function buildModel(arch: Architecture, options: BuildOptions = {}): tf.LayersModel {
  const width = options.width ?? arch.defaultWidth;
  const numClasses = options.numClasses ?? NUM_CLASSES;
  const useBias = arch.convBias;
  if (!Number.isInteger(width) || width < 1) {
    throw new RangeError(`Expected width to be an integer >= 1 but found ${width}`);
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
  arch.stages.forEach((stage, s) => {
    const outChannels = width * stage.widthMultiplier;
    for (let b = 0; b < stage.blocks; b++) {
      x = residualBlock(x, {
        name: `layer${s + 1}.${b}`,
        inChannels: channels,
        outChannels,
        stride: b === 0 ? stage.stride : 1,
        useBias,
        residual: arch.residual,
      }, seeds);
      channels = outChannels;
    }
  });
  // The article's avg_pool2d(out, 4) on a 4x4 map is a global average (8x8 in He's nets).
  x = tf.layers.globalAveragePooling2d({ name: "avgpool" }).apply(x) as tf.SymbolicTensor;
  const logits = tf.layers.dense({
    name: "fc",
    units: numClasses,
    kernelInitializer: pytorchUniform(channels, seeds.take()),
    biasInitializer: pytorchUniform(channels, seeds.take()),
  }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: logits, name: arch.name });
}

/** A named point in the network and the shape of one example there. */
export interface StageShape {
  name: string;
  shape: number[];
}

/**
 * The output shape of one example after the stem, each stage, the pooling and the classifier,
 * the checkpoints the article's architecture is usually described by (four stages for
 * ResNet-18, three for He et al.'s CIFAR nets).
 */
export function stageShapes(model: tf.LayersModel): StageShape[] {
  const names = model.layers.map((l) => l.name);
  const lastOfStage = (s: number) =>
    names.filter((n) => n.startsWith(`layer${s}.`) && n.endsWith(".relu2")).at(-1);
  const stageCount = new Set(names.map((n) => /^layer(\d+)\./.exec(n)?.[1]).filter(Boolean)).size;
  const points: [string, string | undefined][] = [
    ["stem", "relu"],
    ...Array.from(
      { length: stageCount },
      (_, s) => [`layer${s + 1}`, lastOfStage(s + 1)] as [string, string | undefined],
    ),
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
