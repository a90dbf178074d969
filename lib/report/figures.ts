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

/** One network's curve in {@linkcode depthSvg}. */
export interface DepthCurve {
  /** The label at the line's end, e.g. `plain-56`. */
  name: string;
  /** Layers with weights; networks of one depth share a colour. */
  depth: number;
  /** With shortcuts (a solid line) or plain (dashed), as He et al.'s Fig. 6 draws them. */
  residual: boolean;
  /** Errors as fractions in [0, 1]; a `trainError` of null (not measured) leaves a gap. */
  points: readonly { epoch: number; trainError: number | null; testError: number }[];
}

/**
 * Training and test error per epoch of plain and residual networks of several depths, two
 * panels in one SVG: He et al.'s Fig. 6 (plain nets get worse with depth, ResNets better).
 * Solid lines are ResNets, dashed ones their plain twins; a colour is a depth.
 *
 * @param curves One per network.
 * @param trainLabel The left panel's axis label (what the training error was measured on).
 * @returns The SVG document.
 *
 * @example
 * ```ts
 * import { depthSvg } from "./figures.ts";
 * const points = [{ epoch: 1, trainError: 0.6, testError: 0.62 }];
 * const svg = depthSvg([{ name: "plain-20", depth: 20, residual: false, points }]);
 * console.log(svg.includes("stroke-dasharray")); // true: plain nets are dashed
 * ```
 */
export function depthSvg(
  curves: readonly DepthCurve[],
  trainLabel = "↓ training error (%)",
): string {
  const depths = [...new Set(curves.map((c) => c.depth))].sort((a, b) => a - b);
  const epochs = [...new Set(curves.flatMap((c) => c.points.map((p) => p.epoch)))];
  const panel = (key: "trainError" | "testError", label: string) => {
    const rows = curves.flatMap((c) =>
      c.points.map((p) => ({
        name: c.name,
        depth: String(c.depth),
        residual: c.residual,
        epoch: p.epoch,
        error: p[key] === null ? NaN : 100 * p[key]!,
      }))
    );
    // Plot takes a dash pattern as a constant, not a channel: one line mark per kind.
    const line = (residual: boolean) =>
      Plot.line(rows.filter((r) => r.residual === residual), {
        x: "epoch",
        y: "error",
        z: "name",
        stroke: "depth",
        marker: "circle",
        ...(residual ? {} : { strokeDasharray: "6 4" }),
      });
    return toSvg(Plot.plot({
      document: plotDocument(),
      width: WIDTH,
      height: HEIGHT,
      marginRight: 70,
      x: {
        label: "epoch",
        ticks: epochs.filter((e, _i, all) =>
          all.length <= 10 || e % Math.ceil(all.length / 10) === 0
        ),
        tickFormat: "d",
      },
      y: { label, grid: true },
      color: {
        domain: depths.map(String),
        range: ["#4269d0", "#ff725c", "#3ca951", "#a463f2", "#efb118"],
      },
      marks: [
        line(true),
        line(false),
        Plot.text(
          rows.filter((r) => Number.isFinite(r.error)),
          Plot.selectLast({
            x: "epoch",
            y: "error",
            z: "name",
            text: "name",
            fill: "depth",
            dx: 6,
            textAnchor: "start",
          }),
        ),
      ],
    }) as unknown as Element);
  };
  return sideBySide(
    [panel("trainError", trainLabel), panel("testError", "↓ test error (%)")],
    WIDTH,
    HEIGHT,
  );
}

/** An image with a caption, for {@linkcode imageGridSvg}. */
export interface CaptionedImage {
  /** 32x32x3 RGB bytes (one CIFAR-10 image, NHWC). */
  rgb: Uint8Array;
  caption: string;
  /** Caption colour, e.g. red for a wrong prediction. @default the text colour */
  color?: string;
}

/** Options of {@linkcode imageGridSvg}. */
export interface ImageGridOptions {
  /** Images per row. @default 8 */
  columns?: number;
  /** How many screen pixels an image pixel becomes. @default 3 */
  scale?: number;
  /** The images' side in pixels. @default 32 */
  size?: number;
  /** Width of a cell, for captions wider than an image. @default the scaled image's width */
  cellWidth?: number;
  /** A heading above the grid. @default none */
  title?: string;
}

const GRID_GAP = 6;
const CAPTION_FONT_PX = 11;
const CAPTION_LINE_PX = 13;
const TITLE_FONT_PX = 13;
const TITLE_LINE_PX = 20;
/**
 * How wide a character of the captions' font (DejaVu Sans, see raster.ts) is on average, as a
 * share of the font size (lower case 0.28 to 0.97, about 0.6; digits 0.64): captions wrap at
 * this estimate, as an SVG has no text layout of its own.
 */
const CHAR_WIDTH_EM = 0.6;

/** Splits a caption into lines of at most `maxChars` characters, at spaces where it can. */
export function wrapCaption(caption: string, maxChars: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (let word of caption.split(/\s+/).filter((w) => w !== "")) {
    while (word.length > maxChars) {
      if (line !== "") lines.push(line);
      lines.push(word.slice(0, maxChars));
      word = word.slice(maxChars);
      line = "";
    }
    if (line === "") line = word;
    else if (line.length + 1 + word.length <= maxChars) line += ` ${word}`;
    else {
      lines.push(line);
      line = word;
    }
  }
  if (line !== "") lines.push(line);
  return lines;
}

/**
 * A grid of small images with captions, as one SVG: each image a PNG data URL scaled up with
 * crisp pixels, each caption wrapped under it. A figure rather than HTML, because Jupyter's
 * sanitiser drops the CSS grid of an HTML grid in a notebook it does not trust, while the
 * notebook shows an SVG as a PNG that every frontend displays.
 *
 * @example
 * ```ts
 * import { imageGridSvg } from "./figures.ts";
 * const svg = await imageGridSvg([{ rgb: new Uint8Array(32 * 32 * 3), caption: "cat" }]);
 * console.log(svg.includes("<text")); // true
 * ```
 */
export async function imageGridSvg(
  images: CaptionedImage[],
  options: ImageGridOptions = {},
): Promise<string> {
  const { columns = 8, scale = 3, size = 32, title } = options;
  const side = size * scale;
  const cellWidth = Math.max(side, options.cellWidth ?? side);
  const maxChars = Math.max(1, Math.floor(cellWidth / (CAPTION_FONT_PX * CHAR_WIDTH_EM)));
  const captions = images.map((image) => wrapCaption(image.caption, maxChars));
  const width = Math.min(columns, Math.max(1, images.length)) * (cellWidth + GRID_GAP);
  const parts: string[] = [];
  let y = 0;
  if (title !== undefined) {
    parts.push(
      `<text x="${GRID_GAP / 2}" y="${TITLE_FONT_PX + 2}" font-size="${TITLE_FONT_PX}" ` +
        `font-weight="bold" fill="currentColor">${escapeHtml(title)}</text>`,
    );
    y = TITLE_LINE_PX;
  }
  for (let row = 0; row * columns < images.length; row++) {
    const indices = images.map((_, i) => i).slice(row * columns, (row + 1) * columns);
    const lines = Math.max(...indices.map((i) => captions[i].length));
    for (const [column, i] of indices.entries()) {
      const x = column * (cellWidth + GRID_GAP) + GRID_GAP / 2;
      const url = await pngDataUrl(images[i].rgb, size, size);
      // optimizeSpeed: nearest-neighbour scaling (resvg, browsers), so the pixels stay sharp.
      parts.push(
        `<image href="${url}" x="${x + (cellWidth - side) / 2}" y="${y}" width="${side}" ` +
          `height="${side}" image-rendering="optimizeSpeed"/>`,
      );
      captions[i].forEach((line, k) => {
        parts.push(
          `<text x="${x + cellWidth / 2}" y="${y + side + CAPTION_LINE_PX * (k + 1)}" ` +
            `text-anchor="middle" font-size="${CAPTION_FONT_PX}" ` +
            `fill="${escapeHtml(images[i].color ?? "currentColor")}">${escapeHtml(line)}</text>`,
        );
      });
    }
    y += side + CAPTION_LINE_PX * lines + GRID_GAP;
  }
  return `<svg xmlns="${SVG_NS}" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}" ` +
    `font-family="system-ui, sans-serif">${parts.join("")}</svg>`;
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
