/**
 * The run plan: what the notebook trains on this machine so that a laptop gets through it in
 * about ten minutes ({@linkcode chooseNotebookPlan}, sized by {@linkcode measureTrainingSpeed}
 * and {@linkcode trainLimitForBudget}), that plan next to the article's settings
 * ({@linkcode configRows}), and where the data comes from ({@linkcode findCifar10Source}).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { BackendInfo } from "../backends/init.ts";
import { type LoadOptions, NUM_CLASSES } from "../data.ts";
import { resnet18 } from "../model.ts";
import { formatDuration } from "../report/progress.ts";
import { createOptimizer, trainStep } from "../train.ts";
import { DEFAULT_CONFIG, makeConfig, type TrainConfig } from "../train/config.ts";

/** What the notebook runs: the training config and the sizes of the other steps. */
export interface NotebookPlan {
  config: TrainConfig;
  /** Why this config: the backend, the speed measured and the time it should take. */
  reason: string;
  /** Images of the test set for the final evaluation; null = all 10,000. */
  finalTestLimit: number | null;
  /** Images in the batch of the residual-learning demonstration. */
  demoImages: number;
}

/** Seconds of training the notebook aims for on a CPU, so that all of it takes about ten minutes. */
export const CPU_TRAINING_BUDGET_SECONDS = 240;

/** Stem width trained on a CPU: 1/8 of the article's channels, about 1/60 of its work per image. */
export const CPU_WIDTH = 8;

/** Epochs trained on a CPU: enough for learning curves. */
export const CPU_EPOCHS = 4;

/** Test images evaluated after each epoch on a CPU (the final evaluation uses all 10,000). */
export const CPU_EPOCH_TEST_IMAGES = 2000;

/**
 * Times a few training steps of ResNet-18 (forward, backward, Adam) on random images with the
 * active backend, after one untimed step (which packs weights and compiles kernels).
 *
 * @param config Width, batch size and learning rate of the steps.
 * @param steps Timed steps. @default 3
 * @returns Training images per second.
 */
export async function measureTrainingSpeed(
  config: Pick<TrainConfig, "width" | "batchSize" | "learningRate">,
  steps = 3,
): Promise<number> {
  const model = resnet18({ width: config.width });
  const optimizer = createOptimizer(config);
  const x = tf.randomNormal([config.batchSize, 32, 32, 3]) as tf.Tensor4D;
  const y = tf.randomUniform([config.batchSize], 0, NUM_CLASSES, "int32") as tf.Tensor1D;
  try {
    await trainStep(model, optimizer, x, y);
    const start = performance.now();
    for (let i = 0; i < steps; i++) await trainStep(model, optimizer, x, y);
    return (steps * config.batchSize) / ((performance.now() - start) / 1000);
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
  return Math.min(50_000, Math.max(1000, images));
}

/** Options of {@linkcode chooseNotebookPlan}. */
export interface PlanOptions {
  /** The smallest run that exercises every step, for tests; wins over the others. */
  smoke: boolean;
  /** The article's settings on any backend. @default false */
  articleSettings?: boolean;
  /** Measures training speed at a width. @default measureTrainingSpeed */
  measure?: (config: Pick<TrainConfig, "width" | "batchSize" | "learningRate">) => Promise<number>;
}

/**
 * Chooses what the notebook trains, so that a laptop gets through the notebook in about ten
 * minutes: the article's exact settings on a hardware WebGPU backend; on wasm, ResNet-18 at
 * width 8 for 4 epochs on the class-balanced subset that fits
 * {@linkcode CPU_TRAINING_BUDGET_SECONDS} at the speed measured here; a token run on the
 * (very slow) cpu backend; a tiny run for `smoke`.
 *
 * @param backend The backend `initBackend()` started.
 * @param options See {@linkcode PlanOptions}.
 * @returns The plan, with its reason in words.
 *
 * @example
 * ```ts
 * import { chooseNotebookPlan } from "./plan.ts";
 * const plan = await chooseNotebookPlan({ name: "wasm", detail: "" }, {
 *   smoke: false,
 *   measure: () => Promise.resolve(80), // images/s
 * });
 * console.log(plan.config.width, plan.config.trainLimit, plan.config.epochs); // 8 4500 4
 * ```
 */
export async function chooseNotebookPlan(
  backend: Pick<BackendInfo, "name" | "detail">,
  options: PlanOptions,
): Promise<NotebookPlan> {
  const plan = (config: Partial<TrainConfig>, reason: string, finalTestLimit: number | null) => ({
    config: makeConfig({ ...config, backend: backend.name }),
    reason,
    finalTestLimit,
    demoImages: options.smoke ? 16 : 64,
  });
  if (options.smoke) {
    return plan(
      { width: 4, trainLimit: 200, testLimit: 100, epochs: 1 },
      "RESNET_CIFAR_SMOKE=1: the smallest run that goes through every cell (a test)",
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
        "this is a token run; use wasm (the default) to learn anything",
      500,
    );
  }
  const base = { width: CPU_WIDTH, epochs: CPU_EPOCHS, testLimit: CPU_EPOCH_TEST_IMAGES };
  const imagesPerSecond = await (options.measure ?? measureTrainingSpeed)(makeConfig(base));
  const trainLimit = trainLimitForBudget(imagesPerSecond, CPU_TRAINING_BUDGET_SECONDS, CPU_EPOCHS);
  return plan(
    { ...base, trainLimit },
    `on ${backend.name} ResNet-18 at width ${CPU_WIDTH} trains at ${imagesPerSecond.toFixed(0)} ` +
      `images/s here (just measured), so ${CPU_EPOCHS} epochs of ` +
      `${trainLimit.toLocaleString("en-US")} images take about ` +
      `${formatDuration((CPU_EPOCHS * trainLimit) / imagesPerSecond)} ` +
      `(the budget is ${formatDuration(CPU_TRAINING_BUDGET_SECONDS)}); the article's settings ` +
      `(width 64, about 60 times the work per image, on 50,000 images for 10 epochs) ` +
      `would take roughly ${formatDuration((60 * 10 * 50_000) / imagesPerSecond)}, if time grows ` +
      `with the arithmetic`,
    null,
  );
}

/**
 * Rows for `htmlTable()`: each setting of `config` next to the article's ({@linkcode DEFAULT_CONFIG}).
 *
 * @example
 * ```ts
 * import { makeConfig } from "../train/config.ts";
 * import { configRows } from "./plan.ts";
 * console.log(configRows(makeConfig({ epochs: 2 }))[1]); // ["epochs", "2", "10"]
 * ```
 */
export function configRows(config: TrainConfig): string[][] {
  const keys = Object.keys(DEFAULT_CONFIG) as (keyof TrainConfig)[];
  return [
    ["setting", "this run", "the article"],
    ...keys.map((key) => [key, String(config[key] ?? "all"), String(DEFAULT_CONFIG[key] ?? "all")]),
  ];
}

/** Where `loadCifar10()` finds the data, and what the notebook should say about it. */
export interface DataSource {
  options: LoadOptions;
  description: string;
}

/** This project's shared copy of the archive, next to the repository (used only if present). */
const SHARED_ARCHIVE = new URL("../../../shared/data/cifar-10-binary.tar.gz", import.meta.url);

/** The repository's `data/` folder, where `deno task train` downloads to as well. */
const DATA_ROOT = new URL("../../data", import.meta.url);

/**
 * Where the notebook loads CIFAR-10 from: `$CIFAR10_DATA` (a folder or `.tar.gz`) if set, else
 * a shared copy of the archive beside the repository if there is one, else the official
 * download, cached in the repository's `data/` folder (shared with `deno task train`).
 */
export function findCifar10Source(): DataSource {
  const root = decodeURIComponent(DATA_ROOT.pathname);
  const fromEnv = Deno.env.get("CIFAR10_DATA");
  if (fromEnv !== undefined && fromEnv !== "") {
    return { options: { source: fromEnv, root }, description: `$CIFAR10_DATA = ${fromEnv}` };
  }
  const shared = decodeURIComponent(SHARED_ARCHIVE.pathname);
  try {
    if (Deno.statSync(shared).isFile) {
      return { options: { source: shared, root }, description: `the shared archive ${shared}` };
    }
  } catch {
    // Not there: download.
  }
  return { options: { root }, description: `the official archive, downloaded once into ${root}` };
}
