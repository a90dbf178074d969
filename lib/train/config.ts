/**
 * The one training configuration, with the article's settings as defaults,
 * and named presets that change some of them.
 *
 * @module
 */
import { MAX_CROP_PADDING } from "../data.ts";
import { architecture, type ArchName } from "../model.ts";

/**
 * A TensorFlow.js backend to ask for: `cpu` (pure JavaScript, the numeric reference), `wasm`,
 * `native` (wasm with native convolutions), `webgpu`, or `auto`, which prefers a hardware WebGPU
 * adapter, else native, else wasm. `lib/backends/init.ts` starts them; the config only names one.
 */
export type BackendName = "cpu" | "wasm" | "native" | "webgpu" | "auto";

/** Every {@linkcode BackendName}, in the order the command line lists them. */
export const BACKEND_NAMES: readonly BackendName[] = ["cpu", "wasm", "native", "webgpu", "auto"];

/** Everything a training run depends on. Functions take it as an argument; nothing reads a global. */
export interface TrainConfig {
  /** Passes over the training set. @default 10 (the article) */
  epochs: number;
  /** Images per optimiser step. @default 64 (the article's DataLoader) */
  batchSize: number;
  /** Adam's step size. @default 0.001 (the article) */
  learningRate: number;
  /**
   * The network (see `architecture()` in `lib/model.ts`): `resnet18` (the article's),
   * `resnet34`, He et al.'s CIFAR nets `resnet20`, `resnet56` (any `resnet{6n+2}`), or the
   * plain twin of any of them (`plain18`, `plain20`, ...), the same layers without shortcuts.
   * @default "resnet18" (the article)
   */
  arch: ArchName;
  /**
   * Channels of the stem; stages use 1x, 2x, 4x, 8x of it (He et al.'s CIFAR nets 1x, 2x, 4x).
   * @default 64 (the article), or the architecture's own width when `arch` is given without
   *   one (16 for `resnet20`)
   */
  width: number;
  /** Train on a class-balanced subset of this many images; null = all 50,000. @default null */
  trainLimit: number | null;
  /** Evaluate on a class-balanced subset of this many images; null = all 10,000. @default null */
  testLimit: number | null;
  /** Seeds the weights, the subset, the shuffling and the augmentation. @default 0 */
  seed: number;
  /** TensorFlow.js backend. @default "auto" */
  backend: BackendName;
  /**
   * How the learning rate moves over the run: `constant` (the article), or
   * `onecycle`, PyTorch's `OneCycleLR` with its defaults, peaking at
   * `learningRate` (see {@linkcode learningRateAt}).
   * @default "constant"
   */
  lrSchedule: LrSchedule;
  /**
   * Training targets are `(1 - s) * onehot + s / 10`; 0 is plain cross-entropy (the article).
   * Test loss is always plain cross-entropy.
   * @default 0
   */
  labelSmoothing: number;
  /**
   * Score each test image as the mean of the logits for it and for its mirror
   * image (test-time augmentation with the flip the training already uses).
   * It costs a second forward pass per evaluation; training is unchanged.
   * @default false (the article)
   */
  testTimeFlip: boolean;
  /**
   * Training crops are random 32x32 windows of the image zero-padded by this
   * many pixels on each side (so shifts of up to this many pixels); 0 leaves
   * only the flip.
   * @default 4 (the article's RandomCrop(32, padding=4))
   */
  cropPadding: number;
}

/**
 * The widest stem {@linkcode makeConfig} accepts: 16x the article's 64, so 256x its 11.2
 * million weights (2.9 billion, 11 GB as float32, 34 GB with Adam's two moments). No machine
 * this project runs on can hold more, and a wider network would fail only when it is built,
 * after the data has loaded.
 */
export const MAX_WIDTH = 1024;

/**
 * The largest seed {@linkcode makeConfig} accepts, 2^32 - 1: the range NumPy's and PyTorch's
 * seeds share, and small enough that every seed derived from it (`seed * 1000 + layer` for the
 * weights, `seed + 1` for the test subset) is still an exact integer. Past 2^53 a number cannot
 * even hold every integer, so `--seed 1e20` would silently be another seed.
 */
export const MAX_SEED = 2 ** 32 - 1;

/** Learning-rate schedules {@linkcode TrainConfig.lrSchedule} accepts. */
export type LrSchedule = "constant" | "onecycle";

/** Every {@linkcode LrSchedule}. */
export const LR_SCHEDULES: readonly LrSchedule[] = ["constant", "onecycle"];

/** The article's settings: ResNet-18, Adam(lr=0.001), batch 64, 10 epochs. */
export const DEFAULT_CONFIG: Readonly<TrainConfig> = Object.freeze({
  epochs: 10,
  batchSize: 64,
  learningRate: 0.001,
  arch: "resnet18",
  width: 64,
  trainLimit: null,
  testLimit: null,
  seed: 0,
  backend: "auto",
  lrSchedule: "constant",
  labelSmoothing: 0,
  testTimeFlip: false,
  cropPadding: 4,
});

/** Names {@linkcode PRESETS} accepts. */
export type PresetName = "article" | "fast";

/** Every {@linkcode PresetName}. */
export const PRESET_NAMES: readonly PresetName[] = ["article", "fast"];

/**
 * Named starting points; flags given with a preset override its values.
 *
 * - `article`: {@linkcode DEFAULT_CONFIG}.
 * - `fast`: accuracy per minute on a CPU. A quarter-width ResNet-18 (16/32/64/128
 *   channels, 16x fewer multiply-adds) at batch 128, for 9 epochs under a
 *   one-cycle schedule peaking at 4x the article's rate, with label smoothing
 *   0.1, training crops shifted by at most 2 pixels (the article: 4), and each
 *   test image scored together with its mirror image. Measured 2026-12-02 (seed
 *   0, the native backend with oneDNN on a 2-vCPU AVX-512 AMD EPYC, 521-624
 *   img/s): 84.6 % test accuracy after 9 epochs in 14 min 33 s of wall time
 *   (84.5 % with `--epochs 8` in 12 min 41 s; the README's results table). With
 *   5 epochs, before oneDNN, it reached 81.9 %, and 80.2 % with the article's
 *   crop padding of 4: this small network underfits in a few epochs, and smaller
 *   shifts leave more of each image to learn from.
 */
export const PRESETS: Readonly<Record<PresetName, Readonly<Partial<TrainConfig>>>> = Object
  .freeze({
    article: Object.freeze({}),
    fast: Object.freeze({
      width: 16,
      batchSize: 128,
      epochs: 9,
      learningRate: 0.004,
      lrSchedule: "onecycle",
      labelSmoothing: 0.1,
      testTimeFlip: true,
      cropPadding: 2,
    }),
  });

/** Fraction of the run spent warming up in the one-cycle schedule (PyTorch's `pct_start`). */
export const ONE_CYCLE_WARMUP_FRACTION = 0.3;
/** The one-cycle schedule starts at peak / this (PyTorch's `div_factor`). */
export const ONE_CYCLE_START_DIVISOR = 25;
/** ...and ends at its start / this (PyTorch's `final_div_factor`). */
export const ONE_CYCLE_END_DIVISOR = 1e4;

/**
 * The learning rate for optimiser step `step` (0-based) of `totalSteps`.
 *
 * `constant`: `learningRate` throughout. `onecycle`: cosine from
 * `learningRate / 25` up to `learningRate` over the first 30% of the steps, then
 * cosine down to `learningRate / 25 / 1e4` at the last step, as PyTorch's
 * `OneCycleLR(max_lr=learningRate, total_steps=totalSteps)`.
 *
 * @param config The schedule and its peak rate.
 * @param step Steps taken so far; steps past the end get the final rate.
 * @param totalSteps Steps in the whole run.
 * @returns The rate for this step.
 *
 * @example
 * ```ts
 * import { learningRateAt } from "./config.ts";
 * const config = { learningRate: 0.004, lrSchedule: "onecycle" } as const;
 * console.log(learningRateAt(config, 0, 100)); // 0.00016
 * console.log(learningRateAt(config, 29, 100)); // 0.004 (the peak)
 * ```
 */
export function learningRateAt(
  config: Pick<TrainConfig, "learningRate" | "lrSchedule">,
  step: number,
  totalSteps: number,
): number {
  if (config.lrSchedule === "constant") return config.learningRate;
  const peak = config.learningRate;
  const start = peak / ONE_CYCLE_START_DIVISOR;
  const end = start / ONE_CYCLE_END_DIVISOR;
  // As PyTorch: the peak is at step pct_start * total - 1, the end at step total - 1.
  const peakStep = ONE_CYCLE_WARMUP_FRACTION * totalSteps - 1;
  const lastStep = totalSteps - 1;
  const cosine = (from: number, to: number, fraction: number) =>
    to + (from - to) * (1 + Math.cos(Math.PI * Math.min(Math.max(fraction, 0), 1))) / 2;
  if (step <= peakStep) return cosine(start, peak, peakStep <= 0 ? 1 : step / peakStep);
  return cosine(peak, end, (step - peakStep) / Math.max(lastStep - peakStep, 1));
}

/**
 * A {@linkcode TrainConfig} field with a value {@linkcode makeConfig} refuses. `field` names it,
 * so a caller can point at its own name for the field (the command line names the flag); the
 * message says what was expected and what was found.
 */
export class ConfigError extends RangeError {
  constructor(readonly field: keyof TrainConfig, message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/**
 * Fills in defaults and checks every field, naming the first one that is wrong.
 *
 * @param partial Fields to override.
 * @returns A complete, validated config.
 * @throws {ConfigError} e.g. `Expected epochs to be an integer >= 1 but found 0`, with `field`
 *   `"epochs"`.
 *
 * @example
 * ```ts
 * import { makeConfig } from "./config.ts";
 * console.log(makeConfig({ width: 16 }).batchSize); // 64
 * console.log(makeConfig({ arch: "resnet20" }).width); // 16: He et al.'s width
 * ```
 */
export function makeConfig(partial: Partial<TrainConfig> = {}): TrainConfig {
  const arch = partial.arch ?? DEFAULT_CONFIG.arch;
  let defaultWidth: number;
  try {
    defaultWidth = architecture(arch).defaultWidth;
  } catch (error) {
    throw new ConfigError("arch", (error as Error).message);
  }
  const config: TrainConfig = {
    ...DEFAULT_CONFIG,
    ...partial,
    width: partial.width ?? defaultWidth,
  };
  const check = (field: keyof TrainConfig, valid: boolean, expected: string, why = "") => {
    if (!valid) {
      throw new ConfigError(
        field,
        `Expected ${field} to be ${expected} but found ${config[field]}${why && ` (${why})`}`,
      );
    }
  };
  const integerIn = (value: unknown, min: number, max = Infinity) =>
    Number.isInteger(value) && (value as number) >= min && (value as number) <= max;
  check("epochs", integerIn(config.epochs, 1), "an integer >= 1");
  check("batchSize", integerIn(config.batchSize, 1), "an integer >= 1");
  check(
    "width",
    integerIn(config.width, 1, MAX_WIDTH),
    `an integer in 1..${MAX_WIDTH}`,
    `${MAX_WIDTH} is 16x the article's width: 2.9 billion weights, 34 GB with Adam's state`,
  );
  check(
    "trainLimit",
    config.trainLimit === null || integerIn(config.trainLimit, 1),
    "an integer >= 1",
  );
  check(
    "testLimit",
    config.testLimit === null || integerIn(config.testLimit, 1),
    "an integer >= 1",
  );
  check(
    "seed",
    integerIn(config.seed, 0, MAX_SEED),
    `an integer in 0..${MAX_SEED}`,
    "2^32 - 1, as NumPy and PyTorch seeds",
  );
  check(
    "learningRate",
    Number.isFinite(config.learningRate) && config.learningRate > 0,
    "a number > 0",
  );
  check(
    "lrSchedule",
    (LR_SCHEDULES as readonly string[]).includes(config.lrSchedule),
    `one of ${LR_SCHEDULES.join(", ")}`,
  );
  check(
    "labelSmoothing",
    config.labelSmoothing >= 0 && config.labelSmoothing < 1,
    "a number in [0, 1)",
  );
  check(
    "cropPadding",
    integerIn(config.cropPadding, 0, MAX_CROP_PADDING),
    `an integer in 0..${MAX_CROP_PADDING}`,
  );
  check("testTimeFlip", typeof config.testTimeFlip === "boolean", "true or false");
  check(
    "backend",
    (BACKEND_NAMES as readonly string[]).includes(config.backend),
    `one of ${BACKEND_NAMES.join(", ")}`,
  );
  return config;
}
