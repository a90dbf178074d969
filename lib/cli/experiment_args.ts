/**
 * `deno task experiment:depth`'s flags: every one is checked before anything starts, and a bad
 * one is a one-line {@linkcode UsageError} naming the flag. Ranges are
 * {@linkcode makeDepthConfig}'s: a {@linkcode DepthConfigError} about a field is reported under
 * the flag that sets it.
 *
 * @module
 */
import { fieldValues, flagForField, type FlagTable, formatFlags, parseFlags } from "./flags.ts";
import { UsageError } from "./run_main.ts";
import { DATA_SOURCE_FLAGS } from "./train_args.ts";
import {
  DEFAULT_DEPTH_CONFIG,
  type DepthConfig,
  DepthConfigError,
  makeDepthConfig,
} from "../experiment/depth.ts";
import { BACKEND_NAMES } from "../train/config.ts";

/** The experiment's flags; defaults shown are {@linkcode DEFAULT_DEPTH_CONFIG}'s. */
export const EXPERIMENT_FLAGS = {
  depths: {
    kind: "string",
    value: "LIST",
    field: "depths",
    default: DEFAULT_DEPTH_CONFIG.depths.join(","),
    help: "depths 6n+2, comma-separated; each as plain and ResNet",
  },
  epochs: {
    kind: "int",
    value: "N",
    field: "epochs",
    default: String(DEFAULT_DEPTH_CONFIG.epochs),
    help: "epochs of every net",
  },
  "train-limit": {
    kind: "int",
    value: "N",
    field: "trainLimit",
    default: String(DEFAULT_DEPTH_CONFIG.trainLimit),
    help: "class-balanced subset of the training images",
  },
  "test-limit": {
    kind: "int",
    value: "N",
    field: "testLimit",
    default: String(DEFAULT_DEPTH_CONFIG.testLimit),
    help: "class-balanced subset of the test images",
  },
  "train-eval-limit": {
    kind: "int",
    value: "N",
    field: "trainEvalLimit",
    default: String(DEFAULT_DEPTH_CONFIG.trainEvalLimit),
    help: `training images scored after each epoch
(the training error: un-augmented, inference mode)`,
  },
  width: {
    kind: "int",
    value: "N",
    field: "width",
    default: String(DEFAULT_DEPTH_CONFIG.width),
    help: "stem width (16, 32, 64 channels at 16)",
  },
  seed: {
    kind: "int",
    value: "N",
    field: "seed",
    default: String(DEFAULT_DEPTH_CONFIG.seed),
    help: "weights, subsets, shuffling, augmentation",
  },
  backend: {
    kind: "string",
    value: "NAME",
    field: "backend",
    default: DEFAULT_DEPTH_CONFIG.backend,
    help: BACKEND_NAMES.join(" | "),
  },
  ...DATA_SOURCE_FLAGS,
  out: { kind: "string", value: "DIR", default: "runs/depth", help: "experiment folder" },
  resume: { kind: "boolean", help: "continue the experiment in --out" },
  restart: {
    kind: "boolean",
    help: "delete the experiment in --out (its own files only) and start over",
  },
} satisfies FlagTable<keyof DepthConfig>;

/** `deno task experiment:depth --help`. */
export const EXPERIMENT_USAGE =
  `Train plain nets and ResNets of several depths on CIFAR-10 with one recipe, and plot their
training and test error per epoch (He et al. 2015, Fig. 6: shortcuts let deeper nets train).

Usage: deno task experiment:depth [flags]

${formatFlags(EXPERIMENT_FLAGS)}`;

/** What the experiment was asked to do. */
export interface ExperimentArgs {
  config: DepthConfig;
  /** Only the fields given as flags (a resumed experiment takes the rest from its folder). */
  overrides: Partial<DepthConfig>;
  /** Folder, archive or URL; null = download the official archive into ./data. */
  data: string | null;
  /** The archive's checksum, for a `data` URL; null = the official archive's. */
  md5: string | null;
  out: string;
  resume: boolean;
  restart: boolean;
}

/**
 * Parses and validates the experiment's flags.
 *
 * @param args The command line after the script name.
 * @returns What to do, or `null` for `--help`.
 * @throws {UsageError} for an unknown flag, a missing or malformed value, or a value out of range.
 *
 * @example
 * ```ts
 * import { parseExperimentArgs } from "./experiment_args.ts";
 * console.log(parseExperimentArgs(["--depths", "20,32"])?.config.depths); // [20, 32]
 * ```
 */
export function parseExperimentArgs(args: string[]): ExperimentArgs | null {
  const parsed = parseFlags(EXPERIMENT_FLAGS, args);
  if (parsed === null) return null;
  const v = parsed.values;
  const overrides = fieldValues(EXPERIMENT_FLAGS, v) as Partial<DepthConfig>;
  if (v.depths !== undefined) overrides.depths = parseDepths(v.depths);
  const config = depthConfigFromFlags(overrides);
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
    out: v.out ?? "runs/depth",
    resume: v.resume ?? false,
    restart: v.restart ?? false,
  };
}

/** `20,56` -> `[20, 56]`; the depths themselves are checked by {@linkcode makeDepthConfig}. */
function parseDepths(text: string): number[] {
  const parts = text.split(",").map((p) => p.trim());
  if (parts.some((p) => !/^\d+$/.test(p))) {
    throw new UsageError(
      `--depths: expected comma-separated integers such as 20,56 but found "${text}"`,
    );
  }
  return parts.map(Number);
}

/** {@linkcode makeDepthConfig}, with a bad field reported under its flag. */
export function depthConfigFromFlags(partial: Partial<DepthConfig>): DepthConfig {
  try {
    return makeDepthConfig(partial);
  } catch (error) {
    if (!(error instanceof DepthConfigError)) throw error;
    throw new UsageError(`--${flagForField(EXPERIMENT_FLAGS, error.field)}: ${error.message}`);
  }
}
