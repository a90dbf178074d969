/**
 * Training and evaluation as in the article: Adam, cross-entropy, one pass over the
 * augmented training set per epoch, then the un-augmented test set; plus what a real run
 * needs: checkpoints every epoch, resume, a stop on a non-finite loss (training or test), and
 * progress callbacks.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { CheckpointState, EpochRecord } from "./train/checkpoint.ts";
import { learningRateAt, type TrainConfig } from "./train/config.ts";
import { epochBatches, limitSplit, NUM_CLASSES, type Split } from "./data.ts";
import { architecture, buildModel } from "./model.ts";
import {
  openRunFolder,
  resumeFromRunFolder,
  saveEpoch,
  saveFinalModel,
  saveHistory,
  startRunFolder,
} from "./train/run_folder.ts";
import { Rng } from "./train/rng.ts";

export type { EpochRecord } from "./train/checkpoint.ts";

/** Progress after one training batch, for a progress bar or a live notebook display. */
export interface BatchProgress {
  epoch: number;
  epochs: number;
  /** 1-based batch index within the epoch. */
  batch: number;
  batches: number;
  /** Mean training loss over the epoch so far. */
  loss: number;
  /** Training throughput of this epoch so far. */
  imagesPerSecond: number;
  /** Estimated seconds until the whole run ends, evaluations included. */
  etaSeconds: number;
}

/** Hooks called during {@linkcode train}; they may be async (a notebook redrawing a display). */
export interface TrainCallbacks {
  /**
   * Before the first epoch, with the history so far: the checkpoint's for a resumed run (to
   * redraw figures a run killed at the wrong moment left stale), else empty; and the model,
   * holding the checkpoint's weights (to measure what a killed run did not get to).
   */
  onStart?: (history: readonly EpochRecord[], model: tf.LayersModel) => void | Promise<void>;
  onBatchEnd?: (progress: BatchProgress) => void | Promise<void>;
  /**
   * After each epoch's checkpoint: its record, its evaluation, the run's history so far, and
   * the model (to evaluate more than the test set; training goes on with it, so it must be left
   * as it is).
   */
  onEpochEnd?: (
    record: EpochRecord,
    evaluation: Evaluation,
    history: readonly EpochRecord[],
    model: tf.LayersModel,
  ) => void | Promise<void>;
}

/** Test-set results: loss, accuracy, the confusion matrix and accuracy per class. */
export interface Evaluation {
  loss: number;
  accuracy: number;
  /** `confusion[trueClass][predictedClass]` = count. */
  confusion: number[][];
  perClassAccuracy: number[];
  count: number;
}

/**
 * Thrown when the training loss of a batch, or the test loss after an epoch, becomes NaN or
 * infinite; the run's last checkpoint stays as it was.
 */
export class NonFiniteLossError extends Error {
  /** @param batch The training batch; `null` for the test loss of the epoch's evaluation. */
  constructor(readonly epoch: number, readonly batch: number | null, readonly loss: number) {
    super(
      batch === null
        ? `Test loss became ${loss} at epoch ${epoch}; training stopped`
        : `Loss became ${loss} at epoch ${epoch}, batch ${batch}; training stopped`,
    );
    this.name = "NonFiniteLossError";
  }
}

/** The article's optimiser: Adam with PyTorch's defaults (betas 0.9/0.999, eps 1e-8). */
export function createOptimizer(
  config: Pick<TrainConfig, "learningRate"> & Partial<Pick<TrainConfig, "lrSchedule">>,
  totalSteps = Infinity,
): tf.AdamOptimizer {
  return new ScheduledAdam(
    { learningRate: config.learningRate, lrSchedule: config.lrSchedule ?? "constant" },
    totalSteps,
  );
}

/**
 * Adam whose rate follows {@linkcode learningRateAt}, keyed on the optimiser's
 * own step count, which checkpoints save and restore (so a resumed run picks
 * up the schedule where it stopped).
 */
class ScheduledAdam extends tf.AdamOptimizer {
  constructor(
    readonly schedule: Pick<TrainConfig, "learningRate" | "lrSchedule">,
    readonly totalSteps: number,
  ) {
    // TensorFlow.js defaults epsilon to 1e-7; PyTorch to 1e-8.
    super(learningRateAt(schedule, 0, totalSteps), 0.9, 0.999, 1e-8);
  }

  override applyGradients(gradients: Parameters<tf.AdamOptimizer["applyGradients"]>[0]): void {
    this.learningRate = learningRateAt(this.schedule, this.iterations, this.totalSteps);
    super.applyGradients(gradients);
  }
}

/**
 * Mean softmax cross-entropy of `logits` ([batch, classes]) against integer `labels` ([batch]),
 * PyTorch's `nn.CrossEntropyLoss(label_smoothing=labelSmoothing)`.
 */
export function crossEntropy(
  logits: tf.Tensor2D,
  labels: tf.Tensor1D,
  labelSmoothing = 0,
): tf.Scalar {
  return tf.tidy(() =>
    tf.losses.softmaxCrossEntropy(
      tf.oneHot(labels, logits.shape[1]),
      logits,
      undefined,
      labelSmoothing,
    ) as tf.Scalar
  );
}

/**
 * One optimiser step on one batch (BatchNorm in training mode, updating its running statistics).
 *
 * @returns The batch's mean loss and how many images it classified correctly.
 */
export async function trainStep(
  model: tf.LayersModel,
  optimizer: tf.Optimizer,
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  labelSmoothing = 0,
): Promise<{ loss: number; correct: number }> {
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  let correct: tf.Tensor | undefined;
  const loss = optimizer.minimize(
    () => {
      const logits = model.apply(x, { training: true }) as tf.Tensor2D;
      correct = tf.keep(tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), y), "int32")));
      return crossEntropy(logits, y, labelSmoothing);
    },
    true,
    variables,
  )!;
  const [lossValue, correctValue] = await Promise.all([loss.data(), correct!.data()]);
  tf.dispose([loss, correct!]);
  return { loss: lossValue[0], correct: correctValue[0] };
}

/** What {@linkcode trainEpoch} measured. */
export interface EpochTraining {
  loss: number;
  accuracy: number;
  seconds: number;
  imagesPerSecond: number;
}

/**
 * One pass over the (augmented, reshuffled) training split.
 *
 * @param rng Draws the epoch's order and augmentation; advanced in place.
 * @param onBatch Called after every step with the batch index and the running figures.
 * @throws {NonFiniteLossError} as soon as a batch's loss is NaN or infinite.
 */
export async function trainEpoch(
  model: tf.LayersModel,
  optimizer: tf.Optimizer,
  split: Split,
  options: {
    batchSize: number;
    rng: Rng;
    epoch: number;
    /** See {@linkcode TrainConfig.labelSmoothing}. @default 0 */
    labelSmoothing?: number;
    /** See {@linkcode TrainConfig.cropPadding}. @default 4 */
    cropPadding?: number;
    onBatch?: (batch: number, batches: number, stats: EpochTraining) => void | Promise<void>;
  },
): Promise<EpochTraining> {
  const batches = Math.ceil(split.count / options.batchSize);
  const start = performance.now();
  let lossSum = 0, correct = 0, seen = 0, batch = 0;
  const stats = (): EpochTraining => {
    const seconds = (performance.now() - start) / 1000;
    return {
      loss: lossSum / Math.max(batch, 1),
      accuracy: correct / Math.max(seen, 1),
      seconds,
      imagesPerSecond: seen / Math.max(seconds, 1e-9),
    };
  };
  for (const { x, y, size } of epochBatches(split, { ...options, augment: true })) {
    batch++;
    let step;
    try {
      step = await trainStep(model, optimizer, x, y, options.labelSmoothing);
    } finally {
      tf.dispose([x, y]);
    }
    if (!Number.isFinite(step.loss)) throw new NonFiniteLossError(options.epoch, batch, step.loss);
    lossSum += step.loss;
    correct += step.correct;
    seen += size;
    await options.onBatch?.(batch, batches, stats());
  }
  return stats();
}

/** One batch of {@linkcode inferBatches}: valid only until the loop moves on. */
export interface InferenceBatch {
  /** `[size, classes]` logits; disposed when the loop takes the next batch. */
  logits: tf.Tensor2D;
  /** `[size]` int32 labels; disposed with the logits. */
  labels: tf.Tensor1D;
  /** Index in the split of this batch's first image. */
  start: number;
  size: number;
  /** Milliseconds from the forward pass's start until its logits were ready. */
  inferMs: number;
}

/**
 * Runs a split through the model in inference mode (BatchNorm on its moving statistics), in
 * order and without augmentation, one batch at a time. Every evaluation, prediction and
 * benchmark loop of the project is this loop.
 *
 * @param options.batchSize Images per forward pass. @default 500
 * @param options.flip Logits of each image averaged with its mirror image's (see
 *   {@linkcode TrainConfig.testTimeFlip}). @default false
 *
 * @example
 * ```ts
 * import { resnet18 } from "./model.ts";
 * import { inferBatches } from "./train.ts";
 * const model = resnet18({ width: 2 });
 * const split = { images: new Uint8Array(3 * 3072), labels: new Uint8Array(3), count: 3 };
 * const sizes = [];
 * for await (const { size } of inferBatches(model, split, { batchSize: 2 })) sizes.push(size);
 * if (sizes.join() !== "2,1") throw new Error("every image, in order");
 * model.dispose();
 * ```
 */
export async function* inferBatches(
  model: tf.LayersModel,
  split: Split,
  options: { batchSize?: number; flip?: boolean } = {},
): AsyncGenerator<InferenceBatch> {
  let start = 0;
  const batches = epochBatches(split, {
    batchSize: options.batchSize ?? 500,
    rng: null,
    augment: false,
  });
  for (const { x, y, size } of batches) {
    const began = performance.now();
    const logits = tf.tidy(() => {
      const logits = model.apply(x, { training: false }) as tf.Tensor2D;
      if (!options.flip) return logits;
      // Axis 2 of NHWC is the width: the mirror image, as the training flip makes it.
      const mirrored = model.apply(tf.reverse(x, 2), { training: false }) as tf.Tensor2D;
      return tf.div(tf.add(logits, mirrored), 2) as tf.Tensor2D;
    });
    try {
      await logits.data(); // ready; read again below at no cost
      yield { logits, labels: y, start, size, inferMs: performance.now() - began };
    } finally {
      tf.dispose([x, y, logits]);
    }
    start += size;
  }
}

/**
 * Evaluates on a split without augmentation, BatchNorm in inference mode.
 *
 * @param options.batchSize Images per forward pass. @default 500
 * @param options.flip Score each image by the mean of its logits and its
 *   mirror image's (see {@linkcode TrainConfig.testTimeFlip}). @default false
 */
export async function evaluate(
  model: tf.LayersModel,
  split: Split,
  options: { batchSize?: number; flip?: boolean } = {},
): Promise<Evaluation> {
  const confusion = Array.from(
    { length: NUM_CLASSES },
    () => new Array<number>(NUM_CLASSES).fill(0),
  );
  let lossSum = 0;
  for await (const { logits, labels: y, size } of inferBatches(model, split, options)) {
    const [loss, predicted] = tf.tidy(() => [
      tf.mul(crossEntropy(logits, y), size),
      tf.argMax(logits, 1),
    ]);
    const [lossValue, predictedValues, labels] = await Promise.all([
      loss.data(),
      predicted.data(),
      y.data(),
    ]);
    tf.dispose([loss, predicted]);
    lossSum += lossValue[0];
    for (let i = 0; i < size; i++) confusion[labels[i]][predictedValues[i]]++;
  }
  const correct = confusion.reduce((sum, row, c) => sum + row[c], 0);
  const perClassAccuracy = confusion.map((row, c) =>
    row[c] / Math.max(1, row.reduce((a, b) => a + b, 0))
  );
  return {
    loss: lossSum / split.count,
    accuracy: correct / split.count,
    confusion,
    perClassAccuracy,
    count: split.count,
  };
}

/** Inputs of {@linkcode train}. */
export interface TrainOptions {
  config: TrainConfig;
  /** The full splits; `config.trainLimit` / `testLimit` take class-balanced subsets of them. */
  data: { train: Split; test: Split };
  /**
   * Where to write config.json, history.json, the checkpoint and the final model; null = nowhere.
   * It must be empty or absent unless `resume` or `restart` says what to do with the run in it,
   * and it is locked while the run writes it (see `lib/train/run_folder.ts`).
   * @default null
   */
  runDir?: string | null;
  /** Continue from `runDir`'s checkpoint. @default false */
  resume?: boolean;
  /** Delete the run in `runDir` (its own files only) and start over. @default false */
  restart?: boolean;
  callbacks?: TrainCallbacks;
}

/** What {@linkcode train} returns; the caller owns (and disposes) the model. */
export interface TrainResult {
  model: tf.LayersModel;
  history: EpochRecord[];
  evaluation: Evaluation;
  /** The subsets actually used. */
  train: Split;
  test: Split;
}

/** The class-balanced subsets `config.trainLimit` and `config.testLimit` ask for (all if null). */
export function chooseSubsets(
  config: Pick<TrainConfig, "trainLimit" | "testLimit" | "seed">,
  data: { train: Split; test: Split },
): { train: Split; test: Split } {
  return {
    train: config.trainLimit === null
      ? data.train
      : limitSplit(data.train, config.trainLimit, config.seed),
    test: config.testLimit === null
      ? data.test
      : limitSplit(data.test, config.testLimit, config.seed + 1),
  };
}

/**
 * Seconds until a run ends: the rest of this epoch and the epochs after it at
 * the current training speed, plus one evaluation per epoch left.
 *
 * @param secondsPerEvaluation Measured after the first epoch; until then,
 *   inference is taken as 3x faster than training.
 */
export function estimateSecondsLeft(p: {
  epoch: number;
  epochs: number;
  batch: number;
  batches: number;
  trainImages: number;
  testImages: number;
  imagesPerSecond: number;
  secondsPerEvaluation: number | null;
}): number {
  const remainingImages = (p.batches - p.batch) / p.batches * p.trainImages +
    (p.epochs - p.epoch) * p.trainImages;
  const perEvaluation = p.secondsPerEvaluation ?? p.testImages / p.imagesPerSecond / 3;
  return remainingImages / p.imagesPerSecond + perEvaluation * (p.epochs - p.epoch + 1);
}

/**
 * The article's training run: build ResNet-18 (or `config.arch`), train `config.epochs` epochs with Adam, evaluate
 * on the test set after each, checkpoint each epoch into `runDir`, save the final model there.
 *
 * @throws {NonFiniteLossError} when the training or the test loss diverges; the last good
 *   checkpoint stays.
 * @throws {RunFolderError} before any work when `runDir` is not what `resume` or `restart` ask
 *   for (see `lib/train/run_folder.ts`).
 * @throws {RunLockError} before any work when another process is writing `runDir`.
 */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const { runDir = null, resume = false, restart = false } = options;
  if (resume && runDir === null) {
    throw new Error("Expected a run folder to resume from but found none");
  }
  // Before any work: the folder is checked (and cleared for a restart) under its lock.
  const lock = runDir === null
    ? null
    : await openRunFolder(runDir, resume ? "resume" : restart ? "restart" : "new");
  try {
    return await trainRun(options);
  } finally {
    await lock?.release();
  }
}

/** {@linkcode train}'s work, once its run folder (if any) is open. */
async function trainRun(options: TrainOptions): Promise<TrainResult> {
  const { config, runDir = null, resume = false, callbacks = {} } = options;
  const subsets = chooseSubsets(config, options.data);
  const model = buildModel(architecture(config.arch), { width: config.width, seed: config.seed });
  const batches = Math.ceil(subsets.train.count / config.batchSize);
  const optimizer = createOptimizer(config, config.epochs * batches);
  let rng = new Rng(config.seed);
  let history: EpochRecord[] = [];
  let evaluation: Evaluation | null = null;
  try {
    if (resume) {
      const state = await resumeRun(runDir!, config, model, optimizer);
      rng = Rng.fromState(state.rngState);
      history = state.history;
    } else if (runDir !== null) {
      await startRunFolder(runDir, config);
    }
    await callbacks.onStart?.(history, model);
    let secondsPerEvaluation: number | null = null;
    for (let epoch = history.length + 1; epoch <= config.epochs; epoch++) {
      const trained = await trainEpoch(model, optimizer, subsets.train, {
        batchSize: config.batchSize,
        rng,
        epoch,
        labelSmoothing: config.labelSmoothing,
        cropPadding: config.cropPadding,
        onBatch: (batch, _, stats) =>
          callbacks.onBatchEnd?.({
            epoch,
            epochs: config.epochs,
            batch,
            batches,
            loss: stats.loss,
            imagesPerSecond: stats.imagesPerSecond,
            etaSeconds: estimateSecondsLeft({
              epoch,
              epochs: config.epochs,
              batch,
              batches,
              trainImages: subsets.train.count,
              testImages: subsets.test.count,
              imagesPerSecond: stats.imagesPerSecond,
              secondsPerEvaluation,
            }),
          }),
      });
      const evaluationStart = performance.now();
      evaluation = await evaluate(model, subsets.test, { flip: config.testTimeFlip });
      secondsPerEvaluation = (performance.now() - evaluationStart) / 1000;
      // Before the checkpoint: a diverged network must not replace the last good one.
      if (!Number.isFinite(evaluation.loss)) {
        throw new NonFiniteLossError(epoch, null, evaluation.loss);
      }
      const record: EpochRecord = {
        epoch,
        trainLoss: trained.loss,
        trainAccuracy: trained.accuracy,
        testLoss: evaluation.loss,
        testAccuracy: evaluation.accuracy,
        seconds: trained.seconds + secondsPerEvaluation,
        imagesPerSecond: trained.imagesPerSecond,
      };
      history.push(record);
      if (runDir !== null) {
        await saveEpoch(runDir, model, optimizer, {
          epoch,
          rngState: rng.state(),
          history,
          config,
        });
      }
      await callbacks.onEpochEnd?.(record, evaluation, history, model);
    }
    evaluation ??= await evaluate(model, subsets.test, { flip: config.testTimeFlip });
    if (runDir !== null) await saveFinalModel(runDir, model);
    return { model, history, evaluation, train: subsets.train, test: subsets.test };
  } catch (error) {
    model.dispose();
    throw error;
  } finally {
    optimizer.dispose();
  }
}

/**
 * Loads the run's checkpoint, then rewrites `config.json` (the settings it now continues with,
 * `epochs` among them) and `history.json` from it: a run killed between writing its last
 * checkpoint and its history left the history an epoch short.
 */
async function resumeRun(
  runDir: string,
  config: TrainConfig,
  model: tf.LayersModel,
  optimizer: tf.Optimizer,
): Promise<CheckpointState> {
  const state = await resumeFromRunFolder(runDir, config, model, optimizer);
  await startRunFolder(runDir, config);
  await saveHistory(runDir, state.history);
  return state;
}
