/**
 * The notebook as a reader without a kernel sees it: exported with `jupyter nbconvert --to html`
 * (Debian's nbconvert 6, which CI installs) and opened in headless Chromium, every figure must be
 * an image that the browser decodes and draws at a size above zero, and no image may be blank.
 * An SVG output would come out blank: nbconvert 6 strips its shapes (the exported `<svg>` is
 * checked for shapes too). Skipped without `jupyter nbconvert` or Chromium.
 *
 * Run on the committed notebook (whose figures must be PNG outputs: `deno task notebook`
 * re-executes it) and on a small notebook of real display.ts outputs.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { join } from "node:path";
import { decode } from "fast-png";
import { NOTEBOOK } from "../tools/notebook.ts";
import { displayNotebook } from "./support/display_notebook.ts";

const CHROMIUM = "/usr/bin/chromium";
const NOTEBOOK_PATH = new URL(`../${NOTEBOOK}`, import.meta.url).pathname;

/** Why the export cannot be tested here, or null if it can. */
async function missingTools(): Promise<string | null> {
  if (!(await Deno.stat(CHROMIUM).then(() => true, () => false))) return `no ${CHROMIUM}`;
  try {
    const out = await new Deno.Command("jupyter", { args: ["nbconvert", "--version"] }).output();
    return out.success ? null : "`jupyter nbconvert --version` failed";
  } catch {
    return "no `jupyter` on PATH (Debian: jupyter-nbconvert)";
  }
}

const missing = await missingTools();
if (missing !== null) {
  console.warn(`notebook_export_test.ts: skipped (${missing}); CI installs both`);
}

/**
 * Reports what the page shows once loaded, then replaces the page with that report, so that
 * `--dump-dom` prints it alone.
 */
const PROBE = `<script>
addEventListener("load", () => {
  const images = [...document.querySelectorAll(".jp-OutputArea-output img")].map((img) => {
    const box = img.getBoundingClientRect();
    return { complete: img.complete, naturalWidth: img.naturalWidth,
      naturalHeight: img.naturalHeight, width: box.width, height: box.height };
  });
  const svgShapes = [...document.querySelectorAll('[data-mime-type="image/svg+xml"]')].map((div) =>
    div.querySelectorAll("path, rect, line, circle, polyline, polygon, text, image").length);
  document.body.innerHTML = '<pre id="figure-probe"></pre>';
  document.getElementById("figure-probe").textContent = JSON.stringify({ images, svgShapes });
});
</script>`;

/** What {@linkcode PROBE} reports. */
interface PageReport {
  images: {
    complete: boolean;
    naturalWidth: number;
    naturalHeight: number;
    width: number;
    height: number;
  }[];
  svgShapes: number[];
}

/** Runs a command; throws with its output if it fails or takes longer than `timeoutMs`. */
async function run(command: string, args: string[], timeoutMs: number): Promise<string> {
  const out = await new Deno.Command(command, {
    args,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  assert.ok(out.success, `${command} ${args.join(" ")} failed:\n${text(out.stderr).slice(-3000)}`);
  return text(out.stdout);
}

/** Exports `notebookPath` to HTML in `dir`; returns the HTML file's path. */
async function exportHtml(notebookPath: string, dir: string): Promise<string> {
  await run(
    "jupyter",
    ["nbconvert", "--to", "html", "--output-dir", dir, "--output", "export", notebookPath],
    120_000,
  );
  return join(dir, "export.html");
}

/** Opens the page with {@linkcode PROBE} added in headless Chromium, offline; its report. */
async function inspectInChromium(htmlPath: string, dir: string): Promise<PageReport> {
  const html = await Deno.readTextFile(htmlPath);
  const probed = join(dir, "probed.html");
  await Deno.writeTextFile(probed, html.replace(/<\/body>/i, `${PROBE}</body>`));
  const dom = await run(CHROMIUM, [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    // The export links require.js and MathJax from a CDN: fail those at once, as offline.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    `--user-data-dir=${join(dir, "profile")}`,
    "--virtual-time-budget=10000",
    "--dump-dom",
    `file://${probed}`,
  ], 120_000);
  const report = dom.match(/<pre id="figure-probe">([^<]*)<\/pre>/)?.[1];
  assert.ok(report !== undefined, `Expected the probe's report in the page but found:\n${dom}`);
  const unescaped = report.replaceAll("&lt;", "<").replaceAll("&gt;", ">").replaceAll("&amp;", "&");
  return JSON.parse(unescaped);
}

/** Share of pixels that differ from the first one (0 for a blank image). */
function inkShare(png: Uint8Array): number {
  const image = decode(png);
  const { data, channels } = image;
  const pixels = data.length / channels;
  let differ = 0;
  for (let p = 1; p < pixels; p++) {
    for (let c = 0; c < channels; c++) {
      if (data[p * channels + c] !== data[c]) {
        differ++;
        break;
      }
    }
  }
  return differ / pixels;
}

/** How many outputs of the notebook nbconvert shows as a PNG (no HTML or SVG beside it). */
function pngOutputs(notebook: { cells: { outputs?: { data?: Record<string, unknown> }[] }[] }) {
  return notebook.cells.flatMap((cell) => cell.outputs ?? []).filter((output) =>
    output.data?.["image/png"] !== undefined && output.data["text/html"] === undefined &&
    output.data["image/svg+xml"] === undefined
  ).length;
}

/** Exports and inspects a notebook; asserts every figure is drawn and none is blank. */
async function assertFiguresShown(notebookPath: string, minimumFigures: number): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "notebook-export-" });
  try {
    const htmlPath = await exportHtml(notebookPath, dir);
    const notebook = JSON.parse(await Deno.readTextFile(notebookPath));
    const expected = pngOutputs(notebook);
    assert.ok(
      expected >= minimumFigures,
      `Expected at least ${minimumFigures} PNG figure outputs in ${notebookPath} but found ` +
        `${expected}: re-execute it (deno task notebook)`,
    );
    const report = await inspectInChromium(htmlPath, dir);
    const blankSvgs = report.svgShapes.filter((shapes) => shapes === 0).length;
    assert.equal(blankSvgs, 0, `${blankSvgs} SVG output(s) exported without their shapes`);
    assert.ok(
      report.images.length >= expected,
      `Expected ${expected} images in the export but found ${report.images.length}`,
    );
    report.images.forEach((image, i) => {
      assert.ok(image.complete && image.naturalWidth > 0, `image ${i} not decoded`);
      assert.ok(image.width > 0 && image.height > 0, `image ${i} drawn at size 0`);
    });
    const html = await Deno.readTextFile(htmlPath);
    const pngs = [...html.matchAll(/<img src="data:image\/png;base64,([^"]+)"/g)];
    assert.equal(pngs.length, report.images.length, "every image in the export is a PNG");
    pngs.forEach(([, base64], i) => {
      const share = inkShare(new Uint8Array(Buffer.from(base64, "base64")));
      assert.ok(share > 0.005, `image ${i} is blank: ${(100 * share).toFixed(2)} % ink`);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "nbconvert's HTML export of display.ts outputs shows every figure, none blank",
  ignore: missing !== null,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "display-notebook-" });
    try {
      const path = join(dir, "display.ipynb");
      await Deno.writeTextFile(path, JSON.stringify(await displayNotebook()));
      // Two Plot figures and an image grid.
      await assertFiguresShown(path, 3);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "nbconvert's HTML export of the committed notebook shows every figure, none blank",
  ignore: missing !== null,
  async fn() {
    // class balance, gradient norms, curves, confusion, per class: Plot figures at least.
    await assertFiguresShown(NOTEBOOK_PATH, 5);
  },
});
