/**
 * `deno task bench`: how fast the article's ResNet-18 trains and infers here,
 * on batches from the real data pipeline, optionally beside the PyTorch peer
 * run on the same machine in the same invocation.
 *
 * A training step is timed end to end as the article's loop runs it (and as
 * the peer times its own): make the augmented batch, forward, backward, Adam,
 * read the loss back. The batch-making part is also reported on its own.
 *
 * Speeds are also given as GFLOP/s (the model's conv and dense FLOPs, `lib/report/flops.ts`),
 * beside the machine's SGEMM limit measured in the same run: the fraction of it a step reaches
 * says how much room is left, where images per second alone cannot. `runs` repeats the whole
 * measurement (the peer's included, right after ours each time, so each ratio comes from one
 * run) and reports the median of each figure.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../backends/init.ts";
import { IMAGE_BYTES, loadCifar10, makeBatch, NUM_CLASSES, type Split } from "../data.ts";
import { resnet18 } from "../model.ts";
import type { BackendName } from "../train/config.ts";
import { Rng } from "../train/rng.ts";
import { createOptimizer, inferBatches, trainStep } from "../train.ts";
import { checkedNative, loadNativeLibrary } from "../backends/native/kernels.ts";
import { countFlops, type ModelFlops } from "./flops.ts";
import { type MachineInfo, machineInfo, openblasSettings, parseCpuFlags } from "./machine.ts";

export type { MachineInfo } from "./machine.ts";

/** What to measure. */
export interface BenchOptions {
  /** TensorFlow.js backend. @default "auto" */
  backend: BackendName;
  /** ResNet-18 stem width; 64 is the article. @default 64 */
  width: number;
  /** Images per step (training and inference). @default 64 */
  batchSize: number;
  /** Timed training steps, and timed inference batches. @default 5 (the peer's usual --bench-steps) */
  steps: number;
  /** Untimed steps first (weight packing, allocation, JIT). @default 1 (as the peer) */
  warmupSteps: number;
  /** wasm threads; null = one per core. @default null */
  wasmThreads: number | null;
  /** CIFAR-10 folder or `.tar.gz`; null = synthetic images (shapes and pipeline identical). @default null */
  data: string | null;
  /** Also run the PyTorch peer on `data` (which must be the `.tar.gz`). @default false */
  peer: boolean;
  /** The peer script. @default "../shared/peer/article_torch.py" */
  peerScript: string;
  /** Threads the peer may use. @default one per core */
  peerThreads: number;
  /** Add per-kernel milliseconds of one profiled training step. @default false */
  profile: boolean;
  /** Seeds weights, order and augmentation. @default 0 */
  seed: number;
  /** Whole measurements (SGEMM, ours, the peer) in a row; the result gives each and the median. @default 1 */
  runs: number;
  /** m = n = k of the SGEMM that measures the machine's limit; 0 skips it. @default 2048 */
  sgemmSize: number;
}

/** The interpreter the peer runs under; the bench task may run only this. */
export const PEER_PYTHON = "/usr/bin/python3";

/** Defaults of {@linkcode BenchOptions}. */
export const DEFAULT_BENCH_OPTIONS: Readonly<BenchOptions> = Object.freeze({
  backend: "auto",
  width: 64,
  batchSize: 64,
  steps: 5,
  warmupSteps: 1,
  wasmThreads: null,
  data: null,
  peer: false,
  peerScript: "../shared/peer/article_torch.py",
  peerThreads: globalThis.navigator?.hardwareConcurrency ?? 1,
  profile: false,
  seed: 0,
  runs: 1,
  sgemmSize: 2048,
});

/**
 * The machine's SGEMM speed, measured by the native library (`checkedNative.sgemmGflops`):
 * the most float32 arithmetic per second a convolution lowered to GEMMs can hope for here.
 */
export interface SgemmLimit {
  /** m = n = k of the timed product (square and large, so packing and threading costs vanish). */
  size: number;
  /** Timed products per library; the best counts. */
  repeats: number;
  /** OpenBLAS's `cblas_sgemm` as the environment configures it (`OPENBLAS_*`); null: not measured. */
  openblasGflops: number | null;
  /** oneDNN's `dnnl_sgemm` (JIT for this CPU); null: not measured. */
  onednnGflops: number | null;
  /** The larger of the two; null when neither was measured. */
  limitGflops: number | null;
  /** Why a figure is missing, e.g. `native library without rn_sgemm_gflops`. */
  note?: string;
}

/** One whole measurement; `runs` makes several, and {@linkcode BenchResult} gives their medians. */
export interface BenchRun {
  /** Training images per second, batch making included. */
  trainImagesPerSecond: number;
  /** Mean wall time of one training step, batch making included. */
  trainMsPerStep: number;
  /** Inference (BatchNorm in inference mode) images per second, batch making excluded. */
  inferImagesPerSecond: number;
  /** Mean time to make one augmented, normalised batch and upload it. */
  dataMsPerBatch: number;
  /** Training FLOPs per image ({@linkcode BenchResult.flops}) x training images per second / 1e9. */
  trainGflops: number;
  /** Forward FLOPs per image x inference images per second / 1e9. */
  inferGflops: number;
  /** The SGEMM limit, measured in this run before the training steps. */
  sgemm: SgemmLimit;
  /** trainGflops / sgemm.limitGflops; null without a limit. */
  trainFractionOfSgemm: number | null;
  /** The peer's `train img/s` on the same machine, measured right after ours. */
  peerTrainImagesPerSecond?: number;
  /** trainImagesPerSecond / peerTrainImagesPerSecond. */
  ratio?: number;
  /** The peer model's inference images per second (`tools/peer_infer.py`), same batches. */
  peerInferImagesPerSecond?: number;
  /** inferImagesPerSecond / peerInferImagesPerSecond. */
  inferRatio?: number;
}

/** The machine, with what decides its SGEMM speed. */
export interface BenchMachine extends MachineInfo {
  /** The CPU's SIMD flags that matter here (`CPU_FLAGS` in `lib/report/machine.ts`). */
  cpuFlags: string[] | null;
  /** `OPENBLAS_CORETYPE` and `OPENBLAS_L2_SIZE` as the environment sets them (null: unset). */
  openblas: Record<string, string | null>;
}

/**
 * What {@linkcode runBench} returns and `deno task bench` prints as one JSON line: every figure
 * of {@linkcode BenchRun} is the median over `runs` (each ratio the median of the runs' ratios,
 * not a ratio of medians), and `runs` lists each run.
 */
export interface BenchResult extends BenchRun {
  backend: string;
  /** Threads the backend computed on (wasm pool size; 1 for cpu; 0 for webgpu). */
  threads: number;
  width: number;
  batchSize: number;
  steps: number;
  warmupSteps: number;
  /** `cifar-10` (real augmented batches) or `synthetic`. */
  data: "cifar-10" | "synthetic";
  backendDetail: string;
  /** FLOPs per image of the model measured: 2 per conv or dense multiply-add (`lib/report/flops.ts`). */
  flops: {
    /** A forward pass (inference). */
    forwardGflopPerImage: number;
    /** A training step: forward, weight and input gradients, no input gradient at the stem. */
    trainGflopPerImage: number;
    /** Batch norm, biases, ReLUs, adds, pooling of a forward pass: in no GFLOP/s figure. */
    forwardElementwiseGopPerImage: number;
  };
  /**
   * Memory after the last run's timed steps: live tensors, their bytes, the bytes the backend
   * holds on the GPU (webgpu: its buffer pool included), and the process's resident set.
   */
  memory: { numTensors: number; tensorMB: number; gpuMB?: number; rssMB: number };
  machine: BenchMachine;
  /** Each run's figures, in order. */
  runs: BenchRun[];
  /** Milliseconds per kernel in one training step of the last run, largest first (with `profile`). */
  profileMs?: Record<string, number>;
}

const MB = 2 ** 20;

function memoryAfterTraining(): BenchResult["memory"] {
  const info = tf.memory() as tf.MemoryInfo & { numBytesAllocatedInGPU?: number };
  return {
    numTensors: info.numTensors,
    tensorMB: round(info.numBytes / MB, 1),
    ...(info.numBytesAllocatedInGPU === undefined
      ? {}
      : { gpuMB: round(info.numBytesAllocatedInGPU / MB, 1) }),
    rssMB: round(Deno.memoryUsage().rss / MB, 1),
  };
}

/**
 * Uniformly random images and labels, for a bench without the archive:
 * the timing of a step does not depend on what the pixels are.
 *
 * @param count Number of images.
 * @param seed Seeds the pixels and labels.
 * @returns A split of `count` NHWC uint8 images.
 */
export function randomSplit(count: number, seed: number): Split {
  const rng = new Rng(seed);
  const images = new Uint8Array(count * IMAGE_BYTES);
  for (let i = 0; i < images.length; i++) images[i] = rng.int(256);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) labels[i] = rng.int(NUM_CLASSES);
  return { images, labels, count };
}

/** Runs the peer's own code up to its training loop, then times inference (PyTorch). */
export const PEER_INFER_SCRIPT = new URL("../../tools/peer_infer.py", import.meta.url).pathname;

/**
 * Runs the PyTorch peer's step timing and reads its `train img/s X` line, or,
 * with `mode` "infer", times the peer's model in inference through
 * {@linkcode PEER_INFER_SCRIPT} and reads its `infer img/s X` line.
 *
 * @param options Archive, width, batch size, steps, the script and its threads.
 * @param mode What to time. @default "train"
 * @returns The peer's images per second.
 * @throws {Error} If it exits non-zero or prints no such line (with its stderr).
 */
export async function runPeer(
  options: Pick<BenchOptions, "width" | "batchSize" | "steps" | "peerScript" | "peerThreads"> & {
    archive: string;
  },
  mode: "train" | "infer" = "train",
): Promise<number> {
  const args = [
    ...(mode === "infer" ? [PEER_INFER_SCRIPT] : []),
    options.peerScript,
    options.archive,
    "--width",
    String(options.width),
    "--bench-steps",
    String(options.steps),
    "--threads",
    String(options.peerThreads),
    "--batch",
    String(options.batchSize),
  ];
  const out = await new Deno.Command(PEER_PYTHON, { args, stdout: "piped", stderr: "piped" })
    .output();
  const stdout = new TextDecoder().decode(out.stdout);
  const match = new RegExp(`^${mode} img/s ([\\d.]+)$`, "m").exec(stdout);
  if (!out.success || match === null) {
    const stderr = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" | ");
    throw new Error(
      `Expected the peer (${PEER_PYTHON} ${args.join(" ")}) to print "${mode} img/s X" but it ` +
        `exited with ${out.code} and printed ${JSON.stringify(stdout.trim())}; stderr: ${stderr}`,
    );
  }
  return Number(match[1]);
}

/**
 * `/proc/cpuinfo`'s text, or null where it cannot be had. Deno 2 lets only `--allow-all` read
 * `/proc`, so under the bench's permissions it comes through the one program the bench may run,
 * the peer's interpreter.
 */
export async function readCpuinfo(): Promise<string | null> {
  try {
    return await Deno.readTextFile("/proc/cpuinfo");
  } catch {
    // NotCapable (or not Linux): ask the interpreter below.
  }
  const runnable = Deno.permissions.querySync({ name: "run", command: PEER_PYTHON }).state;
  if (runnable !== "granted") return null;
  try {
    const out = await new Deno.Command(PEER_PYTHON, {
      args: ["-c", "import sys; sys.stdout.write(open('/proc/cpuinfo').read())"],
      stdout: "piped",
      stderr: "null",
    }).output();
    return out.success ? new TextDecoder().decode(out.stdout) : null;
  } catch {
    return null; // No interpreter here.
  }
}

/** Kernel name to milliseconds, summed over one training step, largest first. */
async function profileStep(
  step: () => Promise<unknown>,
): Promise<Record<string, number>> {
  const info = await tf.profile(step as () => Promise<tf.Tensor>);
  const byKernel = new Map<string, number>();
  for (const kernel of info.kernels) {
    const ms = typeof kernel.kernelTimeMs === "number" ? kernel.kernelTimeMs : 0;
    byKernel.set(kernel.name, (byKernel.get(kernel.name) ?? 0) + ms);
  }
  return Object.fromEntries(
    [...byKernel].sort((a, b) => b[1] - a[1]).map(([name, ms]) => [name, Math.round(ms)]),
  );
}

const round = (x: number, digits: number) => Number(x.toFixed(digits));
/** Four significant digits: GFLOP/s range from 0.01 (width 1) to hundreds. */
const significant = (x: number) => Number(x.toPrecision(4));

/**
 * The native library's SGEMM timer (being added to `lib/backends/native/kernels.ts`):
 * best GFLOP/s of `repeats` products of m x k by k x n; `library` 0 is OpenBLAS, 1 oneDNN.
 */
export type SgemmGflops = (
  m: number,
  n: number,
  k: number,
  library: number,
  repeats: number,
) => number;

/** Timed products per library in {@linkcode measureSgemm}. */
export const SGEMM_REPEATS = 3;

/** The libraries {@linkcode measureSgemm} times, by the `library` number the C side takes. */
const SGEMM_LIBRARIES = [
  { field: "openblasGflops", library: 0, name: "OpenBLAS" },
  { field: "onednnGflops", library: 1, name: "oneDNN" },
] as const;

/** The native library's SGEMM timer, or why there is none. */
export function nativeSgemm(): SgemmGflops | string {
  try {
    loadNativeLibrary();
  } catch (error) {
    return `unavailable (${(error as Error).message})`;
  }
  // Typed as optional: the bench runs against a library built before the timer existed too.
  const timer = (checkedNative as { sgemmGflops?: SgemmGflops }).sgemmGflops;
  if (typeof timer !== "function") return "unavailable (native library without rn_sgemm_gflops)";
  return timer.bind(checkedNative);
}

/**
 * Measures the machine's SGEMM limit: the best of `repeats` square products of `size` with
 * each library, and the larger of the two.
 *
 * @param size m = n = k.
 * @param timer The timer ({@linkcode nativeSgemm}'s), or why there is none (then the note).
 * @param repeats Products per library. @default SGEMM_REPEATS
 * @returns Each library's GFLOP/s (null where it failed, with the reason in `note`) and the limit.
 *
 * @example
 * ```ts
 * import { measureSgemm } from "./bench.ts";
 * const fake = (_m: number, _n: number, _k: number, library: number) => library === 0 ? 90 : 150;
 * console.log(measureSgemm(512, fake).limitGflops); // 150
 * ```
 */
export function measureSgemm(
  size: number,
  timer: SgemmGflops | string,
  repeats: number = SGEMM_REPEATS,
): SgemmLimit {
  const result: SgemmLimit = {
    size,
    repeats,
    openblasGflops: null,
    onednnGflops: null,
    limitGflops: null,
  };
  if (typeof timer === "string") return { ...result, note: timer };
  if (!Number.isInteger(size) || size < 1) {
    throw new RangeError(`Expected the SGEMM size to be an integer >= 1 but found ${size}`);
  }
  const notes: string[] = [];
  for (const { field, library, name } of SGEMM_LIBRARIES) {
    try {
      const gflops = timer(size, size, size, library, repeats);
      if (!Number.isFinite(gflops) || gflops <= 0) {
        throw new Error(`expected a positive GFLOP/s but found ${gflops}`);
      }
      result[field] = significant(gflops);
    } catch (error) {
      notes.push(`${name}: ${(error as Error).message}`);
    }
  }
  const measured = [result.openblasGflops, result.onednnGflops].filter((g) => g !== null);
  if (measured.length > 0) result.limitGflops = Math.max(...measured);
  return notes.length > 0 ? { ...result, note: notes.join("; ") } : result;
}

/**
 * The median: the middle value, or the mean of the two middle ones.
 *
 * @example
 * ```ts
 * import { median } from "./bench.ts";
 * console.log(median([3, 1, 2]), median([4, 1, 2, 3])); // 2 2.5
 * ```
 */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError("Expected at least one value but found none");
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** The median of a field over the runs that have it, rounded; undefined if none has it. */
function medianOf(runs: readonly BenchRun[], pick: (run: BenchRun) => number | null | undefined) {
  const values = runs.map(pick).filter((v): v is number => typeof v === "number");
  // Three decimals: a single run's median is its figure, unchanged.
  return values.length === 0 ? undefined : round(median(values), 3);
}

/** Each figure of {@linkcode BenchRun} as the median over `runs` (ratios: of the runs' ratios). */
export function medianRun(runs: readonly BenchRun[]): BenchRun {
  const of = (pick: (run: BenchRun) => number | null | undefined) => medianOf(runs, pick);
  const notes = [...new Set(runs.map((r) => r.sgemm.note).filter((n) => n !== undefined))];
  const sgemm: SgemmLimit = {
    size: runs[0].sgemm.size,
    repeats: runs[0].sgemm.repeats,
    openblasGflops: of((r) => r.sgemm.openblasGflops) ?? null,
    onednnGflops: of((r) => r.sgemm.onednnGflops) ?? null,
    limitGflops: of((r) => r.sgemm.limitGflops) ?? null,
    ...(notes.length > 0 ? { note: notes.join("; ") } : {}),
  };
  const optional = {
    peerTrainImagesPerSecond: of((r) => r.peerTrainImagesPerSecond),
    ratio: of((r) => r.ratio),
    peerInferImagesPerSecond: of((r) => r.peerInferImagesPerSecond),
    inferRatio: of((r) => r.inferRatio),
  };
  return {
    trainImagesPerSecond: of((r) => r.trainImagesPerSecond)!,
    trainMsPerStep: of((r) => r.trainMsPerStep)!,
    inferImagesPerSecond: of((r) => r.inferImagesPerSecond)!,
    dataMsPerBatch: of((r) => r.dataMsPerBatch)!,
    trainGflops: of((r) => r.trainGflops)!,
    inferGflops: of((r) => r.inferGflops)!,
    sgemm,
    trainFractionOfSgemm: of((r) => r.trainFractionOfSgemm) ?? null,
    ...Object.fromEntries(Object.entries(optional).filter(([, v]) => v !== undefined)),
  };
}

/**
 * One run as a line for a reader: speeds, GFLOP/s, the SGEMM limit and the fraction of it, the
 * peer and the ratios.
 *
 * @example
 * ```ts
 * import { formatRun } from "./bench.ts";
 * const sgemm = { size: 2048, repeats: 3, openblasGflops: 300, onednnGflops: 400, limitGflops: 400 };
 * console.log(formatRun({
 *   trainImagesPerSecond: 36, trainMsPerStep: 1778, inferImagesPerSecond: 113, dataMsPerBatch: 4,
 *   trainGflops: 119.8, inferGflops: 125.5, sgemm, trainFractionOfSgemm: 0.3,
 * }));
 * // train 36 img/s = 119.8 GFLOP/s (0.3 of SGEMM 400: OpenBLAS 300, oneDNN 400), infer 113 img/s = 125.5 GFLOP/s
 * ```
 */
export function formatRun(run: BenchRun): string {
  const { sgemm } = run;
  const limit = sgemm.limitGflops === null
    ? `SGEMM ${sgemm.note ?? "not measured"}`
    : `${run.trainFractionOfSgemm} of SGEMM ${sgemm.limitGflops}: OpenBLAS ` +
      `${sgemm.openblasGflops ?? "-"}, oneDNN ${sgemm.onednnGflops ?? "-"}`;
  let line = `train ${run.trainImagesPerSecond} img/s = ${run.trainGflops} GFLOP/s (${limit}), ` +
    `infer ${run.inferImagesPerSecond} img/s = ${run.inferGflops} GFLOP/s`;
  if (run.peerTrainImagesPerSecond !== undefined) {
    line += `; peer ${run.peerTrainImagesPerSecond} / ${run.peerInferImagesPerSecond} img/s, ` +
      `ratios ${run.ratio} / ${run.inferRatio}`;
  }
  return line;
}

/** What every run of one bench shares: the backend, the data, the options. */
interface BenchContext {
  options: BenchOptions;
  split: Split;
  /** Images in the warm-up and timed steps. */
  images: number;
  log: (message: string) => void;
}

/** Augmented batches in a seeded order, and the time spent making them. */
function batchSource(split: Split, options: Pick<BenchOptions, "batchSize" | "seed">) {
  const rng = new Rng(options.seed);
  const order = new Uint32Array(split.count).map((_, i) => i);
  rng.shuffle(order);
  let next = 0;
  let dataMs = 0;
  return {
    batch(augment: boolean) {
      if (next + options.batchSize > order.length) next = 0;
      next += options.batchSize;
      const start = performance.now();
      const batch = makeBatch(split, order.subarray(next - options.batchSize, next), {
        augment,
        rng,
      });
      dataMs += performance.now() - start;
      return batch;
    },
    /** Milliseconds spent in `batch` since the last call. */
    takeDataMs() {
      const ms = dataMs;
      dataMs = 0;
      return ms;
    },
  };
}

/** Milliseconds of `steps` inference batches after `warmupSteps` untimed ones. */
async function timeInference(
  model: tf.LayersModel,
  split: Split,
  images: number,
  options: Pick<BenchOptions, "batchSize" | "warmupSteps">,
): Promise<number> {
  const count = Math.min(images, split.count);
  const subset: Split = {
    images: split.images.subarray(0, count * IMAGE_BYTES),
    labels: split.labels.subarray(0, count),
    count,
  };
  let inferMs = 0;
  let batch = 0;
  for await (
    const { inferMs: ms } of inferBatches(model, subset, { batchSize: options.batchSize })
  ) {
    if (batch++ >= options.warmupSteps) inferMs += ms;
  }
  return inferMs;
}

/** What one run measured, and what the result reports from the last run only. */
interface RunOutcome {
  run: BenchRun;
  flops: ModelFlops;
  memory: BenchResult["memory"];
  profileMs?: Record<string, number>;
}

/**
 * One whole measurement: the SGEMM limit, then `warmupSteps` + `steps` training steps of a
 * fresh model, `steps` inference batches, optionally a profiled step, then the peer.
 */
async function benchRun(context: BenchContext, label: string): Promise<RunOutcome> {
  const { options, split, images, log } = context;
  if (options.sgemmSize > 0) {
    log(`bench: ${label}SGEMM ${options.sgemmSize}^3, best of ${SGEMM_REPEATS} per library`);
  }
  const sgemm = measureSgemm(
    options.sgemmSize,
    options.sgemmSize === 0 ? "not measured (sgemmSize 0)" : nativeSgemm(),
  );
  const batches = batchSource(split, options);
  const model = resnet18({ width: options.width, seed: options.seed });
  const optimizer = createOptimizer({ learningRate: 0.001 });
  const step = async () => {
    const { x, y } = batches.batch(true);
    try {
      return await trainStep(model, optimizer, x, y);
    } finally {
      tf.dispose([x, y]);
    }
  };
  try {
    const flops = countFlops(model);
    log(`bench: ${label}${options.warmupSteps} warm-up and ${options.steps} timed training steps`);
    for (let i = 0; i < options.warmupSteps; i++) await step();
    batches.takeDataMs();
    const trainStart = performance.now();
    for (let i = 0; i < options.steps; i++) await step();
    const trainMs = performance.now() - trainStart;
    const dataMsPerBatch = batches.takeDataMs() / options.steps;
    const memory = memoryAfterTraining();

    log(`bench: ${label}${options.steps} inference batches`);
    const inferMs = await timeInference(model, split, images, options);
    const timedImages = options.steps * options.batchSize;
    const trainImagesPerSecond = timedImages / (trainMs / 1000);
    const inferImagesPerSecond = timedImages / (inferMs / 1000);
    const trainGflops = trainImagesPerSecond * flops.trainFlops / 1e9;
    const run: BenchRun = {
      trainImagesPerSecond: round(trainImagesPerSecond, 2),
      trainMsPerStep: round(trainMs / options.steps, 1),
      inferImagesPerSecond: round(inferImagesPerSecond, 2),
      dataMsPerBatch: round(dataMsPerBatch, 2),
      trainGflops: significant(trainGflops),
      inferGflops: significant(inferImagesPerSecond * flops.forwardFlops / 1e9),
      sgemm,
      trainFractionOfSgemm: sgemm.limitGflops === null
        ? null
        : round(trainGflops / sgemm.limitGflops, 3),
    };
    let profileMs: Record<string, number> | undefined;
    if (options.profile) {
      log(`bench: ${label}profiling one training step`);
      profileMs = await profileStep(step);
    }
    if (options.peer && options.data !== null) {
      log(`bench: ${label}running the peer ${options.peerScript}`);
      Object.assign(run, await peerFigures(run, { ...options, archive: options.data }));
    }
    return { run, flops, memory, profileMs };
  } finally {
    model.dispose();
    optimizer.dispose();
  }
}

/** The peer's training and inference speeds, right after ours, and our ratios to them. */
async function peerFigures(
  ours: BenchRun,
  options: Parameters<typeof runPeer>[0],
): Promise<Partial<BenchRun>> {
  const peerTrain = await runPeer(options);
  const peerInfer = await runPeer(options, "infer");
  return {
    peerTrainImagesPerSecond: peerTrain,
    ratio: round(ours.trainImagesPerSecond / peerTrain, 3),
    peerInferImagesPerSecond: peerInfer,
    inferRatio: round(ours.inferImagesPerSecond / peerInfer, 3),
  };
}

/**
 * Times `steps` training steps and `steps` inference batches of ResNet-18
 * after `warmupSteps` untimed steps, beside the machine's SGEMM limit, and,
 * with `peer`, the PyTorch peer; all of it `runs` times.
 *
 * @param options What to measure; see {@linkcode BenchOptions}.
 * @param log Progress lines (loading data, which phase runs, each run's figures), for stderr.
 * @returns The medians, each run, the model's FLOPs, the backend and the machine.
 *
 * @example
 * ```ts ignore
 * import { DEFAULT_BENCH_OPTIONS, runBench } from "./bench.ts";
 * const result = await runBench({ ...DEFAULT_BENCH_OPTIONS, width: 4, steps: 1 });
 * console.log(JSON.stringify(result));
 * ```
 */
export async function runBench(
  options: BenchOptions,
  log: (message: string) => void = () => {},
): Promise<BenchResult> {
  const backend = await initBackend(options.backend, {
    log,
    wasmThreads: options.wasmThreads ?? undefined,
  });
  const images = (options.warmupSteps + options.steps) * options.batchSize;
  const split = options.data === null
    ? randomSplit(images, options.seed)
    : (await loadCifar10({ source: options.data, log })).train;
  const cpuinfo = await readCpuinfo() ?? "";
  const context: BenchContext = { options, split, images, log };
  const runs: BenchRun[] = [];
  let last: RunOutcome | undefined;
  for (let i = 0; i < options.runs; i++) {
    const label = options.runs === 1 ? "" : `run ${i + 1}/${options.runs}: `;
    last = await benchRun(context, label);
    runs.push(last.run);
    log(`bench: ${label}${formatRun(last.run)}`);
  }
  // runs >= 1 (the flag's minimum), so the loop ran.
  const { flops, memory, profileMs } = last!;
  const summary = medianRun(runs);
  if (options.runs > 1) log(`bench: median of ${options.runs} runs: ${formatRun(summary)}`);
  return {
    backend: backend.name,
    threads: backend.threads,
    width: options.width,
    batchSize: options.batchSize,
    steps: options.steps,
    warmupSteps: options.warmupSteps,
    data: options.data === null ? "synthetic" : "cifar-10",
    ...summary,
    backendDetail: backend.detail,
    flops: {
      forwardGflopPerImage: significant(flops.forwardFlops / 1e9),
      trainGflopPerImage: significant(flops.trainFlops / 1e9),
      forwardElementwiseGopPerImage: significant(flops.forwardElementwiseOps / 1e9),
    },
    memory,
    machine: { ...machineInfo(), cpuFlags: parseCpuFlags(cpuinfo), openblas: openblasSettings() },
    runs,
    ...(profileMs === undefined ? {} : { profileMs }),
  };
}
