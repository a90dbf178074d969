import assert from "node:assert/strict";
import { loadDepthResults } from "../lib/notebook/depth.ts";
import { checkNotebook } from "../tools/check_notebook.ts";
import { cellSource, NOTEBOOK, type Notebook, runCellSequence } from "../tools/notebook.ts";
import { writeSyntheticCifar } from "./support/synthetic_cifar_folder.ts";

const NOTEBOOK_PATH = new URL(`../${NOTEBOOK}`, import.meta.url).pathname;

/** The index of the one code cell `matches` picks, named `what` in the failure. */
function codeCell(notebook: Notebook, what: string, matches: (source: string) => boolean): number {
  const found = notebook.cells.flatMap((cell, index) =>
    cell.cell_type === "code" && matches(cellSource(cell)) ? [index] : []
  );
  assert.equal(found.length, 1, `Expected one ${what} cell but found ${found.length}`);
  return found[0];
}

/** The code cells from the heading starting with `heading` to the next heading of that level. */
function sectionCells(notebook: Notebook, heading: string): number[] {
  const start = notebook.cells.findIndex((cell) =>
    cell.cell_type === "markdown" &&
    cellSource(cell).split("\n").some((line) => line === heading || line.startsWith(`${heading} `))
  );
  assert.ok(start >= 0, `Expected a heading ${heading}`);
  const level = heading.split(" ")[0];
  const cells: number[] = [];
  for (let i = start + 1; i < notebook.cells.length; i++) {
    const text = cellSource(notebook.cells[i]);
    if (
      notebook.cells[i].cell_type === "markdown" &&
      new RegExp(`^#{1,${level.length}} `, "m").test(text)
    ) break;
    if (notebook.cells[i].cell_type === "code") cells.push(i);
  }
  return cells;
}

Deno.test({
  name:
    "the notebook's cells run again, alone or a section at a time, without errors or leaked tensors",
  async fn() {
    const notebook = JSON.parse(await Deno.readTextFile(NOTEBOOK_PATH)) as Notebook;
    const all = notebook.cells.flatMap((cell, i) => cell.cell_type === "code" ? [i] : []);
    const hasFigure = (name: string) =>
      notebook.cells.findIndex((cell) =>
        ((cell.metadata?.figure as string[] | undefined) ?? []).includes(name)
      );
    const sample = [
      codeCell(notebook, "data", (s) => s.includes("await loadCifar10(")),
      hasFigure("class-balance"),
      hasFigure("model-summary"),
      codeCell(notebook, "normalisation", (s) => s.includes("tf.moments(")),
      hasFigure("residual-demo"),
      hasFigure("training-progress"),
      codeCell(notebook, "evaluation", (s) => s.includes("Test Loss: ")),
      hasFigure("classify"),
      ...sectionCells(notebook, "### (五)评估模型"),
    ];
    assert.ok(sample.every((i) => i >= 0), `${sample}`);
    const dir = await Deno.makeTempDir({ prefix: "notebook-rerun-" });
    try {
      await writeSyntheticCifar(dir);
      const run = await runCellSequence(NOTEBOOK_PATH, [...all, ...sample], {
        RESNET_CIFAR_SMOKE: "1",
        CIFAR10_DATA: dir,
      });
      assert.equal(
        run.code,
        0,
        `the cells failed; driver ${run.modulePath}:\n${run.output.slice(-4000)}`,
      );
      // The depth cell's figure comes with docs/depth/results.json (see notebook_test.ts).
      const optionalFigures = (await loadDepthResults()) === null ? ["depth"] : [];
      assert.deepEqual(checkNotebook(run.executed, undefined, undefined, { optionalFigures }), []);
      assert.deepEqual(run.steps.map((step) => step.cell), [...all, ...sample]);
      // After the first pass, every re-run leaves exactly the tensors the first pass left (the
      // trained model's weights): what a cell makes, it disposes, or replaces when run again.
      const afterFirstPass = run.steps[all.length - 1].numTensors;
      const reruns = run.steps.slice(all.length);
      assert.deepEqual(
        reruns.map((step) => [step.cell, step.numTensors]),
        reruns.map((step) => [step.cell, afterFirstPass]),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
