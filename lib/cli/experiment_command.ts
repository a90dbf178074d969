/**
 * `deno task experiment:depth`'s work once its flags are checked: loads CIFAR-10, trains each
 * net of the depth experiment (`lib/experiment/depth.ts`) with a progress line, prints a line
 * per epoch and a summary, and leaves everything in the experiment folder.
 *
 * @module
 */
import { initBackend } from "../backends/init.ts";
import {
  depthArchs,
  type DepthConfig,
  DepthFolderError,
  type DepthRecord,
  type DepthResults,
  openDepthFolder,
  readDepthConfig,
  runDepthExperiment,
} from "../experiment/depth.ts";
import { formatDuration, ProgressLine } from "../report/progress.ts";
import type { RunFolderMode } from "../train/run_folder.ts";
import type { RunLock } from "../train/run_lock.ts";
import { depthConfigFromFlags, type ExperimentArgs } from "./experiment_args.ts";
import { UsageError } from "./run_main.ts";
import { batchLine, loadData } from "./train_command.ts";

/**
 * Runs the experiment as `args` says.
 *
 * @returns The exit status: 0 when every net finished (a net whose loss stopped being finite
 *   is reported and counts as finished).
 * @throws {UsageError} before any work when `--out` is not writable, or is not what `--resume`,
 *   `--restart` or neither ask for, or `--resume` is given settings that differ from the saved.
 * @throws {RunLockError} before any work when another process writes `--out`.
 */
export async function experimentCommand(args: ExperimentArgs): Promise<number> {
  await checkWritable(args.out);
  const config = args.resume ? await resumedConfig(args) : args.config;
  const mode: RunFolderMode = args.resume ? "resume" : args.restart ? "restart" : "new";
  const lock = await openOut(args.out, mode, config);
  try {
    return await experimentInto(args, config, mode);
  } finally {
    await lock.release();
  }
}

async function openOut(out: string, mode: RunFolderMode, config: DepthConfig): Promise<RunLock> {
  try {
    return await openDepthFolder(out, mode, config, { log: console.log });
  } catch (error) {
    if (error instanceof DepthFolderError) throw new UsageError(`--out: ${error.message}`);
    throw error;
  }
}

/** A resumed experiment's settings: its experiment.json, the flags given now over them. */
async function resumedConfig(args: ExperimentArgs): Promise<DepthConfig> {
  let saved: DepthConfig | null;
  try {
    saved = await readDepthConfig(args.out);
  } catch (error) {
    if (error instanceof DepthFolderError) throw new UsageError(`--resume: ${error.message}`);
    throw error;
  }
  if (saved === null) {
    throw new UsageError(
      `--resume: expected a depth experiment in ${args.out} but found no experiment.json`,
    );
  }
  return depthConfigFromFlags({ ...saved, ...args.overrides });
}

/** {@linkcode experimentCommand}'s work, the folder open. */
async function experimentInto(
  args: ExperimentArgs,
  config: DepthConfig,
  mode: RunFolderMode,
): Promise<number> {
  const started = performance.now();
  const backend = await initBackend(config.backend, { log: console.log });
  console.log(`Backend: ${backend.name} (${backend.detail})`);
  const progress = new ProgressLine(Deno.stdout);
  const data = await loadData(args, progress);
  console.log(planLine(config, args.out, mode === "resume"));

  const results = await runDepthExperiment({
    config,
    data,
    out: args.out,
    mode,
    log: console.log,
    callbacks: {
      onModelStart: ({ arch, index, count, parameters, epochsDone }) => {
        console.log(
          `[${index + 1}/${count}] ${arch}: ${parameters.toLocaleString("en-US")} parameters` +
            (epochsDone > 0 ? `, resuming after epoch ${epochsDone}` : ""),
        );
      },
      onBatchEnd: (arch, p) =>
        progress.update(
          `${arch} ${batchLine(p, progress.bar(p.batch / p.batches))}`,
          p.batch === p.batches,
        ),
      onEpochEnd: (arch, record) => {
        progress.done();
        console.log(depthEpochLine(arch, record, config.epochs));
      },
      onModelEnd: (result, skipped) => {
        progress.done();
        if (skipped) console.log(`${result.arch}: complete in ${args.out}, skipped`);
        if (result.stopped !== null) console.log(`${result.arch} stopped: ${result.stopped}`);
      },
    },
  });
  console.log(summary(results));
  console.log(
    `Done in ${formatDuration((performance.now() - started) / 1000)}: results.json, ` +
      `depth.svg, depth.png and a run folder per net in ${args.out}`,
  );
  return 0;
}

/** What the experiment will do, in one line. */
function planLine(config: DepthConfig, out: string, resuming: boolean): string {
  const n = (x: number) => x.toLocaleString("en-US");
  return `Depth experiment: ${depthArchs(config).join(", ")} at width ${config.width}, ` +
    `${config.epochs} epochs each on ${n(config.trainLimit)} training images; training ` +
    `error on ${n(Math.min(config.trainEvalLimit, config.trainLimit))} of them, test error on ` +
    `${n(config.testLimit)} test images; folder ${out}${resuming ? " (resuming)" : ""}`;
}

/**
 * One net's line after an epoch.
 *
 * @example
 * ```ts
 * import { depthEpochLine } from "./experiment_command.ts";
 * const record = {
 *   epoch: 2, trainLoss: 1.25, trainError: 0.4, trainErrorAugmented: 0.45, testLoss: 1.3,
 *   testError: 0.42, seconds: 30, imagesPerSecond: 300,
 * };
 * console.log(depthEpochLine("resnet20", record, 8));
 * // resnet20 epoch [2/8]: train loss 1.2500, train error 40.00%, test error 42.00% (30.0s, 300.0 img/s)
 * ```
 */
export function depthEpochLine(arch: string, r: DepthRecord, epochs: number): string {
  const percent = (x: number | null) => x === null ? "?" : `${(100 * x).toFixed(2)}%`;
  return `${arch} epoch [${r.epoch}/${epochs}]: train loss ${r.trainLoss.toFixed(4)}, ` +
    `train error ${percent(r.trainError)}, test error ${percent(r.testError)} ` +
    `(${r.seconds.toFixed(1)}s, ${r.imagesPerSecond.toFixed(1)} img/s)`;
}

/** The final training and test error of each net, one line each. */
function summary(results: DepthResults): string {
  return results.models.map((m) => {
    const last = m.records.at(-1);
    const percent = (x: number | null | undefined) =>
      x === null || x === undefined ? "?" : `${(100 * x).toFixed(2)}%`;
    return `${m.arch.padEnd(10)} ${m.parameters.toLocaleString("en-US").padStart(9)} parameters: ` +
      `train error ${percent(last?.trainError)}, test error ${percent(last?.testError)} ` +
      `after ${m.records.length} epochs${m.stopped === null ? "" : " (stopped)"}`;
  }).join("\n");
}

/** Fails before any work when the task's permissions do not cover the folder. */
async function checkWritable(out: string): Promise<void> {
  const status = await Deno.permissions.query({ name: "write", path: out });
  if (status.state !== "granted") {
    throw new UsageError(
      `--out: no write permission for ` +
        `${out}; deno task experiment:depth may write only under ./runs and ./data`,
    );
  }
}
