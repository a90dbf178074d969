/**
 * lib/notebook/display.ts's figures: PNG bundles with their size and text alternative, image
 * grids as one figure, and metadata through the sinks. (The sinks' other behaviour is tested in
 * tests/notebook_test.ts.)
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { decode } from "fast-png";
import {
  figureRecord,
  JupyterSink,
  RecordingSink,
  setDisplaySink,
  showImageGrid,
  showSvg,
} from "../lib/notebook/display.ts";
import { perClassSvg } from "../lib/report/figures.ts";
import { svgToPng } from "../lib/report/raster.ts";
import { CIFAR10_CLASSES } from "../lib/data.ts";

Deno.test("figureRecord() is a PNG of the SVG at 2x, its size in the metadata, and alt text", async () => {
  const svg = perClassSvg(CIFAR10_CLASSES.map((_, i) => i / 10), CIFAR10_CLASSES);
  const record = await figureRecord(svg);
  assert.deepEqual(Object.keys(record.data).sort(), ["image/png", "text/plain"]);
  const png = new Uint8Array(Buffer.from(record.data["image/png"], "base64"));
  assert.deepEqual(png, await svgToPng(svg));
  const image = decode(png);
  assert.deepEqual([image.width, image.height], [840, 520]);
  assert.deepEqual(record.metadata, { "image/png": { width: 420, height: 260 } });
  assert.equal(record.data["text/plain"], "Figure: accuracy (%) →");
  assert.equal((await figureRecord(svg, "bars")).data["text/plain"], "bars");
  const bare = '<svg xmlns="http://www.w3.org/2000/svg" width="3" height="3"/>';
  assert.equal((await figureRecord(bare)).data["text/plain"], "Figure");
});

Deno.test("showSvg() and showImageGrid() record PNG figures with their metadata", async () => {
  const sink = new RecordingSink();
  const previous = setDisplaySink(sink);
  try {
    const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="4"/>';
    await showSvg(svg, "empty");
    const rgb = new Uint8Array(32 * 32 * 3).fill(9);
    await showImageGrid([{ rgb, caption: "cat" }, { rgb, caption: "dog" }], { title: "Two" });
    await showImageGrid([{ rgb, caption: "cat" }], { text: "one cat" });
    const [first, grid, single] = sink.outputs[0];
    assert.deepEqual(first.data["text/plain"], "empty");
    assert.deepEqual(first.metadata, { "image/png": { width: 10, height: 4 } });
    assert.equal(grid.data["text/plain"], "Two: cat; dog");
    assert.deepEqual(grid.metadata, { "image/png": { width: 204, height: 20 + 96 + 13 + 6 } });
    assert.ok(!("image/svg+xml" in grid.data) && !("text/html" in grid.data));
    assert.equal(single.data["text/plain"], "one cat");
  } finally {
    setDisplaySink(previous);
  }
});

Deno.test("JupyterSink sends a display's metadata with it", async () => {
  const sent: Record<string, unknown>[] = [];
  const sink = new JupyterSink({
    broadcast: (_type, content) => Promise.resolve(void sent.push(content)),
  }, 0);
  const metadata = { "image/png": { width: 3, height: 2 } };
  await sink.display({ data: { "image/png": "AA==" }, metadata });
  assert.deepEqual(sent, [{ data: { "image/png": "AA==" }, metadata, transient: {} }]);
});
