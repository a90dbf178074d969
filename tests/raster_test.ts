import assert from "node:assert/strict";
import { decode } from "fast-png";
import { curvesSvg } from "../lib/report/figures.ts";
import { DEFAULT_PNG_SCALE, svgToPng } from "../lib/report/raster.ts";

/** A decoded PNG as RGB(A) bytes, with a reader of one pixel as `#rrggbb`. */
function pixels(png: Uint8Array) {
  const image = decode(png);
  const data = new Uint8Array(image.data.buffer, image.data.byteOffset, image.data.byteLength);
  const at = (x: number, y: number) => {
    const i = (y * image.width + x) * image.channels;
    return "#" + [0, 1, 2].map((c) => data[i + c].toString(16).padStart(2, "0")).join("");
  };
  const all = new Set<string>();
  for (let y = 0; y < image.height; y++) for (let x = 0; x < image.width; x++) all.add(at(x, y));
  return { width: image.width, height: image.height, depth: image.depth, at, colors: all };
}

const SVG_NS = 'xmlns="http://www.w3.org/2000/svg"';

Deno.test("svgToPng() draws shapes at the scale asked, on white", async () => {
  const svg =
    `<svg ${SVG_NS} width="20" height="10"><rect width="10" height="10" fill="red"/></svg>`;
  const one = pixels(await svgToPng(svg, { scale: 1 }));
  assert.deepEqual([one.width, one.height, one.depth], [20, 10, 8]);
  assert.equal(one.at(2, 2), "#ff0000");
  assert.equal(one.at(15, 5), "#ffffff");
  const twice = pixels(await svgToPng(svg));
  assert.equal(DEFAULT_PNG_SCALE, 2);
  assert.deepEqual([twice.width, twice.height], [40, 20]);
  assert.equal(twice.at(19, 19), "#ff0000");
  assert.equal(twice.at(21, 0), "#ffffff");
});

Deno.test("svgToPng() fills currentColor black and sets text in the bundled font", async () => {
  const text = (family: string) =>
    `<svg ${SVG_NS} width="80" height="20" font-family="${family}" fill="currentColor">` +
    `<text x="2" y="15" font-size="14">Epoch 10</text></svg>`;
  const plot = await svgToPng(text("system-ui, sans-serif"), { scale: 1 });
  const { colors } = pixels(plot);
  assert.ok(colors.has("#000000"), "some pixels are fully black text");
  assert.ok(colors.size > 2, "anti-aliased edges");
  // Plot's family and none at all both end in DejaVu Sans: the same pixels.
  assert.deepEqual(await svgToPng(text("DejaVu Sans"), { scale: 1 }), plot);
  assert.deepEqual(
    await svgToPng(
      `<svg ${SVG_NS} width="80" height="20"><text x="2" y="15" font-size="14">Epoch 10</text></svg>`,
      { scale: 1 },
    ),
    plot,
  );
});

Deno.test("svgToPng() renders a Plot figure: its line colours, its text, its size", async () => {
  const svg = curvesSvg([1, 2].map((epoch) => ({
    epoch,
    trainLoss: 2 / epoch,
    trainAccuracy: 0.3 * epoch,
    testLoss: 2.2 / epoch,
    testAccuracy: 0.25 * epoch,
    seconds: 1,
    imagesPerSecond: 1,
  })));
  const image = pixels(await svgToPng(svg));
  assert.deepEqual([image.width, image.height], [840 * 2, 280 * 2]);
  for (const color of ["#4269d0", "#ff725c", "#000000", "#ffffff"]) {
    assert.ok(image.colors.has(color), `has ${color}`);
  }
});

Deno.test("svgToPng() refuses a scale that is not a number greater than 0, and bad SVG", async () => {
  const svg = `<svg ${SVG_NS} width="2" height="2"/>`;
  for (const scale of [0, -1, Number.NaN, Infinity]) {
    await assert.rejects(() => svgToPng(svg, { scale }), {
      name: "RangeError",
      message: `Expected scale to be a number greater than 0 but found ${scale}`,
    });
  }
  await assert.rejects(() => svgToPng("<svg"), Error);
});
