/**
 * Checks an executed notebook: every code cell ran, none failed, and every required figure is
 * there. A figure is a code cell whose metadata names it (`"figure": ["curves"]`) and which has
 * at least as many SVG or HTML outputs as it names figures.
 *
 * Usage: `deno run --allow-read tools/check_notebook.ts [notebooks/resnet-cifar.ipynb]`
 * (exit status 1 and one line per problem if anything is missing).
 *
 * @module
 */

/** The figures `notebooks/resnet-cifar.ipynb` must show, in notebook order. */
export const REQUIRED_FIGURES: readonly string[] = [
  "config",
  "samples",
  "class-balance",
  "residual-block-code",
  "residual-demo",
  "resnet18-code",
  "model-summary",
  "stage-shapes",
  "parameters",
  "training-progress",
  "curves",
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
const FIGURE_TYPES = ["image/svg+xml", "text/html"];

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

/** How many outputs of `cell` are a non-empty SVG or HTML figure. */
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
 *     outputs: [{ output_type: "display_data", data: { "image/svg+xml": "<svg></svg>" } }],
 *   }],
 * };
 * console.log(checkNotebook(notebook, ["curves"], [])); // []
 * ```
 */
export function checkNotebook(
  notebook: unknown,
  required = REQUIRED_FIGURES,
  requiredText = REQUIRED_TEXT,
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
    for (const output of cell.outputs ?? []) {
      if (output.output_type === "error") {
        problems.push(`${where} failed: ${output.ename}: ${output.evalue}`);
      }
    }
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
    if (count < names.length) {
      problems.push(
        `Expected ${where} (${names.join(", ")}) to show ${names.length} SVG or HTML ` +
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

if (import.meta.main) {
  const path = Deno.args[0] ?? "notebooks/resnet-cifar.ipynb";
  const problems = checkNotebook(JSON.parse(await Deno.readTextFile(path)));
  if (problems.length > 0) {
    console.error(`${path}: ${problems.length} problem(s)\n${problems.join("\n")}`);
    Deno.exit(1);
  }
  console.log(`${path}: all ${REQUIRED_FIGURES.length} figures present, no errors`);
}
