/**
 * `deno task train`'s work once its flags are checked: the article's job headless. It loads
 * CIFAR-10, trains, prints the article's per-epoch lines, and leaves everything in a run folder
 * (figures included, redrawn after every epoch).
 *
 * @module
 */
import { initBackend } from "../backends/init.ts";
import { type Cifar10, loadCifar10 } from "../data.ts";
import { writeTextFileAtomic } from "../io/atomic.ts";
import { confusionSvg, curvesSvg, perClassSvg } from "../report/figures.ts";
import { formatDuration, ProgressLine } from "../report/progress.ts";
import { DEFAULT_CONFIG, makeConfig, type TrainConfig } from "../train/config.ts";
import {
  openRunFolder,
  RUN_FILES,
  RunFolderError,
  type RunFolderMode,
} from "../train/run_folder.ts";
import type { RunLock } from "../train/run_lock.ts";
import {
  type BatchProgress,
  type EpochRecord,
  type Evaluation,
  NonFiniteLossError,
  train,
} from "../train.ts";
import { UsageError } from "./run_main.ts";
import type { TrainArgs } from "./train_args.ts";

/**
 * Trains as `args` says and writes the run folder.
 *
 * @param args Checked flags (see `parseTrainArgs`).
 * @returns The exit status: 0 when the run finished, 3 when the loss stopped being finite.
 * @throws {UsageError} before any work when `--out` is not writable, or is not what `--resume`,
 *   `--restart` or neither ask for (a run to continue, a run to delete, an empty or new folder).
 * @throws {RunLockError} before any work when another trainer writes `--out`.
 */
export async function trainCommand(args: TrainArgs): Promise<number> {
  await checkWritable(args.out);
  const lock = await openOut(args);
  try {
    return await trainInto(args);
  } finally {
    await lock.release();
  }
}

/** The run folder, locked and checked (train() takes the same lock again inside). */
async function openOut(args: TrainArgs): Promise<RunLock> {
  const mode: RunFolderMode = args.resume ? "resume" : args.restart ? "restart" : "new";
  try {
    return await openRunFolder(args.out, mode, { log: console.log });
  } catch (error) {
    if (error instanceof RunFolderError) throw new UsageError(`--out: ${error.message}`);
    throw error;
  }
}

/** {@linkcode trainCommand}'s work, the run folder open. */
async function trainInto(args: TrainArgs): Promise<number> {
  const config = args.resume ? await resumedConfig(args) : args.config;
  const backend = await initBackend(config.backend, { log: console.log });
  console.log(`Backend: ${backend.name} (${backend.detail})`);

  const progress = new ProgressLine(Deno.stdout);
  const data = await loadData(args, progress);
  console.log(
    `Data: ${config.trainLimit ?? data.train.count} training, ${
      config.testLimit ?? data.test.count
    } test images; run folder ${args.out}${args.resume ? " (resuming)" : ""}`,
  );
  console.log(`Config: ${JSON.stringify(config)}`);

  try {
    const result = await train({
      config,
      data,
      runDir: args.out,
      resume: args.resume,
      restart: args.restart,
      callbacks: {
        // A resumed run's figures, redrawn from its checkpoint before anything else.
        onStart: async (history) => {
          if (history.length > 0) await writeCurves(args.out, history);
        },
        onBatchEnd: (p) =>
          progress.update(batchLine(p, progress.bar(p.batch / p.batches)), p.batch === p.batches),
        // `history` is the whole run's, a resumed run's earlier epochs included.
        onEpochEnd: async (record, _evaluation, history) => {
          progress.done();
          await writeCurves(args.out, history);
          console.log(epochLine(record, config.epochs));
        },
      },
    });
    await writeEvaluationFigures(args.out, result.evaluation, data.classNames);
    console.log(
      `${evaluationLine(result.evaluation)}. Model, checkpoint and history in ${args.out}`,
    );
    result.model.dispose();
  } catch (error) {
    progress.done();
    if (error instanceof NonFiniteLossError) {
      console.error(nonFiniteLossMessage(error, args.out));
      return 3;
    }
    throw error;
  }
  return 0;
}

/** A resumed run's settings: its config.json, with the flags given now over them. */
async function resumedConfig(args: TrainArgs): Promise<TrainConfig> {
  let saved: TrainConfig;
  try {
    saved = JSON.parse(await Deno.readTextFile(`${args.out}/config.json`));
  } catch (error) {
    throw new UsageError(
      `--resume: expected a run folder with config.json at ${args.out}: ${
        (error as Error).message
      }`,
    );
  }
  // Refused here, before the data loads: the checkpoint's weights fit only the saved network.
  const savedArch = saved.arch ?? DEFAULT_CONFIG.arch;
  if (args.overrides.arch !== undefined && args.overrides.arch !== savedArch) {
    throw new UsageError(
      `--arch: expected ${savedArch} (the network of the run in ${args.out}) but found ` +
        `${args.overrides.arch}; train it in a new --out, or start this one over with --restart`,
    );
  }
  return makeConfig({ ...saved, ...args.overrides });
}

/** Fails before any work when the task's permissions do not cover the run folder. */
async function checkWritable(out: string): Promise<void> {
  const status = await Deno.permissions.query({ name: "write", path: out });
  if (status.state !== "granted") {
    throw new UsageError(
      `--out: no write permission for ${out}; deno task train may write only under ./runs and ./data ` +
        `(or run: deno run -P=train --allow-read=node_modules,native/build,data,runs,${out} ` +
        `--allow-write=data,runs,${out} bin/train.ts --out ${out} ..., adding any --data path ` +
        `to --allow-read)`,
    );
  }
}

/**
 * CIFAR-10 from `--data` (or downloaded), with the download's progress on `progress`; the
 * depth experiment loads it the same way.
 */
export async function loadData(
  args: Pick<TrainArgs, "data" | "md5">,
  progress: ProgressLine,
): Promise<Cifar10> {
  const data = await loadCifar10({
    source: args.data ?? undefined,
    md5: args.md5 ?? undefined,
    log: console.log,
    onProgress: ({ receivedBytes, totalBytes }) =>
      progress.update(downloadLine(receivedBytes, totalBytes), receivedBytes === totalBytes),
  });
  progress.done();
  return data;
}

/** `Downloading CIFAR-10: 12.5 MiB of 162.2 MiB`. */
function downloadLine(receivedBytes: number, totalBytes: number | undefined): string {
  const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
  return `Downloading CIFAR-10: ${mib(receivedBytes)} MiB` +
    (totalBytes ? ` of ${mib(totalBytes)} MiB` : "");
}

/**
 * The live progress line during an epoch.
 *
 * @param p Where training is.
 * @param bar The progress bar for the epoch so far.
 * @returns `Epoch 1/10 [#...] 12/782 loss 2.3026 301.2 img/s ETA 1h02m05s`.
 */
export function batchLine(p: BatchProgress, bar: string): string {
  return `Epoch ${p.epoch}/${p.epochs} ${bar} ${p.batch}/${p.batches}` +
    ` loss ${p.loss.toFixed(4)} ${p.imagesPerSecond.toFixed(1)} img/s ETA ${
      formatDuration(p.etaSeconds)
    }`;
}

/**
 * One epoch's line. The article prints `Epoch [e/E], Loss: ...`; the test figures and the speed
 * are added.
 *
 * @example
 * ```ts
 * import { epochLine } from "./train_command.ts";
 * const record = {
 *   epoch: 1, trainLoss: 1.5, trainAccuracy: 0.45, testLoss: 1.25, testAccuracy: 0.5,
 *   seconds: 60, imagesPerSecond: 900,
 * };
 * console.log(epochLine(record, 10));
 * // Epoch [1/10], Loss: 1.5000, Train Accuracy: 45.00%, Test Loss: 1.2500, Test Accuracy: 50.00%, Time: 60.0s, 900.0 img/s
 * ```
 */
export function epochLine(r: EpochRecord, epochs: number): string {
  return `Epoch [${r.epoch}/${epochs}], Loss: ${r.trainLoss.toFixed(4)}, ` +
    `Train Accuracy: ${(100 * r.trainAccuracy).toFixed(2)}%, Test Loss: ${
      r.testLoss.toFixed(4)
    }, Test Accuracy: ${(100 * r.testAccuracy).toFixed(2)}%, ` +
    `Time: ${r.seconds.toFixed(1)}s, ${r.imagesPerSecond.toFixed(1)} img/s`;
}

/** `Test Loss: 0.6012, Test Accuracy: 79.91% on 10000 images`. */
export function evaluationLine(evaluation: Evaluation): string {
  return `Test Loss: ${evaluation.loss.toFixed(4)}, Test Accuracy: ${
    (100 * evaluation.accuracy).toFixed(2)
  }% on ${evaluation.count} images`;
}

/** `curves.svg` of the run so far. */
function writeCurves(out: string, history: readonly EpochRecord[]): Promise<void> {
  return writeTextFileAtomic(`${out}/${RUN_FILES.curves}`, curvesSvg(history));
}

/** The final evaluation's figures: confusion.svg and per_class.svg in the run folder. */
async function writeEvaluationFigures(
  out: string,
  evaluation: Evaluation,
  classNames: readonly string[],
): Promise<void> {
  await writeTextFileAtomic(
    `${out}/${RUN_FILES.confusion}`,
    confusionSvg(evaluation.confusion, classNames),
  );
  await writeTextFileAtomic(
    `${out}/${RUN_FILES.perClass}`,
    perClassSvg(evaluation.perClassAccuracy, classNames),
  );
}

/**
 * What to do after a diverged run: its last good checkpoint is kept, and resuming from it
 * with a lower rate is the usual cure; a run that diverged in its first epoch has no
 * checkpoint, so it can only start over.
 */
export function nonFiniteLossMessage(error: NonFiniteLossError, out: string): string {
  if (error.epoch === 1) {
    return `${error.message}. No epoch completed, so ${out} has no checkpoint to resume from; ` +
      `start over with a lower --lr and --restart --out ${out}.`;
  }
  return `${error.message}. The last good checkpoint in ${out} is kept; ` +
    `try a lower --lr and --resume, or start again.`;
}

/**
 * Makes Ctrl-C say how to continue: completed epochs are checkpointed. Exits 130, as a shell
 * does for SIGINT.
 *
 * @param folder What `--out` names. @default "run folder"
 */
export function explainInterrupt(folder = "run folder"): void {
  Deno.addSignalListener("SIGINT", () => {
    console.error(
      `\nInterrupted. Completed epochs are checkpointed; continue with --resume --out <${folder}>.`,
    );
    Deno.exit(130);
  });
}
