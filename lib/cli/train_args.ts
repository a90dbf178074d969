/**
 * `deno task train`'s flags: every one is checked before anything starts, and a bad one is a
 * one-line {@linkcode UsageError} naming the flag. Ranges are {@linkcode makeConfig}'s: a
 * {@linkcode ConfigError} about a field is reported under the flag that sets it.
 *
 * @module
 */
import { fieldValues, flagForField, type FlagTable, formatFlags, parseFlags } from "./flags.ts";
import { UsageError } from "./run_main.ts";
import {
  BACKEND_NAMES,
  ConfigError,
  DEFAULT_CONFIG,
  LR_SCHEDULES,
  makeConfig,
  PRESET_NAMES,
  PRESETS,
  type TrainConfig,
} from "../train/config.ts";

/** Where CIFAR-10 comes from: the flags every task that loads it shares (train, experiment:depth). */
export const DATA_SOURCE_FLAGS = {
  data: {
    kind: "string",
    value: "PATH|URL",
    default: "download to ./data",
    help: "CIFAR-10 folder, .tar.gz archive, or URL",
  },
  md5: {
    kind: "string",
    value: "HEX",
    help: "md5 of the --data archive (a URL, or a local .tar.gz)",
  },
} as const satisfies FlagTable<never>;

/** The trainer's flags; defaults shown are {@linkcode DEFAULT_CONFIG}'s. */
export const TRAIN_FLAGS = {
  preset: {
    kind: "choice",
    value: "NAME",
    choices: PRESET_NAMES,
    default: "article",
    help: `${PRESET_NAMES.join(" | ")}; flags below override it
fast: width 16, batch 128, 9 epochs, lr 0.004 one-cycle,
label smoothing 0.1, crop padding 2, test-time flip
(accuracy per minute on a CPU)`,
  },
  epochs: {
    kind: "int",
    value: "N",
    field: "epochs",
    default: String(DEFAULT_CONFIG.epochs),
    help: "passes over the training set",
  },
  "batch-size": {
    kind: "int",
    value: "N",
    field: "batchSize",
    default: String(DEFAULT_CONFIG.batchSize),
    help: "images per Adam step",
  },
  lr: {
    kind: "number",
    value: "X",
    field: "learningRate",
    default: String(DEFAULT_CONFIG.learningRate),
    help: "Adam learning rate (one-cycle: its peak)",
  },
  "lr-schedule": {
    kind: "string",
    value: "NAME",
    field: "lrSchedule",
    default: DEFAULT_CONFIG.lrSchedule,
    help: LR_SCHEDULES.join(" | "),
  },
  "label-smoothing": {
    kind: "number",
    value: "X",
    field: "labelSmoothing",
    default: String(DEFAULT_CONFIG.labelSmoothing),
    help: "0 <= X < 1",
  },
  "test-time-flip": {
    kind: "boolean",
    field: "testTimeFlip",
    default: DEFAULT_CONFIG.testTimeFlip ? "on" : "off",
    help: "score test images and their mirror images",
  },
  "crop-padding": {
    kind: "int",
    value: "N",
    field: "cropPadding",
    default: String(DEFAULT_CONFIG.cropPadding),
    help: "training crops shift by up to N pixels",
  },
  arch: {
    kind: "string",
    value: "NAME",
    field: "arch",
    default: DEFAULT_CONFIG.arch,
    help: `network: resnet18 (the article), resnet34, or
resnet{6n+2}: He et al.'s CIFAR nets (resnet20, resnet56, ...);
plain18, plain20, ...: the same layers without shortcuts`,
  },
  width: {
    kind: "int",
    value: "N",
    field: "width",
    default: String(DEFAULT_CONFIG.width),
    help: `stem width; 64 is the article
(resnet{6n+2}, plain{6n+2}: 16 unless given)`,
  },
  "train-limit": {
    kind: "int",
    value: "N",
    field: "trainLimit",
    help: "class-balanced subset of the 50,000 training images",
  },
  "test-limit": {
    kind: "int",
    value: "N",
    field: "testLimit",
    help: "class-balanced subset of the 10,000 test images",
  },
  seed: {
    kind: "int",
    value: "N",
    field: "seed",
    default: String(DEFAULT_CONFIG.seed),
    help: "weights, subset, shuffling, augmentation",
  },
  backend: {
    kind: "string",
    value: "NAME",
    field: "backend",
    default: DEFAULT_CONFIG.backend,
    help: BACKEND_NAMES.join(" | "),
  },
  ...DATA_SOURCE_FLAGS,
  out: { kind: "string", value: "DIR", default: "runs/<date-time>", help: "run folder" },
  resume: { kind: "boolean", help: "continue the run in --out from its last checkpoint" },
  restart: {
    kind: "boolean",
    help: "delete the run in --out (its own files only) and start over",
  },
} satisfies FlagTable<keyof TrainConfig>;

/** `deno task train --help`. */
export const TRAIN_USAGE =
  `Train the article's ResNet-18 (or another --arch) on CIFAR-10 (defaults: the article's settings).

Usage: deno task train [flags]

${formatFlags(TRAIN_FLAGS)}`;

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
  /** The archive's checksum, for a `data` URL; null = the official archive's. */
  md5: string | null;
  /** The run folder. */
  out: string;
  /** Continue the run in `out` from its checkpoint. */
  resume: boolean;
  /** Delete the run in `out` and start over. */
  restart: boolean;
}

/**
 * Parses and validates the trainer's flags.
 *
 * @param args The command line after the script name.
 * @param now Names the default run folder (`runs/<date-time>`).
 * @returns What to do, or `null` for `--help`.
 * @throws {UsageError} for an unknown flag, a missing or malformed value, or a value out of range.
 *
 * @example
 * ```ts
 * import { parseTrainArgs } from "./train_args.ts";
 * console.log(parseTrainArgs(["--width", "16"])?.config.width); // 16
 * ```
 */
export function parseTrainArgs(args: string[], now: Date = new Date()): TrainArgs | null {
  const parsed = parseFlags(TRAIN_FLAGS, args);
  if (parsed === null) return null;
  const v = parsed.values;
  // The table's kinds match the fields' types but for the names (backend, lrSchedule), which
  // makeConfig checks.
  const overrides = {
    ...PRESETS[v.preset ?? "article"],
    ...fieldValues(TRAIN_FLAGS, v),
  } as Partial<TrainConfig>;
  const config = configFromFlags(overrides);
  if (v.resume && v.out === undefined) {
    throw new UsageError("--resume: expected --out naming the run folder to continue");
  }
  if (v.restart && v.out === undefined) {
    throw new UsageError("--restart: expected --out naming the run folder to start over");
  }
  if (v.restart && v.resume) {
    throw new UsageError("--restart: expected either --resume or --restart but found both");
  }
  if (v.md5 !== undefined && !/^[0-9a-f]{32}$/i.test(v.md5)) {
    throw new UsageError(`--md5: expected 32 hexadecimal digits but found "${v.md5}"`);
  }
  if (v.md5 !== undefined && v.data === undefined) {
    throw new UsageError("--md5: expected together with --data (the archive it checks)");
  }
  return {
    config,
    overrides,
    data: v.data ?? null,
    md5: v.md5 ?? null,
    out: v.out ?? `runs/${timestamp(now)}`,
    resume: v.resume ?? false,
    restart: v.restart ?? false,
  };
}

/** {@linkcode makeConfig}, with a bad field reported under its flag (`--lr: Expected ...`). */
function configFromFlags(partial: Partial<TrainConfig>): TrainConfig {
  try {
    return makeConfig(partial);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new UsageError(`--${flagForField(TRAIN_FLAGS, error.field)}: ${error.message}`);
  }
}

/** `20260102-030405`, local time: a run folder's default name. */
function timestamp(date: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}${p(date.getMonth() + 1)}${p(date.getDate())}-${p(date.getHours())}${
    p(date.getMinutes())
  }${p(date.getSeconds())}`;
}
