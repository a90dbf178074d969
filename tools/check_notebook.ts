/**
 * Checks an executed notebook: every code cell ran, none failed, and every required figure is
 * there. A figure is a code cell whose metadata names it (`"figure": ["curves"]`) and which has
 * at least as many image or HTML outputs as it names figures.
 *
 * It also checks that a reader of the committed notebook sees what the run showed, in any
 * frontend, trusted or not: every image has an `image/png` (Jupyter shows no SVG of a notebook
 * it does not trust, and nbconvert 6 exports SVG blank) and a `text/plain` alternative; no HTML
 * output relies on what Jupyter's sanitiser removes (`<svg>`, `<style>`, CSS grids); and no
 * output shows a path of the machine that ran it (`/home/...`, `/tmp/...`).
 *
 * Usage: `deno run --allow-read tools/check_notebook.ts [notebooks/resnet-cifar.ipynb]`
 * (exit status 1 and one line per problem if anything is missing).
 *
 * @module
 */

/** The figures `notebooks/resnet-cifar.ipynb` must show, in notebook order. */
export const REQUIRED_FIGURES: readonly string[] = [
  "depth",
  "config",
  "samples",
  "class-balance",
  "residual-block-code",
  "residual-demo",
  "resnet18-code",
  "model-summary",
  "stage-shapes",
  "parameters",
  "training-code",
  "training-progress",
  "curves",
  "evaluation-code",
  "confusion",
  "per-class",
  "misclassified",
  "test-transform",
  "classify",
  "run-record",
];

/**
 * Lines the notebook must have printed (the article's own outputs and the run's record): a
 * lost output is caught here as well as a missing figure.
 */
export const REQUIRED_TEXT: readonly RegExp[] = [
  /^Backend: /m,
  /^Chosen because /m,
  /^Loaded \d+ training and \d+ test images$/m,
  /^plain: layer 1 gets /m,
  /^Epoch \[\d+\/\d+\], Loss: \d+\.\d+/m,
  /^Trained in \d+ s/m,
  /^Test Loss: \d+\.\d+, Test Accuracy: \d+\.\d+%$/m,
  /^\(on \d+ test images; chance is 10%\)$/m,
];

/** MIME types that count as a figure. */
const FIGURE_TYPES = ["image/png", "image/svg+xml", "text/html"];

/**
 * HTML that Jupyter's sanitiser removes from the outputs of a notebook it does not trust
 * (Notebook 6.4's and JupyterLab's, both sanitize-html with Caja's lists), with what is lost.
 */
export const SANITISED_HTML: readonly { pattern: RegExp; loss: string }[] = [
  { pattern: /<svg\b/i, loss: "an inline <svg> (removed; show figures with showSvg())" },
  { pattern: /<style\b/i, loss: "a <style> element (removed)" },
  { pattern: /<script\b/i, loss: "a <script> element (removed)" },
  {
    pattern: /grid-template/i,
    loss: "a CSS grid's columns (removed: the grid falls into one column; use showImageGrid())",
  },
  {
    pattern: /<span style="color:/i,
    loss: "colours in style attributes (Notebook 6 removes them all; use colorText(), a <font>)",
  },
];

/**
 * A path that only exists on the machine that ran the notebook: a home, the build machine's
 * `/work`, a temporary folder. Not after a word character or a dot, so `runs/tmp/` and
 * `../shared/` are not taken for one.
 */
const MACHINE_PATH =
  /(?<![\w.~-])(?:\/(?:home|root|work|tmp|Users)|\/var\/folders)\/[^\s"'<>()`,;]*/g;

/** What {@linkcode checkNotebook} allows beyond its rules. */
export interface CheckOptions {
  /**
   * Path prefixes that outputs may show, e.g. a temporary data folder a test gave the run.
   * @default none
   */
  allowedPaths?: readonly string[];
  /**
   * Figures whose cell may show nothing, e.g. `"depth"` in a test run before
   * `docs/depth/results.json` is committed; the cell must still name them.
   * @default none
   */
  optionalFigures?: readonly string[];
}

/** The parts of an nbformat 4 notebook read here. */
interface Notebook {
  nbformat?: number;
  metadata?: { kernelspec?: { name?: string } };
  cells?: Cell[];
}

interface Cell {
  cell_type: string;
  metadata?: { figure?: unknown };
  execution_count?: number | null;
  outputs?: Output[];
}

interface Output {
  output_type: string;
  name?: string;
  text?: string | string[];
  data?: Record<string, string | string[]>;
  ename?: string;
  evalue?: string;
}

/** nbformat stores multi-line strings either whole or as a list of lines. */
function text(value: string | string[] | undefined): string {
  return Array.isArray(value) ? value.join("") : value ?? "";
}

/** How many outputs of `cell` are a non-empty image or HTML figure. */
function figureOutputs(cell: Cell): number {
  return (cell.outputs ?? []).filter((output) =>
    (output.output_type === "display_data" || output.output_type === "execute_result") &&
    FIGURE_TYPES.some((type) => text(output.data?.[type]).trim() !== "")
  ).length;
}

/**
 * Lists what is wrong with an executed notebook.
 *
 * @param notebook The parsed `.ipynb` JSON.
 * @param required Figure names that must be present.
 * @param requiredText Patterns that the cells' printed output must match.
 * @param options Paths the outputs may show, figures that may be missing.
 * @returns One message per problem; empty if the notebook passes.
 *
 * @example
 * ```ts
 * import { checkNotebook } from "./check_notebook.ts";
 * const notebook = {
 *   nbformat: 4,
 *   metadata: { kernelspec: { name: "deno" } },
 *   cells: [{
 *     cell_type: "code",
 *     metadata: { figure: ["curves"] },
 *     execution_count: 1,
 *     outputs: [{
 *       output_type: "display_data",
 *       data: { "image/png": "iVBORw0KGgo=", "text/plain": "Figure: epoch" },
 *     }],
 *   }],
 * };
 * console.log(checkNotebook(notebook, ["curves"], [])); // []
 * ```
 */
export function checkNotebook(
  notebook: unknown,
  required = REQUIRED_FIGURES,
  requiredText = REQUIRED_TEXT,
  options: CheckOptions = {},
): string[] {
  const nb = notebook as Notebook;
  const problems: string[] = [];
  if (nb?.nbformat !== 4) problems.push(`Expected nbformat 4 but found ${nb?.nbformat}`);
  const kernel = nb?.metadata?.kernelspec?.name;
  if (kernel !== "deno") problems.push(`Expected the kernel "deno" but found ${kernel}`);
  const found = new Set<string>();
  (nb?.cells ?? []).forEach((cell, index) => {
    if (cell.cell_type !== "code") return;
    const where = `cell ${index}`;
    if (typeof cell.execution_count !== "number") {
      problems.push(`Expected ${where} to have been executed but its execution_count is null`);
    }
    (cell.outputs ?? []).forEach((output, at) => {
      if (output.output_type === "error") {
        problems.push(`${where} failed: ${output.ename}: ${output.evalue}`);
      }
      problems.push(...outputProblems(output, `${where} output ${at}`, options));
    });
    const names = cell.metadata?.figure;
    if (names === undefined) return;
    if (!Array.isArray(names) || !names.every((name) => typeof name === "string")) {
      problems.push(
        `Expected ${where}'s metadata.figure to be a list of names but found ${
          JSON.stringify(names)
        }`,
      );
      return;
    }
    for (const name of names) {
      if (found.has(name)) problems.push(`Figure "${name}" is named twice (again in ${where})`);
      found.add(name);
      if (!required.includes(name)) {
        problems.push(`${where} names figure "${name}", which is not in the required list`);
      }
    }
    const count = figureOutputs(cell);
    const shown = names.filter((name) => !(options.optionalFigures ?? []).includes(name));
    if (count < shown.length) {
      problems.push(
        `Expected ${where} (${shown.join(", ")}) to show ${shown.length} image or HTML ` +
          `output(s) but found ${count}`,
      );
    }
  });
  for (const name of required) {
    if (!found.has(name)) problems.push(`Expected a cell with figure "${name}" but found none`);
  }
  const printed = (nb?.cells ?? []).flatMap((cell) => cell.outputs ?? [])
    .filter((output) => output.output_type === "stream" && output.name === "stdout")
    .map((output) => text(output.text)).join("");
  for (const pattern of requiredText) {
    if (!pattern.test(printed)) problems.push(`Expected printed output matching ${pattern}`);
  }
  return problems;
}

/** What one output shows that not every reader would see as the run did. */
function outputProblems(output: Output, where: string, options: CheckOptions): string[] {
  const problems: string[] = [];
  const data = output.data ?? {};
  const has = (type: string) => text(data[type]).trim() !== "";
  if (has("image/svg+xml") && !has("image/png")) {
    problems.push(
      `Expected ${where} (image/svg+xml) to have an image/png too: untrusted Jupyter and ` +
        `nbconvert show no SVG`,
    );
  }
  if ((has("image/png") || has("image/svg+xml")) && !has("text/plain")) {
    problems.push(`Expected ${where} (an image) to have a text/plain alternative but found none`);
  }
  const html = text(data["text/html"]);
  for (const { pattern, loss } of SANITISED_HTML) {
    if (pattern.test(html)) problems.push(`${where} (text/html) relies on ${loss}`);
  }
  const shown = [text(output.text), text(data["text/plain"]), html].join("\n");
  const paths = new Set(
    [...shown.matchAll(MACHINE_PATH)].map((m) => m[0].replace(/[.:]+$/, ""))
      .filter((path) => !(options.allowedPaths ?? []).some((prefix) => path.startsWith(prefix))),
  );
  for (const path of paths) {
    problems.push(`${where} shows a path of the machine that ran it: ${path}`);
  }
  return problems;
}

if (import.meta.main) {
  const path = Deno.args[0] ?? "notebooks/resnet-cifar.ipynb";
  const problems = checkNotebook(JSON.parse(await Deno.readTextFile(path)));
  if (problems.length > 0) {
    console.error(`${path}: ${problems.length} problem(s)\n${problems.join("\n")}`);
    Deno.exit(1);
  }
  console.log(`${path}: all ${REQUIRED_FIGURES.length} figures present, no errors`);
}
