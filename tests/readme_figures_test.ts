import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { svgToPng } from "../lib/report/raster.ts";
import { figurePng, FIGURES_FOLDER, README_FIGURES } from "../tools/readme_figures.ts";
import { NOTEBOOK } from "../tools/notebook.ts";

const ROOT = new URL("..", import.meta.url);
const SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="2"><rect width="2" height="2"/></svg>';

/** A notebook with one figure cell named `name` showing `outputs`. */
function notebookWith(name: string, outputs: unknown[]) {
  return {
    cells: [
      { cell_type: "markdown", metadata: {}, source: "" },
      { cell_type: "code", metadata: { figure: ["other", name] }, outputs },
    ],
  };
}

Deno.test("figurePng() takes the figure's PNG output, in lines or whole", async () => {
  const png = await svgToPng(SVG);
  const base64 = Buffer.from(png).toString("base64");
  const lines = base64.match(/.{1,20}/g)!.map((line) => line + "\n");
  for (const data of [{ "image/png": base64 }, { "image/png": lines, "text/plain": "x" }]) {
    const notebook = notebookWith("curves", [{ data: { "text/plain": "first" } }, { data }]);
    assert.deepEqual(await figurePng(notebook, "curves"), png);
  }
});

Deno.test("figurePng() rasterises an SVG-only figure as the notebook would show it", async () => {
  const notebook = notebookWith("curves", [{ data: { "image/svg+xml": SVG.split(/(?<=>)/) } }]);
  assert.deepEqual(await figurePng(notebook, "curves"), await svgToPng(SVG));
});

Deno.test("figurePng() names a missing figure and a figure without an image", async () => {
  await assert.rejects(() => figurePng(notebookWith("curves", []), "confusion"), {
    message: 'Expected a cell with figure "confusion" but found none',
  });
  await assert.rejects(
    () => figurePng(notebookWith("curves", [{ data: { "text/html": "<b/>" } }]), "curves"),
    {
      message:
        'Expected cell 1 (figure "curves") to have an image/png or image/svg+xml output but ' +
        "found text/html",
    },
  );
});

Deno.test("docs/figures/ holds the committed notebook's README figures (deno task readme:figures)", async () => {
  const notebook = JSON.parse(await Deno.readTextFile(new URL(NOTEBOOK, ROOT)));
  for (const name of README_FIGURES) {
    const path = `${FIGURES_FOLDER}/${name}.png`;
    const file = await Deno.readFile(new URL(path, ROOT));
    assert.ok(
      Buffer.from(file).equals(Buffer.from(await figurePng(notebook, name))),
      `${path} differs from the notebook's figure "${name}": run deno task readme:figures`,
    );
  }
  const readme = await Deno.readTextFile(new URL("README.md", ROOT));
  for (const name of README_FIGURES) assert.ok(readme.includes(`](${FIGURES_FOLDER}/${name}.png)`));
});
