/**
 * `deno task readme:figures`: writes the README's figures (`docs/figures/*.png`) from the
 * committed notebook's outputs, so that the README shows what the notebook shows, from the same
 * run. A figure's `image/png` output is copied as it is; an older notebook's SVG-only output is
 * rasterised as the notebook would show it (`svgToPng()`, the same pixels).
 *
 * Usage: `deno run --allow-read=notebooks,node_modules,docs/figures --allow-write=docs/figures
 * tools/readme_figures.ts [--check]` (`--check`: write nothing, exit 1 if a file differs).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { svgToPng } from "../lib/report/raster.ts";

/** The notebook's figures the README shows, by their name in the cells' `metadata.figure`. */
export const README_FIGURES: readonly string[] = ["curves", "confusion", "per-class"];

/** Where the figures go, relative to the repository root. */
export const FIGURES_FOLDER = "docs/figures";

/** The parts of an nbformat 4 notebook read here. */
interface Notebook {
  cells?: {
    cell_type: string;
    metadata?: { figure?: unknown };
    outputs?: { data?: Record<string, string | string[]> }[];
  }[];
}

/** nbformat stores multi-line strings either whole or as a list of lines. */
function joined(value: string | string[] | undefined): string {
  return Array.isArray(value) ? value.join("") : value ?? "";
}

/**
 * The PNG of figure `name` in an executed notebook: its cell's first `image/png` output, else its
 * first `image/svg+xml` output rasterised.
 *
 * @param notebook The parsed `.ipynb` JSON.
 * @param name A figure name of a cell's `metadata.figure`.
 * @returns The PNG file's bytes.
 * @throws {Error} If no cell names the figure, or its cell has no image output.
 */
export async function figurePng(notebook: unknown, name: string): Promise<Uint8Array> {
  const cells = (notebook as Notebook)?.cells ?? [];
  const index = cells.findIndex((cell) =>
    Array.isArray(cell.metadata?.figure) && cell.metadata.figure.includes(name)
  );
  if (index < 0) throw new Error(`Expected a cell with figure "${name}" but found none`);
  const outputs = cells[index].outputs ?? [];
  const png = outputs.find((output) => joined(output.data?.["image/png"]) !== "");
  if (png !== undefined) {
    // Base64 in the notebook may be split into lines.
    return new Uint8Array(Buffer.from(joined(png.data?.["image/png"]), "base64"));
  }
  const svg = outputs.find((output) => joined(output.data?.["image/svg+xml"]) !== "");
  if (svg !== undefined) return await svgToPng(joined(svg.data?.["image/svg+xml"]));
  const types = outputs.flatMap((output) => Object.keys(output.data ?? {}));
  throw new Error(
    `Expected cell ${index} (figure "${name}") to have an image/png or image/svg+xml output ` +
      `but found ${types.length === 0 ? "none" : types.join(", ")}`,
  );
}

/** True when two byte arrays are equal. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

async function main(args: string[]): Promise<number> {
  const check = args.includes("--check");
  const root = new URL("..", import.meta.url);
  const notebookPath = "notebooks/resnet-cifar.ipynb";
  const notebook = JSON.parse(await Deno.readTextFile(new URL(notebookPath, root)));
  if (!check) await Deno.mkdir(new URL(`${FIGURES_FOLDER}/`, root), { recursive: true });
  let stale = 0;
  for (const name of README_FIGURES) {
    const png = await figurePng(notebook, name);
    const path = `${FIGURES_FOLDER}/${name}.png`;
    const file = new URL(path, root);
    if (check) {
      const current = await Deno.readFile(file).catch(() => new Uint8Array());
      if (!sameBytes(current, png)) {
        console.error(`${path} differs from ${notebookPath}'s figure "${name}"`);
        stale++;
      }
    } else {
      await Deno.writeFile(file, png);
      console.log(`${path}: ${(png.length / 1024).toFixed(0)} kB`);
    }
  }
  if (stale > 0) console.error("Run `deno task readme:figures` to write them again.");
  return stale > 0 ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
