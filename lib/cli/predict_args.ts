/**
 * `deno task predict`'s flags: the run folder, how many classes to show, JSON or text, the
 * backend, and the image files after them.
 *
 * @module
 */
import { type FlagTable, formatFlags, parseFlags } from "./flags.ts";
import { UsageError } from "./run_main.ts";
import { BACKEND_NAMES, type BackendName } from "../train/config.ts";
import {
  DEFAULT_TOP_K,
  MAX_DECODE_BYTES,
  MAX_FILE_BYTES,
  MAX_MEGAPIXELS,
} from "../predict/classify.ts";

/** Inference runs where tfjs runs everywhere without a native build. */
const DEFAULT_PREDICT_BACKEND: BackendName = "wasm";

/** The classifier's flags. */
export const PREDICT_FLAGS = {
  model: {
    kind: "string",
    value: "DIR",
    required: "a run folder (from deno task train)",
    help: "run folder from deno task train (or its model/ folder)",
  },
  top: {
    kind: "int",
    value: "N",
    min: 1,
    default: String(DEFAULT_TOP_K),
    help: "classes to show per image",
  },
  json: {
    kind: "boolean",
    help: `print one JSON array: [{file, top: [{label, className, probability}]}
or {file, error}]`,
  },
  backend: {
    kind: "choice",
    value: "NAME",
    choices: BACKEND_NAMES,
    default: DEFAULT_PREDICT_BACKEND,
    help: BACKEND_NAMES.join(" | "),
  },
} satisfies FlagTable;

const FILE_MIB = MAX_FILE_BYTES / 2 ** 20;
const DECODE_MIB = MAX_DECODE_BYTES / 2 ** 20;

/** `deno task predict --help`. */
export const PREDICT_USAGE = `Classify PNG or JPEG photos with a trained CIFAR-10 model.

Usage: deno task predict --model <run folder> [flags] <image files...>

Each image is center-cropped to a square (the largest centered one, so nothing is
squashed), averaged down to 32x32 (each output pixel is the mean of the area it covers),
normalised with CIFAR-10's mean and std, and classified. JPEG EXIF rotation is applied;
transparent pixels count as white. Only regular files of at most ${FILE_MIB} MiB are read, and
an image may have at most ${MAX_MEGAPIXELS} megapixels and decode in at most ${DECODE_MIB} MiB (checked
from its header first); a file that fails is reported by name, the others are still classified.

${formatFlags(PREDICT_FLAGS)}
Exit status: 0 if every image was classified, 1 if any could not be, 2 for bad flags.
`;

/** What the classifier was asked to do. */
export interface PredictArgs {
  /** The run folder (or its `model/` folder). */
  model: string;
  /** Images to classify, in order. */
  files: string[];
  /** Classes to show per image. */
  top: number;
  /** One JSON document on stdout instead of text. */
  json: boolean;
  backend: BackendName;
}

/**
 * Parses and checks `deno task predict`'s flags.
 *
 * @param args The command line after the script name.
 * @returns What to do, or `null` for `--help`.
 * @throws {UsageError} naming the flag, or saying that no image file was given.
 *
 * @example
 * ```ts
 * import { parsePredictArgs } from "./predict_args.ts";
 * console.log(parsePredictArgs(["--model", "runs/a", "cat.png"])?.top); // 3
 * ```
 */
export function parsePredictArgs(args: string[]): PredictArgs | null {
  const parsed = parseFlags(PREDICT_FLAGS, args, { positionals: true });
  if (parsed === null) return null;
  const v = parsed.values;
  if (parsed.positionals.length === 0) {
    throw new UsageError("expected at least one image file after the flags but found none");
  }
  return {
    model: v.model,
    files: parsed.positionals,
    top: v.top ?? DEFAULT_TOP_K,
    json: v.json ?? false,
    backend: v.backend ?? DEFAULT_PREDICT_BACKEND,
  };
}
