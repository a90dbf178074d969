/**
 * `deno task bench`'s flags, checked into the {@linkcode BenchOptions} that `runBench`
 * (`lib/report/bench.ts`) measures with.
 *
 * @module
 */
import { fieldValues, type FlagTable, formatFlags, parseFlags } from "./flags.ts";
import { UsageError } from "./run_main.ts";
import { type BenchOptions, DEFAULT_BENCH_OPTIONS } from "../report/bench.ts";
import { MAX_WASM_THREADS } from "../backends/wasm/threads.ts";
import { BACKEND_NAMES } from "../train/config.ts";

/** The bench's flags; defaults shown are {@linkcode DEFAULT_BENCH_OPTIONS}'s. */
export const BENCH_FLAGS = {
  backend: {
    kind: "choice",
    value: "NAME",
    choices: BACKEND_NAMES,
    field: "backend",
    default: DEFAULT_BENCH_OPTIONS.backend,
    help: BACKEND_NAMES.join(" | "),
  },
  width: {
    kind: "int",
    value: "N",
    min: 1,
    field: "width",
    default: String(DEFAULT_BENCH_OPTIONS.width),
    help: "ResNet-18 stem width; 64 is the article",
  },
  "batch-size": {
    kind: "int",
    value: "N",
    min: 1,
    field: "batchSize",
    default: String(DEFAULT_BENCH_OPTIONS.batchSize),
    help: "images per step",
  },
  steps: {
    kind: "int",
    value: "N",
    min: 1,
    field: "steps",
    default: String(DEFAULT_BENCH_OPTIONS.steps),
    help: "timed steps (after the warm-up)",
  },
  warmup: {
    kind: "int",
    value: "N",
    min: 0,
    field: "warmupSteps",
    default: String(DEFAULT_BENCH_OPTIONS.warmupSteps),
    help: "untimed steps first",
  },
  threads: {
    kind: "int",
    value: "N",
    min: 1,
    max: MAX_WASM_THREADS,
    field: "wasmThreads",
    default: "one per core",
    help: `wasm threads, 1..${MAX_WASM_THREADS}`,
  },
  data: {
    kind: "string",
    value: "PATH",
    field: "data",
    default: "synthetic images",
    help: "CIFAR-10 folder or .tar.gz",
  },
  peer: {
    kind: "boolean",
    field: "peer",
    help: "also run the PyTorch peer on --data (a .tar.gz) and add the ratio",
  },
  "peer-script": {
    kind: "string",
    value: "PATH",
    field: "peerScript",
    default: DEFAULT_BENCH_OPTIONS.peerScript,
    help: "the peer",
  },
  "peer-threads": {
    kind: "int",
    value: "N",
    min: 1,
    field: "peerThreads",
    default: "one per core",
    help: "the peer's torch threads",
  },
  profile: {
    kind: "boolean",
    field: "profile",
    help: "add per-kernel milliseconds of one training step",
  },
  seed: {
    kind: "int",
    value: "N",
    min: 0,
    field: "seed",
    default: String(DEFAULT_BENCH_OPTIONS.seed),
    help: "weights, order, augmentation",
  },
  runs: {
    kind: "int",
    value: "N",
    min: 1,
    field: "runs",
    default: String(DEFAULT_BENCH_OPTIONS.runs),
    help: "measure N times, peer too; medians",
  },
  "sgemm-size": {
    kind: "int",
    value: "N",
    min: 0,
    field: "sgemmSize",
    default: String(DEFAULT_BENCH_OPTIONS.sgemmSize),
    help: "SGEMM m = n = k for the limit; 0 skips",
  },
} satisfies FlagTable<keyof BenchOptions>;

/** `deno task bench --help`. */
export const BENCH_USAGE =
  `Time training steps and inference of the article's ResNet-18, as images and GFLOP/s beside
the machine's SGEMM limit; print one JSON line (a summary of each run goes to stderr).

Usage: deno task bench [flags]

${formatFlags(BENCH_FLAGS)}`;

/**
 * Parses and checks `deno task bench`'s flags.
 *
 * @param args The command line after the script name.
 * @returns The options, or `null` for `--help`.
 * @throws {UsageError} Naming the flag, for an unknown flag or a bad value.
 *
 * @example
 * ```ts
 * import { parseBenchArgs } from "./bench_args.ts";
 * console.log(parseBenchArgs(["--width", "16"])?.width); // 16
 * ```
 */
export function parseBenchArgs(args: string[]): BenchOptions | null {
  const parsed = parseFlags(BENCH_FLAGS, args);
  if (parsed === null) return null;
  // Each flag's kind is its field's type.
  const options = {
    ...DEFAULT_BENCH_OPTIONS,
    ...fieldValues(BENCH_FLAGS, parsed.values),
  } as BenchOptions;
  if (options.peer && !/\.tar\.gz$|\.tgz$/.test(options.data ?? "")) {
    throw new UsageError(
      `--peer: expected --data to name the CIFAR-10 .tar.gz archive the peer reads but found ${
        options.data === null ? "no --data" : `"${options.data}"`
      }`,
    );
  }
  return options;
}
