/**
 * Command-line parsing for `deno task train`: every flag is checked before anything starts,
 * and a bad one is a one-line {@linkcode UsageError} naming the flag.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { makeConfig, type PresetName, PRESETS, type TrainConfig } from "../train/config.ts";

/** A flag or value the trainer did not understand. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * Turns a `node:util` `parseArgs` error into a one-line {@linkcode UsageError}: its messages are
 * long and mention internals, so keep the part that names the flag (`--width: argument missing`).
 */
export function flagError(error: unknown): UsageError {
  const message = (error as Error).message.split("\n")[0].split(". ")[0];
  return new UsageError(message.replace(/^Option '(--[\w-]+)[^']*'/, "$1:"));
}

/** `deno task train --help`. */
export const TRAIN_USAGE =
  `Train the article's ResNet-18 on CIFAR-10 (defaults: the article's settings).

Usage: deno task train [flags]

  --preset NAME       article | fast; flags below override it  (default article)
                      fast: width 16, batch 128, 5 epochs, lr 0.004 one-cycle,
                      label smoothing 0.1, crop padding 2, test-time flip
                      (accuracy per minute on a CPU)
  --epochs N          passes over the training set            (default 10)
  --batch-size N      images per Adam step                    (default 64)
  --lr X              Adam learning rate (one-cycle: its peak) (default 0.001)
  --lr-schedule NAME  constant | onecycle                      (default constant)
  --label-smoothing X 0 <= X < 1                               (default 0)
  --test-time-flip    score test images and their mirror images (default off)
  --crop-padding N    training crops shift by up to N pixels   (default 4)
  --width N           ResNet-18 stem width; 64 is the article (default 64)
  --train-limit N     class-balanced subset of the 50,000 training images
  --test-limit N      class-balanced subset of the 10,000 test images
  --seed N            weights, subset, shuffling, augmentation (default 0)
  --backend NAME      cpu | wasm | native | webgpu | auto      (default auto)
  --data PATH|URL     CIFAR-10 folder, .tar.gz archive, or URL (default: download to ./data)
  --md5 HEX           checksum of the archive at a --data URL
  --out DIR           run folder                               (default runs/<date-time>)
  --resume            continue the run in --out from its last checkpoint
  --help              this text
`;

/** What the trainer was asked to do. */
export interface TrainArgs {
  config: TrainConfig;
  /**
   * Only the fields given as flags, a preset's included (a resumed run takes the
   * rest from its run folder).
   */
  overrides: Partial<TrainConfig>;
  /** Folder, archive or URL; null = download the official archive into ./data. */
  data: string | null;
  md5: string | null;
  out: string;
  resume: boolean;
  help: boolean;
}

const INT_FLAGS = {
  epochs: "epochs",
  "batch-size": "batchSize",
  width: "width",
  "train-limit": "trainLimit",
  "test-limit": "testLimit",
  seed: "seed",
  "crop-padding": "cropPadding",
} as const;

function parseNumber(flag: string, value: string, integer: boolean): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new UsageError(
      `--${flag}: expected ${integer ? "an integer" : "a number"} but found "${value}"`,
    );
  }
  return n;
}

function timestamp(date: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}${p(date.getMonth() + 1)}${p(date.getDate())}-${p(date.getHours())}${
    p(date.getMinutes())
  }${p(date.getSeconds())}`;
}

/**
 * Parses and validates the trainer's flags.
 *
 * @throws {UsageError} for an unknown flag, a missing or malformed value, or a value out of range.
 *
 * @example
 * ```ts
 * import { parseTrainArgs } from "./flags.ts";
 * console.log(parseTrainArgs(["--width", "16"]).config.width); // 16
 * ```
 */
export function parseTrainArgs(args: string[], now = new Date()): TrainArgs {
  // node:util reads `--width -4` as a flag without its value; a negative number is a value.
  const joined = args.flatMap((a, i) =>
    /^-\d/.test(a) && args[i - 1]?.startsWith("--")
      ? []
      : /^--/.test(a) && /^-\d/.test(args[i + 1] ?? "")
      ? [`${a}=${args[i + 1]}`]
      : [a]
  );
  let parsed;
  try {
    parsed = parseArgs({
      args: joined,
      strict: true,
      allowPositionals: false,
      options: {
        epochs: { type: "string" },
        "batch-size": { type: "string" },
        lr: { type: "string" },
        "lr-schedule": { type: "string" },
        "label-smoothing": { type: "string" },
        preset: { type: "string" },
        width: { type: "string" },
        "train-limit": { type: "string" },
        "test-limit": { type: "string" },
        "crop-padding": { type: "string" },
        seed: { type: "string" },
        backend: { type: "string" },
        data: { type: "string" },
        md5: { type: "string" },
        out: { type: "string" },
        "test-time-flip": { type: "boolean" },
        resume: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    throw flagError(error);
  }
  const v = parsed.values;
  if (v.preset !== undefined && !Object.hasOwn(PRESETS, v.preset)) {
    throw new UsageError(
      `--preset: expected one of ${Object.keys(PRESETS).join(", ")} but found "${v.preset}"`,
    );
  }
  const partial: Partial<TrainConfig> = { ...PRESETS[(v.preset ?? "article") as PresetName] };
  for (const [flag, key] of Object.entries(INT_FLAGS)) {
    const value = v[flag as keyof typeof INT_FLAGS];
    if (value !== undefined) partial[key] = parseNumber(flag, value, true);
  }
  if (v.lr !== undefined) partial.learningRate = parseNumber("lr", v.lr, false);
  if (v.backend !== undefined) partial.backend = v.backend as TrainConfig["backend"];
  if (v["lr-schedule"] !== undefined) {
    partial.lrSchedule = v["lr-schedule"] as TrainConfig["lrSchedule"];
  }
  if (v["label-smoothing"] !== undefined) {
    partial.labelSmoothing = parseNumber("label-smoothing", v["label-smoothing"], false);
  }
  if (v["test-time-flip"] !== undefined) partial.testTimeFlip = v["test-time-flip"];
  let config: TrainConfig;
  try {
    config = makeConfig(partial);
  } catch (error) {
    const flag = Object.entries({
      ...INT_FLAGS,
      lr: "learningRate",
      backend: "backend",
      "lr-schedule": "lrSchedule",
      "label-smoothing": "labelSmoothing",
    })
      .find(([, key]) => (error as Error).message.startsWith(`Expected ${key} `))?.[0];
    throw new UsageError(`--${flag}: ${(error as Error).message}`);
  }
  if (v.resume && v.out === undefined) {
    throw new UsageError("--resume: expected --out naming the run folder to continue");
  }
  if (v.md5 !== undefined && !/^[0-9a-f]{32}$/i.test(v.md5)) {
    throw new UsageError(`--md5: expected 32 hexadecimal digits but found "${v.md5}"`);
  }
  if (v.md5 !== undefined && !/^https?:\/\//.test(v.data ?? "")) {
    throw new UsageError("--md5: expected together with an http(s) URL in --data");
  }
  return {
    config,
    overrides: partial,
    data: v.data ?? null,
    md5: v.md5 ?? null,
    out: v.out ?? `runs/${timestamp(now)}`,
    resume: v.resume ?? false,
    help: v.help ?? false,
  };
}

/**
 * Runs an entry point's `main` and exits with its code: a {@linkcode UsageError} exits 2 with
 * one line pointing at `--help`, any other error exits 1 with its message (no stack trace).
 */
export async function runMain(main: (args: string[]) => Promise<number>): Promise<never> {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`error: ${error.message} (see --help)`);
      Deno.exit(2);
    }
    console.error(`error: ${(error as Error).message}`);
    Deno.exit(1);
  }
}
