import assert from "node:assert/strict";
import { decode } from "fast-png";
import { DOMParser } from "linkedom";
import { CIFAR10_CLASSES } from "../lib/data.ts";
import {
  classBalanceSvg,
  confusionSvg,
  curvesSvg,
  depthSvg,
  htmlTable,
  imageGridSvg,
  type LayerValue,
  perClassSvg,
  perLayerSvg,
  sideBySide,
  wrapCaption,
} from "../lib/report/figures.ts";
import { escapeHtml } from "../lib/report/html.ts";
import type { EpochRecord } from "../lib/train/checkpoint.ts";

/**
 * Throws unless `markup` is well-formed: every tag closed, in order; attribute values quoted;
 * no `<` or `&` outside a tag or a character reference.
 */
function assertWellFormed(markup: string): void {
  const tokens = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|<|&(?!#\d+;|\w+;)/g;
  const open: string[] = [];
  for (const match of markup.matchAll(tokens)) {
    const [token, closing, name, , selfClosing] = match;
    const where = `at offset ${match.index}: ${markup.slice(match.index, match.index + 60)}`;
    assert.ok(name !== undefined, `Expected a tag or a character reference ${where}`);
    if (closing) {
      assert.equal(open.pop(), name, `Expected ${token} to close the last open tag ${where}`);
    } else if (!selfClosing) open.push(name);
  }
  assert.deepEqual(open, [], "Expected every tag to be closed");
}

/** Parses an SVG to query it (linkedom is lenient: check {@linkcode assertWellFormed} first). */
function parseSvg(svg: string): Document {
  assertWellFormed(svg);
  return new DOMParser().parseFromString(svg, "image/svg+xml") as unknown as Document;
}

/** The text of every element that `selector` matches, in document order. */
function texts(doc: Document | Element, selector: string): string[] {
  return [...doc.querySelectorAll(selector)].map((element) => element.textContent ?? "");
}

/** Runs `fn` and returns what it passed to `console.warn`, besides its result. */
function capturingWarnings<T>(fn: () => T): { result: T; warnings: string[] } {
  const warnings: string[] = [];
  const warn = console.warn;
  console.warn = (...args: unknown[]) => void warnings.push(args.join(" "));
  try {
    return { result: fn(), warnings };
  } finally {
    console.warn = warn;
  }
}

/** `epochs` epochs of a run whose loss falls and accuracy rises. */
function history(epochs: number): EpochRecord[] {
  return Array.from({ length: epochs }, (_, i) => ({
    epoch: i + 1,
    trainLoss: 2 / (i + 1),
    trainAccuracy: 0.3 + 0.05 * i,
    testLoss: 2.2 / (i + 1),
    testAccuracy: 0.25 + 0.05 * i,
    seconds: 60,
    imagesPerSecond: 800,
  }));
}

Deno.test("curvesSvg() draws loss and accuracy panels, one line per split, labelled", () => {
  const svg = curvesSvg(history(3));
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="840" height="280"/);
  const doc = parseSvg(svg);
  const panels = [...doc.documentElement.children];
  assert.deepEqual(panels.map((p) => [p.tagName, p.getAttribute("x")]), [
    ["svg", "0"],
    ["svg", "420"],
  ]);
  assert.deepEqual(texts(doc, '[aria-label="y-axis label"]'), [
    "↓ cross-entropy loss",
    "↑ accuracy (%)",
  ]);
  for (const panel of panels) {
    const lines = [...panel.querySelectorAll('[aria-label="line"] path')];
    assert.deepEqual(lines.map((l) => l.getAttribute("stroke")), ["#4269d0", "#ff725c"]);
    // Three epochs: three points a line.
    for (const line of lines) assert.equal(line.getAttribute("d")?.split("L").length, 3);
    assert.deepEqual(texts(panel, '[aria-label="text"] text'), ["train", "test"]);
    assert.deepEqual(texts(panel, '[aria-label="x-axis tick label"] text'), ["1", "2", "3"]);
  }
});

Deno.test("curvesSvg() labels at most about ten epochs on the x axis", () => {
  const doc = parseSvg(curvesSvg(history(25)));
  const panel = doc.documentElement.children[0];
  assert.deepEqual(
    texts(panel, '[aria-label="x-axis tick label"] text'),
    ["3", "6", "9", "12", "15", "18", "21", "24"],
  );
});

Deno.test("curvesSvg() prints no Plot warning, also after the first epoch", () => {
  for (const epochs of [1, 2, 3, 12]) {
    const { result: svg, warnings } = capturingWarnings(() => curvesSvg(history(epochs)));
    assert.deepEqual(warnings, [], `after ${epochs} epoch(s)`);
    // Plot also marks a figure that warned with a ⚠️ in its corner.
    assert.ok(!svg.includes("⚠"), `after ${epochs} epoch(s)`);
  }
});

Deno.test("confusionSvg() draws a cell and a count for every pair of classes", () => {
  const confusion = CIFAR10_CLASSES.map((_, t) => CIFAR10_CLASSES.map((_, p) => t === p ? 90 : t));
  const { result: svg, warnings } = capturingWarnings(() =>
    confusionSvg(confusion, CIFAR10_CLASSES)
  );
  assert.deepEqual(warnings, []);
  const doc = parseSvg(svg);
  assert.equal(doc.querySelectorAll('[aria-label="cell"] rect').length, 100);
  const counts = [...doc.querySelectorAll('[aria-label="text"] text')];
  assert.deepEqual(counts.map((c) => c.textContent).sort(), confusion.flat().map(String).sort());
  // Counts over half the largest are white on the dark cells, the others black.
  assert.deepEqual(
    counts.filter((c) => c.getAttribute("fill") === "white").map((c) => c.textContent),
    new Array(10).fill("90"),
  );
  assert.deepEqual(texts(doc, '[aria-label="x-axis tick label"] text'), [...CIFAR10_CLASSES]);
  assert.deepEqual(texts(doc, '[aria-label="y-axis tick label"] text'), [...CIFAR10_CLASSES]);
  assert.deepEqual(texts(doc, '[aria-label="x-axis label"]'), ["predicted"]);
});

Deno.test("perClassSvg() draws a bar per class with its accuracy in percent", () => {
  const doc = parseSvg(perClassSvg(CIFAR10_CLASSES.map((_, i) => i / 10), CIFAR10_CLASSES));
  const widths = [...doc.querySelectorAll('[aria-label="bar"] rect')].map((bar) =>
    Number(bar.getAttribute("width"))
  );
  assert.equal(widths.length, 10);
  // The x axis runs 0..100 %, so the bars' widths are proportional to the accuracies.
  widths.forEach((width, i) => assert.ok(Math.abs(width - i * widths[1]) < 1e-9));
  assert.deepEqual(
    texts(doc, '[aria-label="text"] text'),
    ["0.0", "10.0", "20.0", "30.0", "40.0", "50.0", "60.0", "70.0", "80.0", "90.0"],
  );
  assert.deepEqual(texts(doc, '[aria-label="y-axis tick label"] text'), [...CIFAR10_CLASSES]);
});

Deno.test("classBalanceSvg() draws a bar per class and split, and escapes the split names", () => {
  const svg = classBalanceSvg([
    { split: "train", counts: CIFAR10_CLASSES.map((_, i) => 100 + i) },
    { split: "test <100>", counts: CIFAR10_CLASSES.map((_, i) => 10 + i) },
  ], CIFAR10_CLASSES);
  const doc = parseSvg(svg);
  assert.equal(doc.querySelectorAll('[aria-label="bar"] rect').length, 20);
  assert.deepEqual(texts(doc, '[aria-label="fx-axis tick label"] text'), ["train", "test <100>"]);
  assert.ok(svg.includes("test &lt;100&gt;"));
});

Deno.test("perLayerSvg() draws a line per network on a log scale, without Plot warnings", () => {
  for (const depth of [1, 4]) {
    const rows: LayerValue[] = ["plain", "residual"].flatMap((network) =>
      Array.from({ length: depth }, (_, i) => ({ network, layer: i + 1, value: 10 ** -i }))
    );
    const { result: svg, warnings } = capturingWarnings(() => perLayerSvg(rows, "↑ norm"));
    assert.deepEqual(warnings, [], `depth ${depth}`);
    assert.ok(!svg.includes("⚠"), `depth ${depth}`);
    const doc = parseSvg(svg);
    assert.equal(doc.querySelectorAll('[aria-label="line"] path').length, 2);
    assert.deepEqual(texts(doc, '[aria-label="text"] text'), ["plain", "residual"]);
    assert.deepEqual(texts(doc, '[aria-label="y-axis label"]'), ["↑ norm"]);
  }
  const doc = parseSvg(perLayerSvg([
    { network: "plain", layer: 1, value: 1e-4 },
    { network: "plain", layer: 2, value: 1 },
  ], "norm"));
  // A log scale: the powers of ten are labelled, evenly spaced.
  const labelled = [...doc.querySelectorAll('[aria-label="y-axis tick label"] text')]
    .filter((tick) => tick.textContent !== "");
  assert.deepEqual(labelled.map((tick) => tick.textContent), ["100µ", "1m", "10m", "100m", "1"]);
  const y = labelled.map((tick) =>
    Number(tick.getAttribute("transform")?.match(/,([\d.]+)\)/)?.[1])
  );
  const steps = y.slice(1).map((v, i) => y[i] - v);
  for (const step of steps) assert.ok(Math.abs(step - steps[0]) < 1e-6, `steps ${steps}`);
});

Deno.test("depthSvg() draws train and test error per net: solid ResNets, dashed plain nets", () => {
  const points = (base: number) =>
    [1, 2, 3].map((epoch) => ({
      epoch,
      trainError: epoch === 1 && base > 0.5 ? null : base - 0.05 * epoch,
      testError: base + 0.02 - 0.05 * epoch,
    }));
  const curves = [
    { name: "plain-20", depth: 20, residual: false, points: points(0.5) },
    { name: "ResNet-20", depth: 20, residual: true, points: points(0.45) },
    { name: "plain-56", depth: 56, residual: false, points: points(0.6) },
    { name: "ResNet-56", depth: 56, residual: true, points: points(0.4) },
  ];
  const { result: svg, warnings } = capturingWarnings(() => depthSvg(curves, "↓ train (%)"));
  assert.deepEqual(warnings, []);
  const doc = parseSvg(svg);
  const panels = doc.querySelectorAll("svg > svg");
  assert.equal(panels.length, 2);
  for (const panel of panels) {
    const lines = [...panel.querySelectorAll('[aria-label="line"]')];
    assert.equal(lines.length, 2, "one mark for ResNets, one for plain nets");
    assert.equal(lines[0].querySelectorAll("path").length, 2);
    assert.equal(lines[0].getAttribute("stroke-dasharray"), null);
    assert.equal(lines[1].getAttribute("stroke-dasharray"), "6 4");
    assert.deepEqual(
      texts(panel, '[aria-label="text"] text').sort(),
      ["ResNet-20", "ResNet-56", "plain-20", "plain-56"],
    );
  }
  assert.deepEqual(texts(doc, '[aria-label="y-axis label"]'), ["↓ train (%)", "↓ test error (%)"]);
  // A colour per depth, shared by the plain net and the ResNet of that depth.
  const strokes = [...panels[1].querySelectorAll('[aria-label="line"] path')]
    .map((p) => p.getAttribute("stroke"));
  assert.equal(new Set(strokes).size, 2);
});

Deno.test("sideBySide() places each panel one panel width to the right of the last", () => {
  const panel = '<svg width="10" height="5"><rect/></svg>';
  assert.equal(
    sideBySide([panel, panel], 10, 5),
    '<svg xmlns="http://www.w3.org/2000/svg" width="20" height="5" viewBox="0 0 20 5">' +
      '<svg x="0" y="0" width="10" height="5"><rect/></svg>' +
      '<svg x="10" y="0" width="10" height="5"><rect/></svg></svg>',
  );
});

Deno.test("imageGridSvg() places scaled images in rows with wrapped, escaped captions", async () => {
  const rgb = new Uint8Array(32 * 32 * 3).map((_, i) => (i * 37) % 256);
  const svg = await imageGridSvg([
    { rgb, caption: "cat → <dog>", color: "#c0392b" },
    { rgb, caption: "ship" },
    { rgb, caption: "automobile automobile" },
  ], { columns: 2, title: "Some <images>" });
  const doc = parseSvg(svg);
  const root = doc.documentElement;
  // 2 columns of 96 px images plus a 6 px gap each; a 20 px title; rows of image + captions.
  assert.deepEqual(
    ["width", "height"].map((a) => root.getAttribute(a)),
    ["204", String(20 + (96 + 13 + 6) + (96 + 2 * 13 + 6))],
  );
  const images = [...doc.querySelectorAll("image")];
  assert.deepEqual(
    images.map((image) => ["x", "y", "width"].map((a) => image.getAttribute(a))),
    [["3", "20", "96"], ["105", "20", "96"], ["3", "135", "96"]],
  );
  assert.ok(images.every((image) => image.getAttribute("image-rendering") === "optimizeSpeed"));
  const href = images[0].getAttribute("href") ?? "";
  assert.match(href, /^data:image\/png;base64,/);
  const png = decode(Uint8Array.from(atob(href.split(",")[1]), (c) => c.charCodeAt(0)));
  assert.deepEqual(new Uint8Array(png.data), rgb);
  const captions = [...doc.querySelectorAll("text")].map((
    t,
  ) => [t.textContent, t.getAttribute("fill")]);
  assert.deepEqual(captions, [
    ["Some <images>", "currentColor"],
    ["cat → <dog>", "#c0392b"],
    ["ship", "currentColor"],
    ["automobile", "currentColor"],
    ["automobile", "currentColor"],
  ]);
  assert.ok(svg.includes("cat → &#60;dog&#62;"));
});

Deno.test("imageGridSvg() widens cells to cellWidth and centres the images in them", async () => {
  const svg = await imageGridSvg([{ rgb: new Uint8Array(32 * 32 * 3), caption: "x" }], {
    cellWidth: 200,
  });
  const doc = parseSvg(svg);
  assert.equal(doc.documentElement.getAttribute("width"), "206");
  assert.equal(doc.querySelector("image")?.getAttribute("x"), String(3 + (200 - 96) / 2));
  assert.equal(doc.querySelector("text")?.getAttribute("x"), String(3 + 100));
});

Deno.test("wrapCaption() breaks at spaces within the width, and splits a longer word", () => {
  assert.deepEqual(wrapCaption("cat: cat 45.0%, dog 30.0%", 10), [
    "cat: cat",
    "45.0%, dog",
    "30.0%",
  ]);
  assert.deepEqual(wrapCaption("  a  b ", 10), ["a b"]);
  assert.deepEqual(wrapCaption("x abcdefghij", 4), ["x", "abcd", "efgh", "ij"]);
  assert.deepEqual(wrapCaption("", 4), []);
});

Deno.test("htmlTable() makes the first row the header and right-aligns formatted numbers", () => {
  const html = htmlTable([["layer", "params"], ["conv <1>", 1728], ["fc", 5130.5]]);
  assertWellFormed(html);
  const left = 'style="text-align:left;padding:2px 8px"';
  const right = 'style="text-align:right;padding:2px 8px"';
  assert.equal(
    html,
    `<table><thead><tr><th ${left}>layer</th><th ${left}>params</th></tr></thead><tbody>` +
      `<tr><td ${left}>conv &#60;1&#62;</td><td ${right}>1,728</td></tr>` +
      `<tr><td ${left}>fc</td><td ${right}>5,130.5</td></tr></tbody></table>`,
  );
});

Deno.test("escapeHtml() escapes the five characters special in HTML text and attributes", () => {
  assert.equal(
    escapeHtml(`<a href="x">Tom & Jerry's</a>`),
    "&#60;a href=&#34;x&#34;&#62;Tom &#38; Jerry&#39;s&#60;/a&#62;",
  );
  assert.equal(escapeHtml("cat → dog, 100%"), "cat → dog, 100%");
});
