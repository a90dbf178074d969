/**
 * `deno task predict`'s work once its flags are checked: start the backend, load the run's
 * model, classify each file, and report. A file that cannot be classified is reported and the
 * others still are.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../backends/init.ts";
import {
  classifyImageFiles,
  type FileResult,
  formatResults,
  loadRunModel,
} from "../predict/classify.ts";
import type { PredictArgs } from "./predict_args.ts";

/**
 * Classifies `args.files` with the model in `args.model` and prints the results.
 *
 * @param args Checked flags (see `parsePredictArgs`).
 * @returns The exit status: 0 if every image was classified, 1 if any could not be.
 */
export async function predictCommand(args: PredictArgs): Promise<number> {
  tf.enableProdMode(); // no "install tfjs-node" banner, no per-op NaN checks
  await initBackend(args.backend);
  const model = await loadRunModel(args.model);
  const results = await classifyImageFiles(model, args.files, { k: args.top });
  model.dispose();
  printResults(results, args.json);
  const failed = results.filter((r) => "error" in r).length;
  if (failed > 0) console.error(failureSummary(failed, results.length));
  return failed > 0 ? 1 : 0;
}

/** Errors go to stderr in both modes, so `--json`'s stdout stays one JSON document. */
function printResults(results: readonly FileResult[], json: boolean): void {
  for (const r of results) {
    if ("error" in r) console.error(formatResults([r]));
    else if (!json) console.log(formatResults([r]));
  }
  if (json) console.log(JSON.stringify(results, null, 2));
}

/** The last line when some files failed: `1 of 2 files could not be classified`. */
function failureSummary(failed: number, total: number): string {
  return `${failed} of ${total} file${total === 1 ? "" : "s"} could not be classified`;
}
