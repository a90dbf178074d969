/**
 * `deno task predict`: classify photos with a trained run's model. Parses flags, then
 * calls `lib/predict.ts`; a file that cannot be classified is reported and the others
 * still are.
 *
 * @module
 */
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs";
import { BACKEND_NAMES, type BackendName, initBackend } from "../lib/backends/init.ts";
import { flagError, runMain, UsageError } from "../lib/cli/flags.ts";
import {
  classifyImageFiles,
  DEFAULT_TOP_K,
  formatResults,
  loadRunModel,
} from "../lib/predict/classify.ts";

const USAGE = `Classify PNG or JPEG photos with a trained CIFAR-10 model.

Usage: deno task predict --model <run folder> [flags] <image files...>

Each image is center-cropped to a square (the largest centered one, so nothing is
squashed), averaged down to 32x32 (each output pixel is the mean of the area it covers),
normalised with CIFAR-10's mean and std, and classified. JPEG EXIF rotation is applied;
transparent pixels count as white.

  --model DIR       run folder from deno task train (or its model/ folder)   (required)
  --top N           classes to show per image                              (default ${DEFAULT_TOP_K})
  --json            print one JSON array: [{file, top: [{label, className, probability}]}
                    or {file, error}]
  --backend NAME    ${BACKEND_NAMES.join(" | ")}                           (default wasm)
  --help            this text

Exit status: 0 if every image was classified, 1 if any could not be, 2 for bad flags.
`;

interface PredictArgs {
  model: string;
  files: string[];
  top: number;
  json: boolean;
  backend: BackendName;
  help: boolean;
}

function parsePredictArgs(args: string[]): PredictArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        model: { type: "string" },
        top: { type: "string" },
        json: { type: "boolean" },
        backend: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    throw flagError(error);
  }
  const v = parsed.values;
  const help = v.help ?? false;
  const top = Number(v.top ?? DEFAULT_TOP_K);
  if (!Number.isInteger(top) || top < 1) {
    throw new UsageError(`--top: expected an integer >= 1 but found "${v.top}"`);
  }
  const backend = (v.backend ?? "wasm") as BackendName;
  if (!BACKEND_NAMES.includes(backend)) {
    throw new UsageError(
      `--backend: expected one of ${BACKEND_NAMES.join(", ")} but found "${backend}"`,
    );
  }
  if (!help && v.model === undefined) {
    throw new UsageError("--model: expected a run folder (from deno task train) but found none");
  }
  if (!help && parsed.positionals.length === 0) {
    throw new UsageError("expected at least one image file after the flags but found none");
  }
  return {
    model: v.model ?? "",
    files: parsed.positionals,
    top,
    json: v.json ?? false,
    backend,
    help,
  };
}

async function main(argv: string[]): Promise<number> {
  const args = parsePredictArgs(argv);
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  tf.enableProdMode(); // no "install tfjs-node" banner, no per-op NaN checks
  await initBackend(args.backend);
  const model = await loadRunModel(args.model);
  const results = await classifyImageFiles(model, args.files, { k: args.top });
  model.dispose();
  // Errors go to stderr in both modes, so --json's stdout stays one JSON document.
  for (const r of results) {
    if ("error" in r) console.error(formatResults([r]));
    else if (!args.json) console.log(formatResults([r]));
  }
  if (args.json) console.log(JSON.stringify(results, null, 2));
  const failed = results.filter((r) => "error" in r).length;
  if (failed > 0) {
    console.error(
      `${failed} of ${results.length} file${
        results.length === 1 ? "" : "s"
      } could not be classified`,
    );
  }
  return failed > 0 ? 1 : 0;
}

if (import.meta.main) {
  await runMain(main);
}
