/**
 * The experiment behind the article's claim (二(三)) that shortcuts let deeper networks train
 * better: He et al. (2015), Fig. 6. Plain nets of 20 and 56 layers get worse with depth, the
 * training error included (so it is not overfitting: the deeper plain net is harder to
 * optimise), while the ResNets of the same depths get better. Here He's CIFAR-10 nets (the same
 * widths and layers, with and without shortcuts) train with one recipe on one training subset
 * for the same epochs, and after every epoch each records its training loss, its training error
 * and its test error.
 *
 * Each net is an ordinary training run (`train()`, with its checkpoints, resume and lock) in a
 * subfolder named for its architecture; the experiment orchestrates them and collects:
 *
 * | file              | what                                                                    |
 * | ----------------- | ----------------------------------------------------------------------- |
 * | `experiment.json` | the settings ({@linkcode DepthConfig})                                  |
 * | `<arch>/`         | that net's run folder (config, history, checkpoint, `model/`)           |
 * | `<arch>.json`     | its per-epoch records, rewritten atomically after every epoch           |
 * | `results.json`    | every net's records, rewritten after every epoch; `complete` at the end |
 * | `depth.svg`       | training and test error per epoch (and `depth.png` at the end)          |
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { limitSplit, type Split } from "../data.ts";
import { writeFileAtomic, writeTextFileAtomic } from "../io/atomic.ts";
import {
  architecture,
  type ArchName,
  countTrainableParameters,
  MAX_CIFAR_DEPTH,
} from "../model.ts";
import { type DepthCurve, depthSvg } from "../report/figures.ts";
import { svgToPng } from "../report/raster.ts";
import {
  type BatchProgress,
  chooseSubsets,
  type EpochRecord,
  evaluate,
  NonFiniteLossError,
  train,
} from "../train.ts";
import { type BackendName, ConfigError, makeConfig, type TrainConfig } from "../train/config.ts";
import {
  openRunFolder,
  RUN_FILES,
  RunFolderError,
  type RunFolderMode,
} from "../train/run_folder.ts";
import { acquireRunLock, LOCK_FILE, type RunLock } from "../train/run_lock.ts";

/** The experiment's settings; the recipe every net trains with is {@linkcode DEPTH_RECIPE}. */
export interface DepthConfig {
  /** Depths compared, each as its plain net and its ResNet; each 6n+2. @default [20, 56] */
  depths: number[];
  /** Stem width of every net: 16, 32, 64 channels at 16. @default 16 (He et al.) */
  width: number;
  /** Epochs of every net. @default 6 */
  epochs: number;
  /** The class-balanced training subset every net trains on. @default 10000 */
  trainLimit: number;
  /** The class-balanced test subset scored after every epoch. @default 2000 */
  testLimit: number;
  /**
   * Images of the training subset scored after every epoch for the training error: always the
   * same ones, un-augmented, BatchNorm in inference mode, like the test error (the error on the
   * augmented batches as trained is recorded too, but it mixes an epoch's changing weights and
   * BatchNorm's batch statistics).
   * @default 1000
   */
  trainEvalLimit: number;
  /**
   * Seeds the weights, the subsets, the shuffling and the augmentation; the same for every net.
   * @default 0
   */
  seed: number;
  /** TensorFlow.js backend. @default "auto" */
  backend: BackendName;
}

/**
 * The default run, sized for about 15-20 minutes on the 2-vCPU build machine with the native
 * backend. Per image of the training subset the four nets cost the sum of 1/v over their
 * training speeds v, and per image scored the same over their inference speeds. Measured
 * there (`trainStep` at batch 128 on random images, after one warm-up step, on 2026-12-02):
 * ResNet-20 465, plain-20 499, ResNet-56 168, plain-56 196 training images/s, and 1591, 1802,
 * 516, 681 images/s in inference; the 1-epoch version (`--epochs 1 --train-limit 2000
 * --test-limit 500`) took 44 s end to end, its nets training at 462, 482, 182 and 149 img/s
 * (epoch 1 includes the warm-up). So 10,000 images x 6 epochs is about 910 s of training, plus
 * about 14 s per epoch to score 3,000 images with all four: about 17 minutes in all. Other
 * jobs on the same cores slow it down in proportion (earlier the same measurement gave 77-90
 * and 23-33 img/s for ResNet-20 and -56 under a load of 5). Six epochs (474 Adam steps per net)
 * are enough for the curves to part: the deeper plain net is the slower to train from its first
 * epochs, as in He et al.'s Fig. 6; the ResNets' gain from depth needs longer runs to show in
 * full.
 */
export const DEFAULT_DEPTH_CONFIG: Readonly<DepthConfig> = Object.freeze({
  depths: [20, 56],
  width: 16,
  epochs: 6,
  trainLimit: 10_000,
  testLimit: 2000,
  trainEvalLimit: 1000,
  seed: 0,
  backend: "auto",
});

/**
 * The one recipe every net trains with: Adam under the one-cycle schedule (which reaches a
 * trained network in few epochs), peaking at 0.002 (half the fast preset's 0.004: plain-56 is
 * the net that is hard to train, and a rate it survives is fair to all four), batch 128, plain
 * cross-entropy, and the trainer's augmentation (flip, crops shifted by up to 4 pixels).
 */
export const DEPTH_RECIPE: Readonly<Partial<TrainConfig>> = Object.freeze({
  batchSize: 128,
  learningRate: 0.002,
  lrSchedule: "onecycle",
  labelSmoothing: 0,
  cropPadding: 4,
  testTimeFlip: false,
});

/** What each figure of a {@linkcode DepthRecord} measures; `results.json` carries it too. */
export const DEPTH_MEASURES = Object.freeze({
  trainLoss: "mean cross-entropy over the epoch's augmented training batches, as trained " +
    "(BatchNorm in training mode)",
  trainError: "error on a fixed class-balanced subset of the training images " +
    "(trainEvalLimit of them), un-augmented, BatchNorm in inference mode, after the epoch",
  trainErrorAugmented: "error on the epoch's augmented training batches, as trained",
  testLoss: "mean cross-entropy on the test subset after the epoch",
  testError: "error on the class-balanced test subset (testLimit images), BatchNorm in " +
    "inference mode, after the epoch",
});

/** One net's figures after one epoch (see {@linkcode DEPTH_MEASURES}). */
export interface DepthRecord {
  epoch: number;
  trainLoss: number;
  /** Null only for an epoch whose `<arch>.json` record was lost (never written by a resume). */
  trainError: number | null;
  trainErrorAugmented: number;
  testLoss: number;
  testError: number;
  /** Training, test scoring and training-subset scoring of the epoch. */
  seconds: number;
  imagesPerSecond: number;
}

/** One net of the experiment: what `<arch>.json` holds. */
export interface ModelResult {
  arch: ArchName;
  depth: number;
  residual: boolean;
  parameters: number;
  records: DepthRecord[];
  /** Why training stopped before its last epoch (a loss that became NaN), else null. */
  stopped: string | null;
  /** Every epoch trained (or stopped for good). */
  complete: boolean;
}

/** What `results.json` holds. */
export interface DepthResults {
  config: DepthConfig;
  recipe: Readonly<Partial<TrainConfig>>;
  measures: typeof DEPTH_MEASURES;
  models: ModelResult[];
  /** Every net complete. */
  complete: boolean;
}

/** The experiment folder's own files, by name (besides `<arch>/` and `<arch>.json`). */
export const DEPTH_FILES = Object.freeze({
  config: "experiment.json",
  results: "results.json",
  figure: "depth.svg",
  figurePng: "depth.png",
  lock: LOCK_FILE,
});

/** A {@linkcode DepthConfig} field with a value {@linkcode makeDepthConfig} refuses. */
export class DepthConfigError extends RangeError {
  constructor(readonly field: keyof DepthConfig, message: string) {
    super(message);
    this.name = "DepthConfigError";
  }
}

/** An experiment folder that cannot be opened as asked; the message says why and what to do. */
export class DepthFolderError extends Error {
  constructor(readonly out: string, message: string) {
    super(message);
    this.name = "DepthFolderError";
  }
}

/**
 * Fills in defaults and checks every field, naming the first one that is wrong.
 *
 * @param partial Fields to override.
 * @returns A complete, validated config.
 * @throws {DepthConfigError} e.g. `Expected depths to be ... but found [18]`, field `depths`.
 *
 * @example
 * ```ts
 * import { makeDepthConfig } from "./depth.ts";
 * console.log(makeDepthConfig({ depths: [20, 32] }).depths); // [20, 32]
 * ```
 */
export function makeDepthConfig(partial: Partial<DepthConfig> = {}): DepthConfig {
  const config: DepthConfig = { ...DEFAULT_DEPTH_CONFIG, ...partial };
  const depths = config.depths;
  const valid = Array.isArray(depths) && depths.length > 0 &&
    new Set(depths).size === depths.length &&
    depths.every((d) => Number.isInteger(d) && d >= 8 && d <= MAX_CIFAR_DEPTH && (d - 2) % 6 === 0);
  if (!valid) {
    throw new DepthConfigError(
      "depths",
      `Expected depths to be distinct depths 6n+2 in 8..${MAX_CIFAR_DEPTH} (20, 32, 44, 56, ` +
        `110, ...) but found ${JSON.stringify(depths)}`,
    );
  }
  if (!(Number.isInteger(config.trainEvalLimit) && config.trainEvalLimit >= 1)) {
    throw new DepthConfigError(
      "trainEvalLimit",
      `Expected trainEvalLimit to be an integer >= 1 but found ${config.trainEvalLimit}`,
    );
  }
  for (const field of ["trainLimit", "testLimit"] as const) {
    // null means "every image" to the trainer; the experiment always names its subsets.
    if (config[field] === null) {
      throw new DepthConfigError(field, `Expected ${field} to be an integer >= 1 but found null`);
    }
  }
  try {
    depthArchs(config).forEach((arch) => runConfigFor(config, arch));
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new DepthConfigError(error.field as keyof DepthConfig, error.message);
  }
  return { ...config, depths: [...depths] };
}

/**
 * The nets of the experiment in the order they train: by depth, each plain net before its
 * ResNet (so a partial run already compares the two of one depth).
 *
 * @example
 * ```ts
 * import { depthArchs } from "./depth.ts";
 * console.log(depthArchs({ depths: [56, 20] })); // ["plain20", "resnet20", "plain56", "resnet56"]
 * ```
 */
export function depthArchs(config: Pick<DepthConfig, "depths">): ArchName[] {
  return [...config.depths].sort((a, b) => a - b)
    .flatMap((d) => [`plain${d}`, `resnet${d}`] as ArchName[]);
}

/** The training run of one net: {@linkcode DEPTH_RECIPE} with the experiment's settings. */
export function runConfigFor(config: DepthConfig, arch: ArchName): TrainConfig {
  return makeConfig({
    ...DEPTH_RECIPE,
    arch,
    width: config.width,
    epochs: config.epochs,
    trainLimit: config.trainLimit,
    testLimit: config.testLimit,
    seed: config.seed,
    backend: config.backend,
  });
}

/** The file's text, or null when there is no such file (any other error is thrown). */
async function readTextIfPresent(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/** The experiment's config saved in `out`, checked; null when there is none. */
export async function readDepthConfig(out: string): Promise<DepthConfig | null> {
  const path = `${out}/${DEPTH_FILES.config}`;
  const text = await readTextIfPresent(path);
  if (text === null) return null;
  try {
    return makeDepthConfig(JSON.parse(text));
  } catch (error) {
    if (!(error instanceof SyntaxError || error instanceof DepthConfigError)) throw error;
    throw new DepthFolderError(
      out,
      `Expected ${path} to be a depth experiment's settings but ${error.message}`,
    );
  }
}

/** A temporary file of an interrupted atomic write (`<name>.tmp-<pid>-<8 hex digits>`). */
const TMP_SUFFIX = /\.tmp-\d+-[0-9a-f]{8}$/;

/** The names an experiment of these nets writes in its folder. */
function ownNames(archs: readonly ArchName[]): Set<string> {
  return new Set([
    ...Object.values(DEPTH_FILES),
    ...archs.flatMap((arch) => [arch, `${arch}.json`]),
  ]);
}

/**
 * Takes the experiment folder's lock and checks it may be opened as `mode` asks: `new` (it must
 * be empty or absent), `resume` (it must hold an experiment with the same settings but for the
 * backend), `restart` (the experiment's files and its nets' runs are deleted, and nothing else:
 * a folder holding anything else is refused). Safe to call again from the same process.
 *
 * @param out The experiment folder.
 * @param mode What to open it for.
 * @param config The settings it is opened with.
 * @param options.log Told what was removed. @default nothing is told
 * @returns The lock; the caller releases it.
 * @throws {DepthFolderError} naming the folder, what it holds and the way on.
 * @throws {RunLockError} when another process holds the folder.
 */
export async function openDepthFolder(
  out: string,
  mode: RunFolderMode,
  config: DepthConfig,
  options: { log?: (line: string) => void } = {},
): Promise<RunLock> {
  const log = options.log ?? (() => {});
  const stat = await Deno.stat(out).catch(() => null);
  if (stat !== null && !stat.isDirectory) {
    throw new DepthFolderError(out, `Expected ${out} to be an experiment folder but found a file`);
  }
  const lock = await acquireRunLock(out, { log });
  try {
    await prepareDepthFolder(out, mode, config, log);
    return lock;
  } catch (error) {
    await lock.release();
    throw error;
  }
}

async function prepareDepthFolder(
  out: string,
  mode: RunFolderMode,
  config: DepthConfig,
  log: (line: string) => void,
): Promise<void> {
  const entries: string[] = [];
  for await (const entry of Deno.readDir(out)) entries.push(entry.name);
  const leftovers = entries.filter((e) => TMP_SUFFIX.test(e));
  const contents = entries.filter((e) => e !== DEPTH_FILES.lock && !TMP_SUFFIX.test(e)).sort();
  const saved = contents.includes(DEPTH_FILES.config) ? await readDepthConfig(out) : null;
  if (mode === "new" && contents.length > 0) {
    throw new DepthFolderError(
      out,
      saved === null
        ? `Expected ${out} to be a new or empty folder but it holds ${list(contents)}, and ` +
          `not a depth experiment (no ${DEPTH_FILES.config}): choose another --out`
        : `${out} already holds a depth experiment: continue it with --resume, or start it ` +
          `over with --restart (which deletes its files)`,
    );
  }
  if (mode === "resume") {
    if (saved === null) {
      throw new DepthFolderError(
        out,
        `Expected a depth experiment to resume in ${out} but it has no ${DEPTH_FILES.config}`,
      );
    }
    const changed = (Object.keys(saved) as (keyof DepthConfig)[])
      .filter((k) => k !== "backend" && JSON.stringify(saved[k]) !== JSON.stringify(config[k]));
    if (changed.length > 0) {
      throw new DepthFolderError(
        out,
        `Cannot resume ${out}: ${
          changed.map((k) =>
            `${k} was ${JSON.stringify(saved[k])}, now ${JSON.stringify(config[k])}`
          )
            .join(", ")
        } (start it over with --restart, or choose another --out)`,
      );
    }
  }
  for (const name of leftovers) await Deno.remove(`${out}/${name}`).catch(() => {});
  if (mode === "restart" && contents.length > 0) {
    if (saved === null) {
      throw new DepthFolderError(
        out,
        `--restart deletes only a depth experiment's files, and ${out} is not one ` +
          `(no ${DEPTH_FILES.config}): choose another --out`,
      );
    }
    const own = ownNames(depthArchs(saved));
    const foreign = contents.filter((e) => !own.has(e));
    if (foreign.length > 0) {
      throw new DepthFolderError(
        out,
        `--restart deletes only a depth experiment's files, and ${out} also holds ` +
          `${list(foreign)}: move them away or choose another --out`,
      );
    }
    await removeExperiment(out, depthArchs(saved), contents);
    log(`Starting over in ${out}: removed the previous experiment's ${list(contents)}`);
  }
}

/** Deletes each net's run (through the run folder's own restart) and files, settings last. */
async function removeExperiment(
  out: string,
  archs: readonly ArchName[],
  contents: readonly string[],
): Promise<void> {
  for (const arch of archs) {
    if (!contents.includes(arch)) continue;
    const runDir = `${out}/${arch}`;
    try {
      await (await openRunFolder(runDir, "restart")).release();
    } catch (error) {
      if (error instanceof RunFolderError) throw new DepthFolderError(out, error.message);
      throw error;
    }
    await Deno.remove(runDir, { recursive: true });
  }
  const files = contents.filter((e) => !(archs as readonly string[]).includes(e))
    .sort((a, b) => Number(a === DEPTH_FILES.config) - Number(b === DEPTH_FILES.config));
  for (const name of files) await Deno.remove(`${out}/${name}`);
}

/** `a, b, c` or `a, ..., h and 3 more`. */
function list(names: readonly string[]): string {
  const shown = names.slice(0, 8).join(", ");
  return names.length > 8 ? `${shown} and ${names.length - 8} more` : shown;
}

/** Hooks called while the experiment runs (progress lines). */
export interface DepthCallbacks {
  /** Before a net trains: which, its parameter count, and epochs it already has. */
  onModelStart?: (info: {
    arch: ArchName;
    index: number;
    count: number;
    parameters: number;
    epochsDone: number;
  }) => void | Promise<void>;
  onBatchEnd?: (arch: ArchName, progress: BatchProgress) => void | Promise<void>;
  onEpochEnd?: (arch: ArchName, record: DepthRecord) => void | Promise<void>;
  /** After a net finished, stopped, or was found complete by a resume. */
  onModelEnd?: (result: ModelResult, skipped: boolean) => void | Promise<void>;
}

/** Inputs of {@linkcode runDepthExperiment}. */
export interface DepthExperimentOptions {
  config: DepthConfig;
  /** The full CIFAR-10 splits; the config's limits take class-balanced subsets. */
  data: { train: Split; test: Split };
  /** The experiment folder. */
  out: string;
  /** What to do with the folder (see {@linkcode openDepthFolder}). @default "new" */
  mode?: RunFolderMode;
  callbacks?: DepthCallbacks;
  /** Told what was removed, and when a stale lock is taken over. @default nothing is told */
  log?: (line: string) => void;
}

/**
 * Trains every net of the experiment in turn (see {@linkcode depthArchs}), each as a run
 * folder in `out`, records each epoch, and writes `results.json` and the figure. With mode
 * `resume` a net found complete is skipped, one with a checkpoint continues from it (as
 * `deno task train --resume` does), and one that never finished an epoch starts over.
 * A net whose loss stops being finite is recorded as stopped, and the others still train.
 *
 * @returns Every net's records.
 * @throws {DepthFolderError} before any work when `out` cannot be opened as `mode` asks.
 * @throws {RunLockError} before any work when another process writes `out`.
 */
export async function runDepthExperiment(options: DepthExperimentOptions): Promise<DepthResults> {
  const { config, out, mode = "new", log } = options;
  const lock = await openDepthFolder(out, mode, config, { log });
  try {
    await writeTextFileAtomic(
      `${out}/${DEPTH_FILES.config}`,
      JSON.stringify(config, null, 2) + "\n",
    );
    const archs = depthArchs(config);
    // One subset for every net: the seed picks it, and the seed is shared.
    const trained = chooseSubsets(runConfigFor(config, archs[0]), options.data).train;
    const trainEval = limitSplit(trained, config.trainEvalLimit, config.seed + 2);
    const models: ModelResult[] = [];
    for (const [index, arch] of archs.entries()) {
      const stored = mode === "resume" ? await readModelResult(out, arch) : null;
      if (stored?.complete) {
        models.push(stored);
        await options.callbacks?.onModelEnd?.(stored, true);
        continue;
      }
      const result = await trainNet({
        ...options,
        arch,
        index,
        count: archs.length,
        stored,
        trainEval,
        resume: mode === "resume",
        earlier: models,
      });
      models.push(result);
      await options.callbacks?.onModelEnd?.(result, false);
    }
    const results = await writeResults(out, config, models, archs);
    await writeFileAtomic(
      `${out}/${DEPTH_FILES.figurePng}`,
      await svgToPng(await Deno.readTextFile(`${out}/${DEPTH_FILES.figure}`)),
    );
    return results;
  } finally {
    await lock.release();
  }
}

/** {@linkcode runDepthExperiment}'s work for one net. */
async function trainNet(
  p: DepthExperimentOptions & {
    arch: ArchName;
    index: number;
    count: number;
    stored: ModelResult | null;
    trainEval: Split;
    resume: boolean;
    earlier: readonly ModelResult[];
  },
): Promise<ModelResult> {
  const { arch, config, out } = p;
  const runDir = `${out}/${arch}`;
  const hasCheckpoint = await Deno.stat(`${runDir}/${RUN_FILES.checkpoint}`)
    .then(() => true, () => false);
  const spec = architecture(arch);
  const result: ModelResult = {
    arch,
    depth: Number(arch.replace(/^\D+/, "")),
    residual: spec.residual,
    parameters: 0,
    records: [],
    stopped: null,
    complete: false,
  };
  const save = async () => {
    await writeTextFileAtomic(`${out}/${arch}.json`, JSON.stringify(result, null, 2) + "\n");
    await writeResults(out, config, [...p.earlier, result], depthArchs(config));
  };
  const scoreTraining = async (model: tf.LayersModel) =>
    1 - (await evaluate(model, p.trainEval)).accuracy;
  try {
    const run = await train({
      config: runConfigFor(config, arch),
      data: p.data,
      runDir,
      // A resumed experiment continues a net from its checkpoint; one that never finished an
      // epoch (or never started) starts over, as the trainer's --restart would.
      resume: p.resume && hasCheckpoint,
      restart: p.resume && !hasCheckpoint,
      callbacks: {
        onStart: async (history, model) => {
          result.parameters = countTrainableParameters(model);
          result.records = history.map((h) =>
            depthRecord(h, p.stored?.records.find((r) => r.epoch === h.epoch)?.trainError ?? null)
          );
          // Killed after the checkpoint of its last epoch but before its record: the model
          // holds that epoch's weights, so the training error is measured now.
          const last = result.records.at(-1);
          if (last !== undefined && last.trainError === null) {
            last.trainError = await scoreTraining(model);
          }
          await save();
          await p.callbacks?.onModelStart?.({
            arch,
            index: p.index,
            count: p.count,
            parameters: result.parameters,
            epochsDone: history.length,
          });
        },
        onBatchEnd: (progress) => p.callbacks?.onBatchEnd?.(arch, progress),
        onEpochEnd: async (record, _evaluation, _history, model) => {
          const began = performance.now();
          const trainError = await scoreTraining(model);
          const seconds = record.seconds + (performance.now() - began) / 1000;
          const depth = { ...depthRecord(record, trainError), seconds };
          result.records.push(depth);
          await save();
          await p.callbacks?.onEpochEnd?.(arch, depth);
        },
      },
    });
    run.model.dispose();
  } catch (error) {
    if (!(error instanceof NonFiniteLossError)) throw error;
    result.stopped = error.message;
  }
  result.complete = true;
  await save();
  return result;
}

/** One epoch of the trainer's history as the experiment records it. */
function depthRecord(r: EpochRecord, trainError: number | null): DepthRecord {
  return {
    epoch: r.epoch,
    trainLoss: r.trainLoss,
    trainError,
    trainErrorAugmented: 1 - r.trainAccuracy,
    testLoss: r.testLoss,
    testError: 1 - r.testAccuracy,
    seconds: r.seconds,
    imagesPerSecond: r.imagesPerSecond,
  };
}

/** A net's `<arch>.json` from an earlier process; null when there is none. */
async function readModelResult(out: string, arch: ArchName): Promise<ModelResult | null> {
  const path = `${out}/${arch}.json`;
  const text = await readTextIfPresent(path);
  if (text === null) return null;
  let parsed: ModelResult;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new DepthFolderError(out, `Expected ${path} to be JSON: ${(error as Error).message}`);
  }
  if (parsed?.arch !== arch || !Array.isArray(parsed.records)) {
    throw new DepthFolderError(
      out,
      `Expected ${path} to be the records of ${arch} but found ${text.slice(0, 60)}`,
    );
  }
  return parsed;
}

/** `results.json` and `depth.svg` for the nets so far (in experiment order). */
async function writeResults(
  out: string,
  config: DepthConfig,
  models: readonly ModelResult[],
  archs: readonly ArchName[],
): Promise<DepthResults> {
  const results: DepthResults = {
    config,
    recipe: DEPTH_RECIPE,
    measures: DEPTH_MEASURES,
    models: [...models],
    complete: models.length === archs.length && models.every((m) => m.complete),
  };
  await writeTextFileAtomic(
    `${out}/${DEPTH_FILES.results}`,
    JSON.stringify(results, null, 2) + "\n",
  );
  await writeTextFileAtomic(`${out}/${DEPTH_FILES.figure}`, depthFigure(results));
  return results;
}

/**
 * The experiment's figure: training error (on the fixed training subset, in inference mode)
 * and test error per epoch, solid for ResNets and dashed for plain nets, a colour per depth.
 */
export function depthFigure(results: Pick<DepthResults, "models">): string {
  const curves: DepthCurve[] = results.models.map((m) => ({
    name: `${m.residual ? "ResNet" : "plain"}-${m.depth}`,
    depth: m.depth,
    residual: m.residual,
    points: m.records,
  }));
  return depthSvg(curves, "↓ training error (%), fixed subset");
}
