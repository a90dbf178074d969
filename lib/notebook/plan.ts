/**
 * The run plan: what the notebook trains on this machine ({@linkcode chooseNotebookPlan}), and
 * for how many epochs, sized just before training from the speed measured then
 * ({@linkcode measureSpeed}, {@linkcode epochsForBudget}, {@linkcode fitEpochs}) so that the
 * whole notebook takes at most {@linkcode NOTEBOOK_BUDGET_SECONDS}; that plan next to the
 * article's settings ({@linkcode configRows}); where the data comes from
 * ({@linkcode findCifar10Source}); and printed lines without this machine's paths
 * ({@linkcode withoutMachinePaths}).
 *
 * @module
 */
import { basename, isAbsolute, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs";
import type { BackendInfo } from "../backends/init.ts";
import { IMAGE_BYTES, type LoadOptions, NUM_CLASSES } from "../data.ts";
import { CIFAR10_FOLDER } from "../io/download.ts";
import { resnet18 } from "../model.ts";
import { formatDuration } from "../report/progress.ts";
import { createOptimizer, inferBatches, trainStep } from "../train.ts";
import { DEFAULT_CONFIG, makeConfig, PRESETS, type TrainConfig } from "../train/config.ts";
import { log } from "./display.ts";

/**
 * Seconds the whole notebook may take on a CPU, from its first code cell to its last; the
 * training gets what the other cells leave of it.
 */
export const NOTEBOOK_BUDGET_SECONDS = 12 * 60;

/** Test images scored after each epoch for the learning curves; 三 (五) scores all 10,000. */
export const EPOCH_TEST_IMAGES = 2000;

/** The most epochs a plan trains: the article's 10. */
export const MAX_EPOCHS = DEFAULT_CONFIG.epochs;

/**
 * The share of the time left that training may be planned to fill: a speed measured over a few
 * steps is an estimate (the same steps vary by ±20 % on a shared virtual machine).
 */
export const BUDGET_SHARE = 0.92;

/** Seconds the cells after training need besides scoring the test set: figures, predictions. */
export const AFTER_TRAINING_SECONDS = 20;

/** Whole test sets the cells after training score: 三 (五)'s evaluation, the transform check. */
export const TEST_PASSES_AFTER_TRAINING = 2;

/** The training images of CIFAR-10. */
const TRAIN_IMAGES = 50_000;

/** The test images of CIFAR-10. */
const TEST_IMAGES = 10_000;

/** What the notebook runs: the training config and the sizes of the other steps. */
export interface NotebookPlan {
  /** The recipe; `epochs` is final unless {@linkcode NotebookPlan.fitEpochs} is true. */
  config: TrainConfig;
  /** Why this config, in words. */
  reason: string;
  /** Test images of the final evaluation; null = all 10,000. */
  finalTestLimit: number | null;
  /** Images in the example batches (normalisation check, residual demonstration). */
  demoImages: number;
  /** Whether {@linkcode fitEpochs} sizes `config.epochs` from the speed measured before training. */
  fitEpochs: boolean;
}

/** Options of {@linkcode chooseNotebookPlan}. */
export interface PlanOptions {
  /** The smallest run that exercises every step, for tests; wins over the others. */
  smoke: boolean;
  /** The article's settings on any backend. @default false */
  articleSettings?: boolean;
}

/**
 * Chooses what the notebook trains: on a CPU backend (`native`, `wasm`) the trainer's `fast`
 * preset ({@linkcode PRESETS}) on all 50,000 training images, its epochs fitted to the time
 * budget just before training ({@linkcode fitEpochs}); the article's exact settings on a
 * hardware WebGPU backend or when `articleSettings` is set; a token run on the (very slow) `cpu`
 * backend; a tiny run for `smoke`.
 *
 * @param backend The backend `initBackend()` started.
 * @param options See {@linkcode PlanOptions}.
 * @returns The plan, with its reason in words.
 *
 * @example
 * ```ts
 * import { chooseNotebookPlan } from "./plan.ts";
 * const plan = chooseNotebookPlan({ name: "native", detail: "" }, { smoke: false });
 * console.log(plan.config.width, plan.config.trainLimit, plan.fitEpochs); // 16 null true
 * ```
 */
export function chooseNotebookPlan(
  backend: Pick<BackendInfo, "name" | "detail">,
  options: PlanOptions,
): NotebookPlan {
  const plan = (
    config: Partial<TrainConfig>,
    reason: string,
    finalTestLimit: number | null,
    fitEpochs = false,
  ): NotebookPlan => ({
    config: makeConfig({ ...config, backend: backend.name }),
    reason,
    finalTestLimit,
    demoImages: options.smoke ? 16 : 64,
    fitEpochs,
  });
  if (options.smoke) {
    return plan(
      { ...PRESETS.fast, width: 4, trainLimit: 200, testLimit: 100, epochs: 1 },
      "RESNET_CIFAR_SMOKE=1: the fast recipe at the smallest size that goes through every cell " +
        "(a test)",
      100,
    );
  }
  if (options.articleSettings) {
    return plan({}, `articleSettings is true: the article's settings, on ${backend.name}`, null);
  }
  if (backend.name === "webgpu") {
    return plan(
      {},
      `a hardware GPU (${backend.detail}) can run the article's settings: ResNet-18 at width 64 ` +
        `on all 50,000 training images for 10 epochs`,
      null,
    );
  }
  if (backend.name === "cpu") {
    return plan(
      { width: 4, trainLimit: 200, testLimit: 200, epochs: 1 },
      "the cpu backend is the pure-JavaScript reference and trains at well under one image/s: " +
        "this is a token run; use native or wasm (the default) to learn anything",
      500,
    );
  }
  return plan(
    { ...PRESETS.fast, trainLimit: null, testLimit: EPOCH_TEST_IMAGES },
    `${backend.name} runs on the CPU, so the notebook trains the trainer's fast preset ` +
      `(accuracy per minute on a CPU) on all 50,000 training images, scoring ` +
      `${EPOCH_TEST_IMAGES.toLocaleString("en-US")} test images after each epoch for the ` +
      `curves and all 10,000 at the end; how many epochs fit in the notebook's ` +
      `${formatDuration(NOTEBOOK_BUDGET_SECONDS)} is measured in 三 (四), just before training`,
    null,
    true,
  );
}

/** Speeds of the active backend, as {@linkcode measureSpeed} measures them. */
export interface Speed {
  /** Training images per second (forward, backward, Adam). */
  trainImagesPerSecond: number;
  /** Test images scored per second (inference, both passes with test-time flip). */
  testImagesPerSecond: number;
}

/**
 * Times a few training steps of ResNet-18 (forward, backward, Adam) and a few inference batches
 * on random images with the active backend, each after one untimed warm-up (which packs the
 * weights and compiles kernels).
 *
 * @param config Width, batch size, learning rate and test-time flip of the run.
 * @param steps Timed training steps; inference times as many batches of the same size.
 *   @default 4
 * @returns The speeds measured.
 */
export async function measureSpeed(
  config: Pick<TrainConfig, "width" | "batchSize" | "learningRate" | "testTimeFlip">,
  steps = 4,
): Promise<Speed> {
  const model = resnet18({ width: config.width });
  const optimizer = createOptimizer(config);
  const x = tf.randomNormal([config.batchSize, 32, 32, 3]) as tf.Tensor4D;
  const y = tf.randomUniform([config.batchSize], 0, NUM_CLASSES, "int32") as tf.Tensor1D;
  const testImages = 2 * steps * config.batchSize;
  const split = {
    images: new Uint8Array(testImages * IMAGE_BYTES).map((_, i) => (i * 37) % 256),
    labels: new Uint8Array(testImages),
    count: testImages,
  };
  const score = async (count: number) => {
    const part = { ...split, count, images: split.images.subarray(0, count * IMAGE_BYTES) };
    const options = { batchSize: 2 * config.batchSize, flip: config.testTimeFlip };
    for await (const _ of inferBatches(model, part, options)) { /* ready when yielded */ }
  };
  try {
    await trainStep(model, optimizer, x, y);
    let start = performance.now();
    for (let i = 0; i < steps; i++) await trainStep(model, optimizer, x, y);
    const trainImagesPerSecond = (steps * config.batchSize) / ((performance.now() - start) / 1000);
    await score(2 * config.batchSize);
    start = performance.now();
    await score(testImages);
    const testImagesPerSecond = testImages / ((performance.now() - start) / 1000);
    return { trainImagesPerSecond, testImagesPerSecond };
  } finally {
    tf.dispose([x, y]);
    optimizer.dispose();
    model.dispose();
  }
}

/**
 * The largest class-balanced training subset (a multiple of 500, from 1,000 to all 50,000
 * images) that trains for `epochs` epochs within `budgetSeconds` at `imagesPerSecond`.
 *
 * @example
 * ```ts
 * import { trainLimitForBudget } from "./plan.ts";
 * console.log(trainLimitForBudget(80, 300, 4)); // 6000
 * ```
 */
export function trainLimitForBudget(
  imagesPerSecond: number,
  budgetSeconds: number,
  epochs: number,
): number {
  const images = Math.floor((imagesPerSecond * budgetSeconds) / epochs / 500) * 500;
  return Math.min(TRAIN_IMAGES, Math.max(1000, images));
}

/** What {@linkcode epochsForBudget} decided. */
export interface EpochBudget {
  epochs: number;
  /** Training images per epoch: all 50,000 unless not even one epoch of them fits. */
  trainImages: number;
  /** The training's estimated duration, the evaluations after each epoch included. */
  trainingSeconds: number;
  /** The estimated duration of the cells after training. */
  afterTrainingSeconds: number;
}

/**
 * How many epochs of all 50,000 training images fit in `secondsLeft`, once the cells after
 * training have their share: {@linkcode BUDGET_SHARE} of the rest, divided by one epoch's
 * training plus its evaluation on {@linkcode EPOCH_TEST_IMAGES} images, between 1 and
 * {@linkcode MAX_EPOCHS}. If not even one epoch fits, one epoch of the class-balanced subset
 * that does ({@linkcode trainLimitForBudget}).
 *
 * @param secondsLeft What the notebook's budget has left.
 * @param speed The speeds measured by {@linkcode measureSpeed}.
 * @returns The epochs, the images per epoch and the time estimates.
 *
 * @example
 * ```ts
 * import { epochsForBudget } from "./plan.ts";
 * const speed = { trainImagesPerSecond: 400, testImagesPerSecond: 800 };
 * console.log(epochsForBudget(660, speed).epochs); // 4
 * ```
 */
export function epochsForBudget(secondsLeft: number, speed: Speed): EpochBudget {
  const afterTrainingSeconds = AFTER_TRAINING_SECONDS +
    (TEST_PASSES_AFTER_TRAINING * TEST_IMAGES) / speed.testImagesPerSecond;
  const available = BUDGET_SHARE * (secondsLeft - afterTrainingSeconds);
  const evaluationSeconds = EPOCH_TEST_IMAGES / speed.testImagesPerSecond;
  const epochSeconds = TRAIN_IMAGES / speed.trainImagesPerSecond + evaluationSeconds;
  const fitting = Math.floor(available / epochSeconds);
  const epochs = Math.min(MAX_EPOCHS, Math.max(1, fitting));
  const trainImages = fitting >= 1 ? TRAIN_IMAGES : trainLimitForBudget(
    speed.trainImagesPerSecond,
    available - evaluationSeconds,
    1,
  );
  const trainingSeconds = epochs *
    (trainImages / speed.trainImagesPerSecond + evaluationSeconds);
  return { epochs, trainImages, trainingSeconds, afterTrainingSeconds };
}

/** What {@linkcode fitEpochs} decided: the config to train, and why. */
export interface EpochFit {
  config: TrainConfig;
  reason: string;
}

/**
 * Sizes the plan's epochs to what is left of {@linkcode NOTEBOOK_BUDGET_SECONDS}, at the speed
 * measured now ({@linkcode epochsForBudget}); a plan whose epochs are fixed is returned as it
 * is. The one-cycle schedule needs the run's length before the first step, so the epochs are
 * decided here, not while training.
 *
 * @param plan From {@linkcode chooseNotebookPlan}.
 * @param options `elapsedSeconds`: the notebook's time so far; `budgetSeconds`: its budget
 *   (@default NOTEBOOK_BUDGET_SECONDS); `measure`: the speed measurement
 *   (@default measureSpeed).
 * @returns The config to train and the reason in words.
 *
 * @example
 * ```ts
 * import { chooseNotebookPlan, fitEpochs } from "./plan.ts";
 * const plan = chooseNotebookPlan({ name: "native", detail: "" }, { smoke: false });
 * const measure = () => Promise.resolve({ trainImagesPerSecond: 400, testImagesPerSecond: 800 });
 * const fit = await fitEpochs(plan, { elapsedSeconds: 60, measure });
 * console.log(fit.config.epochs); // 4
 * ```
 */
export async function fitEpochs(
  plan: NotebookPlan,
  options: {
    elapsedSeconds: number;
    budgetSeconds?: number;
    measure?: (config: TrainConfig) => Promise<Speed>;
  },
): Promise<EpochFit> {
  if (!plan.fitEpochs) {
    return { config: plan.config, reason: `the plan fixes it (${plan.reason})` };
  }
  const { elapsedSeconds, budgetSeconds = NOTEBOOK_BUDGET_SECONDS } = options;
  const speed = await (options.measure ?? measureSpeed)(plan.config);
  const secondsLeft = budgetSeconds - elapsedSeconds;
  const fit = epochsForBudget(secondsLeft, speed);
  const subset = fit.trainImages < TRAIN_IMAGES;
  const images = fit.trainImages.toLocaleString("en-US");
  const reason = `${plan.config.backend} trains this network at ` +
    `${speed.trainImagesPerSecond.toFixed(0)} images/s and scores ` +
    `${speed.testImagesPerSecond.toFixed(0)} test images/s (measured just now); ` +
    `${formatDuration(elapsedSeconds)} of the ${formatDuration(budgetSeconds)} budget are spent ` +
    `and the cells after training need about ${formatDuration(fit.afterTrainingSeconds)}, so ` +
    `${fit.epochs} epoch(s) of ${images} images take about ` +
    `${formatDuration(fit.trainingSeconds)} with an evaluation after each` +
    (subset ? " (not even one epoch of all 50,000 images fits: a class-balanced subset)" : "");
  return {
    config: makeConfig({
      ...plan.config,
      epochs: fit.epochs,
      trainLimit: subset ? fit.trainImages : plan.config.trainLimit,
    }),
    reason,
  };
}

/**
 * Rows for `htmlTable()`: each setting of `config` next to the article's
 * ({@linkcode DEFAULT_CONFIG}).
 *
 * @param config The run's settings.
 * @param notes Text shown instead of a value, e.g. for epochs decided later. @default none
 *
 * @example
 * ```ts
 * import { makeConfig } from "../train/config.ts";
 * import { configRows } from "./plan.ts";
 * console.log(configRows(makeConfig({ epochs: 2 }))[1]); // ["epochs", "2", "10"]
 * ```
 */
export function configRows(
  config: TrainConfig,
  notes: Partial<Record<keyof TrainConfig, string>> = {},
): string[][] {
  const keys = Object.keys(DEFAULT_CONFIG) as (keyof TrainConfig)[];
  return [
    ["setting", "this run", "the article"],
    ...keys.map((key) => [
      key,
      notes[key] ?? String(config[key] ?? "all"),
      String(DEFAULT_CONFIG[key] ?? "all"),
    ]),
  ];
}

/** Where `loadCifar10()` finds the data, and what the notebook should say about it. */
export interface DataSource {
  options: LoadOptions;
  description: string;
}

/** The environment variable that points the notebook at a CIFAR-10 copy (folder or `.tar.gz`). */
export const CIFAR10_DATA_VARIABLE = "CIFAR10_DATA";

/** The repository's root folder, with a trailing separator. */
const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** The repository's `data/` folder, where `deno task train` downloads to as well. */
const DATA_ROOT = join(REPO_ROOT, "data");

/**
 * Where the notebook loads CIFAR-10 from, as on any machine: `$CIFAR10_DATA` (a folder or a
 * `.tar.gz` archive) if it is set; else the repository's `data/` folder, which holds the cache
 * of an earlier download (shared with `deno task train`) or receives the official download.
 *
 * @param fromEnv The variable's value. @default `$CIFAR10_DATA`
 * @returns `loadCifar10()`'s options and a description without this machine's paths.
 */
export function findCifar10Source(
  fromEnv: string | undefined = Deno.env.get(CIFAR10_DATA_VARIABLE),
): DataSource {
  const root = DATA_ROOT;
  if (fromEnv !== undefined && fromEnv !== "") {
    return {
      options: { source: fromEnv, root },
      description: `$${CIFAR10_DATA_VARIABLE} (${basename(fromEnv)})`,
    };
  }
  let cached = false;
  try {
    cached = Deno.statSync(join(root, CIFAR10_FOLDER)).isDirectory;
  } catch {
    // No cache yet: the download makes it.
  }
  return {
    options: { root },
    description: cached
      ? `the cache in data/${CIFAR10_FOLDER} (an earlier download)`
      : "the official archive, downloaded once into data/ (about 163 MB; later runs use the cache)",
  };
}

/**
 * A printed line without this machine's paths: the repository's folder is dropped (paths are
 * shown relative to it) and `$CIFAR10_DATA`'s value is shown as the variable's name, so
 * outputs read the same on every machine.
 *
 * @param text The line.
 * @param dataPath `$CIFAR10_DATA`'s value. @default the variable
 * @returns The line with those paths replaced.
 *
 * @example
 * ```ts
 * import { withoutMachinePaths } from "./plan.ts";
 * const root = new URL("../../", import.meta.url).pathname;
 * console.log(withoutMachinePaths(`Using ${root}data/x`, "/mnt/c.tar.gz")); // Using data/x
 * ```
 */
export function withoutMachinePaths(
  text: string,
  dataPath: string | undefined = Deno.env.get(CIFAR10_DATA_VARIABLE),
): string {
  let result = text;
  if (dataPath !== undefined && isAbsolute(dataPath)) {
    result = result.replaceAll(dataPath, `$${CIFAR10_DATA_VARIABLE}`);
  }
  return result.replaceAll(new URL("../../", import.meta.url).href, "").replaceAll(REPO_ROOT, "");
}

/** `log()` of `display.ts` with {@linkcode withoutMachinePaths} applied to the line. */
export function logWithoutPaths(line: string): Promise<void> {
  return log(withoutMachinePaths(line));
}
