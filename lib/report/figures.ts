/**
 * The figures, written once: the notebook shows them inline and the trainer writes them as
 * SVG files. Observable Plot draws them; outside a browser, linkedom supplies the `document`.
 *
 * @module
 */
import * as Plot from "@observablehq/plot";
import { parseHTML } from "linkedom";
import type { EpochRecord } from "../train/checkpoint.ts";
import { pngDataUrl } from "../io/png.ts";
import { escapeHtml } from "./html.ts";

const SVG_NS = "http://www.w3.org/2000/svg";
let shimDocument: Document | null = null;

/** A DOM document for Plot: the real one in a browser, a linkedom one elsewhere. */
function plotDocument(): Document {
  if (typeof globalThis.document !== "undefined") return globalThis.document;
  shimDocument ??= parseHTML("<!DOCTYPE html><html><body></body></html>").document as Document;
  return shimDocument;
}

/** Serialises a Plot result as a standalone SVG string (with its namespace, valid as a file). */
function toSvg(node: Element): string {
  const svg = node.tagName.toLowerCase() === "svg" ? node : node.querySelector("svg");
  if (svg === null) throw new Error("Expected Plot to produce an <svg> element");
  if (!svg.getAttribute("xmlns")) svg.setAttribute("xmlns", SVG_NS);
  return svg.outerHTML;
}

/** Lays SVGs out side by side in one SVG (one file for several panels). */
export function sideBySide(svgs: string[], panelWidth: number, height: number): string {
  const panels = svgs.map((s, i) => s.replace(/^<svg\b/, `<svg x="${i * panelWidth}" y="0"`)).join(
    "",
  );
  return `<svg xmlns="${SVG_NS}" width="${svgs.length * panelWidth}" height="${height}" ` +
    `viewBox="0 0 ${svgs.length * panelWidth} ${height}">${panels}</svg>`;
}

const WIDTH = 420;
const HEIGHT = 280;

/**
 * Loss and accuracy per epoch, train vs test: two panels in one SVG.
 *
 * @example
 * ```ts
 * import { curvesSvg } from "./figures.ts";
 * const svg = curvesSvg([{ epoch: 1, trainLoss: 1.5, trainAccuracy: 0.45, testLoss: 1.2,
 *   testAccuracy: 0.55, seconds: 60, imagesPerSecond: 800 }]);
 * console.log(svg.startsWith("<svg")); // true
 * ```
 */
export function curvesSvg(history: readonly EpochRecord[]): string {
  const long = history.flatMap((r) => [
    { epoch: r.epoch, split: "train", loss: r.trainLoss, accuracy: 100 * r.trainAccuracy },
    { epoch: r.epoch, split: "test", loss: r.testLoss, accuracy: 100 * r.testAccuracy },
  ]);
  const panel = (y: "loss" | "accuracy", label: string) =>
    toSvg(Plot.plot({
      document: plotDocument(),
      width: WIDTH,
      height: HEIGHT,
      marginRight: 50,
      x: {
        label: "epoch",
        ticks: history.map((r) => r.epoch).filter((e, _i, all) =>
          all.length <= 10 || e % Math.ceil(all.length / 10) === 0
        ),
        tickFormat: "d",
      },
      y: { label, grid: true },
      color: { domain: ["train", "test"], range: ["#4269d0", "#ff725c"] },
      marks: [
        // z names the series. Left to default to the stroke, Plot warns of "high cardinality"
        // when there are more series than half the points: after the first epoch (2 and 2).
        Plot.line(long, { x: "epoch", y, z: "split", stroke: "split", marker: "circle" }),
        Plot.text(
          long,
          Plot.selectLast({
            x: "epoch",
            y,
            z: "split",
            text: "split",
            fill: "split",
            dx: 6,
            textAnchor: "start",
          }),
        ),
      ],
    }) as unknown as Element);
  return sideBySide(
    [panel("loss", "↓ cross-entropy loss"), panel("accuracy", "↑ accuracy (%)")],
    WIDTH,
    HEIGHT,
  );
}

/**
 * The confusion matrix as a heatmap with counts: rows are true classes, columns predictions.
 */
export function confusionSvg(confusion: number[][], classNames: readonly string[]): string {
  const cells = confusion.flatMap((row, t) =>
    row.map((count, p) => ({ truth: classNames[t], predicted: classNames[p], count }))
  );
  const max = Math.max(1, ...cells.map((c) => c.count));
  return toSvg(Plot.plot({
    document: plotDocument(),
    width: 560,
    height: 480,
    marginLeft: 80,
    marginBottom: 70,
    padding: 0.05,
    x: { label: "predicted", domain: [...classNames], tickRotate: -40 },
    y: { label: "true", domain: [...classNames] },
    color: { scheme: "blues", domain: [0, max] },
    marks: [
      Plot.cell(cells, { x: "predicted", y: "truth", fill: "count" }),
      Plot.text(cells, {
        x: "predicted",
        y: "truth",
        text: "count",
        fill: (d: { count: number }) => d.count > max / 2 ? "white" : "black",
        // One series: without z, Plot groups by the fill and warns about its many values.
        ...({ z: null } as Record<string, unknown>),
        fontSize: 10,
      }),
    ],
  }) as unknown as Element);
}

/** Accuracy per class as horizontal bars. */
export function perClassSvg(perClassAccuracy: number[], classNames: readonly string[]): string {
  const rows = perClassAccuracy.map((a, i) => ({ name: classNames[i], accuracy: 100 * a }));
  return toSvg(Plot.plot({
    document: plotDocument(),
    width: WIDTH,
    height: 260,
    marginLeft: 80,
    x: { label: "accuracy (%)", domain: [0, 100], grid: true },
    y: { label: null, domain: [...classNames] },
    marks: [
      Plot.barX(rows, { x: "accuracy", y: "name", fill: "#4269d0" }),
      Plot.text(rows, {
        x: "accuracy",
        y: "name",
        text: (d: { accuracy: number }) => d.accuracy.toFixed(1),
        dx: 14,
      }),
    ],
  }) as unknown as Element);
}

/** Images per class in each split, side by side. */
export function classBalanceSvg(
  counts: { split: string; counts: number[] }[],
  classNames: readonly string[],
): string {
  const rows = counts.flatMap(({ split, counts }) =>
    counts.map((count, i) => ({ split, name: classNames[i], count }))
  );
  return toSvg(Plot.plot({
    document: plotDocument(),
    width: 640,
    height: 280,
    marginLeft: 50,
    marginBottom: 70,
    fx: { label: null, axis: "top", domain: counts.map((c) => c.split) },
    x: { axis: null, domain: [...classNames] },
    y: { label: "↑ images", grid: true },
    color: { type: "categorical", legend: false },
    marks: [
      Plot.barY(rows, { fx: "split", x: "name", y: "count", fill: "name" }),
      Plot.axisX({ tickRotate: -45, label: null }),
      Plot.ruleY([0]),
    ],
  }) as unknown as Element);
}

/** One row of a per-layer series: e.g. the gradient norm at each depth, per network. */
export interface LayerValue {
  network: string;
  layer: number;
  value: number;
}

/** Values per layer depth, one line per network, on a log scale (gradient norms span decades). */
export function perLayerSvg(rows: LayerValue[], yLabel: string): string {
  return toSvg(Plot.plot({
    document: plotDocument(),
    width: 560,
    height: HEIGHT,
    marginRight: 80,
    x: { label: "layer (input → output)", tickFormat: "d" },
    y: { label: yLabel, type: "log", grid: true },
    color: { legend: false },
    marks: [
      // z explicit, as in curvesSvg: one layer gives 2 points and 2 series.
      Plot.line(rows, {
        x: "layer",
        y: "value",
        z: "network",
        stroke: "network",
        marker: "circle",
      }),
      Plot.text(
        rows,
        Plot.selectLast({
          x: "layer",
          y: "value",
          z: "network",
          text: "network",
          fill: "network",
          dx: 6,
          textAnchor: "start",
        }),
      ),
    ],
  }) as unknown as Element);
}

/** An image with a caption, for {@linkcode imageGridHtml}. */
export interface CaptionedImage {
  /** 32x32x3 RGB bytes (one CIFAR-10 image, NHWC). */
  rgb: Uint8Array;
  caption: string;
  /** Caption colour, e.g. red for a wrong prediction. @default "inherit" */
  color?: string;
}

/**
 * A grid of small images with captions, as HTML (each image a PNG data URL, scaled up with
 * crisp pixels so a 32x32 image stays readable).
 */
export async function imageGridHtml(
  images: CaptionedImage[],
  options: { columns?: number; scale?: number; size?: number } = {},
): Promise<string> {
  const { columns = 8, scale = 3, size = 32 } = options;
  const cells = await Promise.all(images.map(async (image) => {
    const url = await pngDataUrl(image.rgb, size, size);
    return `<figure style="margin:2px;text-align:center;font:11px sans-serif">` +
      `<img src="${url}" width="${size * scale}" height="${size * scale}" ` +
      `style="image-rendering:pixelated;display:block">` +
      `<figcaption style="color:${image.color ?? "inherit"}">${
        escapeHtml(image.caption)
      }</figcaption></figure>`;
  }));
  return `<div style="display:grid;grid-template-columns:repeat(${columns},${
    size * scale + 4
  }px)">` +
    `${cells.join("")}</div>`;
}

/** A plain HTML table from rows of cells (first row is the header). */
export function htmlTable(rows: (string | number)[][]): string {
  const [head, ...body] = rows;
  const cell = (tag: string, v: string | number) =>
    `<${tag} style="text-align:${typeof v === "number" ? "right" : "left"};padding:2px 8px">${
      escapeHtml(typeof v === "number" ? v.toLocaleString("en-US") : v)
    }</${tag}>`;
  return `<table><thead><tr>${head.map((v) => cell("th", v)).join("")}</tr></thead><tbody>${
    body.map((r) => `<tr>${r.map((v) => cell("td", v)).join("")}</tr>`).join("")
  }</tbody></table>`;
}
