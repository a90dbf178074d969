/**
 * `deno task bench`: how fast the article's ResNet-18 trains and infers here,
 * on batches from the real data pipeline, optionally beside the PyTorch peer
 * run on the same machine in the same invocation.
 *
 * A training step is timed end to end as the article's loop runs it (and as
 * the peer times its own): make the augmented batch, forward, backward, Adam,
 * read the loss back. The batch-making part is also reported on its own.
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
import { type MachineInfo, machineInfo } from "./machine.ts";

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
});

/** One bench run: what {@linkcode runBench} returns and `deno task bench` prints as one JSON line. */
export interface BenchResult {
  backend: string;
  /** Threads the backend computed on (wasm pool size; 1 for cpu; 0 for webgpu). */
  threads: number;
  width: number;
  batchSize: number;
  steps: number;
  warmupSteps: number;
  /** `cifar-10` (real augmented batches) or `synthetic`. */
  data: "cifar-10" | "synthetic";
  /** Training images per second, batch making included. */
  trainImagesPerSecond: number;
  /** Mean wall time of one training step, batch making included. */
  trainMsPerStep: number;
  /** Inference (BatchNorm in inference mode) images per second, batch making excluded. */
  inferImagesPerSecond: number;
  /** Mean time to make one augmented, normalised batch and upload it. */
  dataMsPerBatch: number;
  backendDetail: string;
  /**
   * Memory after the timed steps: live tensors, their bytes, the bytes the backend holds on the
   * GPU (webgpu: its buffer pool included), and the process's resident set.
   */
  memory: { numTensors: number; tensorMB: number; gpuMB?: number; rssMB: number };
  machine: MachineInfo;
  /** The peer's `train img/s` on the same machine, measured right after ours. */
  peerTrainImagesPerSecond?: number;
  /** trainImagesPerSecond / peerTrainImagesPerSecond. */
  ratio?: number;
  /** The peer model's inference images per second (`tools/peer_infer.py`), same batches. */
  peerInferImagesPerSecond?: number;
  /** inferImagesPerSecond / peerInferImagesPerSecond. */
  inferRatio?: number;
  /** Milliseconds per kernel in one training step, largest first (with `profile`). */
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

/**
 * Times `steps` training steps and `steps` inference batches of ResNet-18
 * after `warmupSteps` untimed steps, and, with `peer`, the PyTorch peer.
 *
 * @param options What to measure; see {@linkcode BenchOptions}.
 * @param log Progress lines (loading data, which phase runs), for stderr.
 * @returns The measurements, the backend and the machine.
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
  const rng = new Rng(options.seed);
  const order = new Uint32Array(split.count).map((_, i) => i);
  rng.shuffle(order);
  let next = 0;
  const batchIndices = () => {
    if (next + options.batchSize > order.length) next = 0;
    next += options.batchSize;
    return order.subarray(next - options.batchSize, next);
  };
  let dataMs = 0;
  const nextBatch = (augment: boolean) => {
    const start = performance.now();
    const batch = makeBatch(split, batchIndices(), { augment, rng });
    dataMs += performance.now() - start;
    return batch;
  };

  const model = resnet18({ width: options.width, seed: options.seed });
  const optimizer = createOptimizer({ learningRate: 0.001 });
  const step = async () => {
    const { x, y } = nextBatch(true);
    try {
      return await trainStep(model, optimizer, x, y);
    } finally {
      tf.dispose([x, y]);
    }
  };
  try {
    log(`bench: ${options.warmupSteps} warm-up and ${options.steps} timed training steps`);
    for (let i = 0; i < options.warmupSteps; i++) await step();
    dataMs = 0;
    const trainStart = performance.now();
    for (let i = 0; i < options.steps; i++) await step();
    const trainMs = performance.now() - trainStart;
    const dataMsPerBatch = dataMs / options.steps;
    const memory = memoryAfterTraining();

    log(`bench: ${options.steps} inference batches`);
    let inferMs = 0;
    const inferImages = Math.min(images, split.count);
    const inferSplit: Split = {
      images: split.images.subarray(0, inferImages * IMAGE_BYTES),
      labels: split.labels.subarray(0, inferImages),
      count: inferImages,
    };
    let batch = 0;
    const batches = inferBatches(model, inferSplit, { batchSize: options.batchSize });
    for await (const { inferMs: ms } of batches) {
      if (batch++ >= options.warmupSteps) inferMs += ms;
    }
    const result: BenchResult = {
      backend: backend.name,
      threads: backend.threads,
      width: options.width,
      batchSize: options.batchSize,
      steps: options.steps,
      warmupSteps: options.warmupSteps,
      data: options.data === null ? "synthetic" : "cifar-10",
      trainImagesPerSecond: round(options.steps * options.batchSize / (trainMs / 1000), 2),
      trainMsPerStep: round(trainMs / options.steps, 1),
      inferImagesPerSecond: round(options.steps * options.batchSize / (inferMs / 1000), 2),
      dataMsPerBatch: round(dataMsPerBatch, 2),
      backendDetail: backend.detail,
      memory,
      machine: machineInfo(),
    };
    if (options.profile) {
      log("bench: profiling one training step");
      result.profileMs = await profileStep(step);
    }
    if (options.peer && options.data !== null) {
      log(`bench: running the peer ${options.peerScript}`);
      const peer = await runPeer({ ...options, archive: options.data });
      result.peerTrainImagesPerSecond = peer;
      result.ratio = round(result.trainImagesPerSecond / peer, 3);
      const peerInfer = await runPeer({ ...options, archive: options.data }, "infer");
      result.peerInferImagesPerSecond = peerInfer;
      result.inferRatio = round(result.inferImagesPerSecond / peerInfer, 3);
    }
    return result;
  } finally {
    model.dispose();
    optimizer.dispose();
  }
}
