/**
 * The depth experiment's committed results, for the notebook's section 二 (三): He et al.'s
 * plain and residual CIFAR-10 networks of growing depth, trained with one recipe by
 * `deno task experiment:depth` (`lib/experiment/depth.ts`), read from
 * {@linkcode DEPTH_RESULTS_PATH} ({@linkcode loadDepthResults}) and summed up in a sentence
 * computed from the data ({@linkcode depthSummary}), so that the notebook's prose never asserts
 * what the measurement might contradict.
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DEPTH_FILES, type DepthResults } from "../experiment/depth.ts";

/** The command that reproduces the results (into `runs/depth/`). */
export const DEPTH_COMMAND = "deno task experiment:depth";

/** The committed copy of the experiment's `results.json`, relative to the repository. */
export const DEPTH_RESULTS_PATH = `docs/depth/${DEPTH_FILES.results}`;

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/**
 * Reads the committed results (`results.json` as `deno task experiment:depth` writes it).
 *
 * @param root The repository. @default this module's repository
 * @returns The results, or null if there are none yet.
 * @throws {Error} If the file is there but holds no list of nets with their records.
 */
export async function loadDepthResults(root = REPO_ROOT): Promise<DepthResults | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(join(root, DEPTH_RESULTS_PATH));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  const results = JSON.parse(text) as DepthResults;
  const wrong = !Array.isArray(results.models)
    ? -1
    : results.models.findIndex((m) =>
      typeof m?.depth !== "number" || typeof m.residual !== "boolean" || !Array.isArray(m.records)
    );
  if (wrong !== -1 || !Array.isArray(results.models)) {
    throw new Error(
      `Expected ${DEPTH_RESULTS_PATH} to list "models", each with depth, residual and records, ` +
        `but found ${JSON.stringify(results.models?.[wrong] ?? results).slice(0, 120)}`,
    );
  }
  return results;
}

/**
 * What the nets show, in words computed from them: per kind of network, the training error of
 * each depth after its last epoch, and whether the deepest ended above or below the shallowest.
 *
 * @param results From {@linkcode loadDepthResults}.
 * @returns One line per kind (plain, residual), and a note if the experiment is incomplete.
 *
 * @example
 * ```ts
 * import { depthSummary } from "./depth.ts";
 * const net = (depth: number, trainError: number) => ({
 *   depth,
 *   residual: false,
 *   records: [{ epoch: 1, trainError }],
 * });
 * console.log(depthSummary({ complete: true, models: [net(20, 0.2), net(56, 0.3)] }));
 * // plain: training error 20.0 % at 20 layers, 30.0 % at 56 layers: higher at the deepest than at the shallowest.
 * ```
 */
export function depthSummary(results: {
  complete: boolean;
  models: readonly {
    depth: number;
    residual: boolean;
    records: readonly { epoch: number; trainError: number | null }[];
  }[];
}): string {
  const lines = [false, true].flatMap((residual) => {
    const nets = results.models.filter((m) => m.residual === residual && m.records.length > 0)
      .sort((a, b) => a.depth - b.depth);
    if (nets.length === 0) return [];
    const error = (net: (typeof nets)[number]) => 100 * (net.records.at(-1)!.trainError ?? NaN);
    const list = nets.map((net) => `${error(net).toFixed(1)} % at ${net.depth} layers`).join(", ");
    const [first, last] = [error(nets[0]), error(nets[nets.length - 1])];
    const compared = nets.length < 2 || !Number.isFinite(first + last)
      ? ""
      : first === last
      ? ": the same at the deepest as at the shallowest"
      : `: ${last > first ? "higher" : "lower"} at the deepest than at the shallowest`;
    return [`${residual ? "residual" : "plain"}: training error ${list}${compared}.`];
  });
  if (!results.complete) lines.push("(The experiment is not complete: some nets stopped early.)");
  return lines.join("\n");
}
