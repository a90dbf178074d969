/**
 * Where the notebook's outputs go. In a Deno Jupyter kernel, HTML and figures are shown as cell
 * outputs, one of them updated in place while a cell trains; outside a kernel (`deno run`,
 * `deno test`) the same calls print a line, or a {@linkcode RecordingSink} keeps what a
 * notebook would have shown.
 *
 * Figures are shown as PNG images ({@linkcode figureRecord}), not SVG: JupyterLab and Notebook
 * show no SVG output of a notebook they do not trust (a fresh clone), and nbconvert 6's HTML
 * export strips an SVG's shapes; a PNG is shown by every frontend, trusted or not.
 *
 * - sinks: {@linkcode JupyterSink}, {@linkcode RecordingSink}, the console, chosen by
 *   {@linkcode displaySink} and replaced with {@linkcode setDisplaySink};
 * - showing: {@linkcode display}, {@linkcode showHtml}, {@linkcode showSvg},
 *   {@linkcode showImageGrid}, {@linkcode log};
 * - redrawing in place: {@linkcode LiveDisplay}, with {@linkcode progressView} for training;
 * - {@linkcode scrollBox} for long tables.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { BatchProgress } from "../train.ts";
import { type CaptionedImage, type ImageGridOptions, imageGridSvg } from "../report/figures.ts";
import { escapeHtml } from "../report/html.ts";
import { DEFAULT_PNG_SCALE, svgToPng } from "../report/raster.ts";
import { formatDuration, ProgressLine } from "../report/progress.ts";

/** Output data by MIME type, as a Jupyter `display_data` message carries it. */
export type MediaBundle = Record<string, string>;

/** One display as a notebook cell's output records it. */
export interface DisplayRecord {
  data: MediaBundle;
  /** Per MIME type, e.g. `{ "image/png": { width: 420, height: 280 } }`. @default none */
  metadata?: Record<string, unknown>;
  /** Set for displays that are later updated in place. */
  displayId?: string;
}

/** Where displays go: the Jupyter kernel, the console, or a recorder. */
export interface DisplaySink {
  /** Shows a new output. */
  display(record: DisplayRecord): Promise<void>;
  /** Replaces the output shown earlier with the same `displayId`. */
  update(record: DisplayRecord & { displayId: string }): Promise<void>;
  /** Resolves once what was sent so far has reached the frontend (as far as can be told). */
  settle?(): Promise<void>;
}

/** The part of Deno's `Deno.jupyter` namespace used here (it is typed as unstable). */
export interface JupyterApi {
  broadcast(msgType: string, content: Record<string, unknown>): Promise<void>;
}

/** `Deno.jupyter`, or null outside `deno jupyter` (where merely reading it throws). */
function jupyterApi(): JupyterApi | null {
  try {
    return (Reflect.get(Deno, "jupyter") as JupyterApi | undefined) ?? null;
  } catch {
    return null;
  }
}

/** True when this code runs in a Deno Jupyter kernel. */
export function inJupyter(): boolean {
  return jupyterApi() !== null;
}

/**
 * How long a display waits after sending. Deno's kernel (2.9) evaluates cells on one thread and
 * publishes their outputs from a queue on another, concurrently with the "cell finished" status;
 * an output still queued when that status goes out is dropped by nbclient (seen with a figure
 * sent as a cell's last statement). Waiting this long lets the queue drain first.
 */
export const JUPYTER_SETTLE_MS = 250;

/**
 * Sends displays to the kernel's frontend through `Deno.jupyter.broadcast`. A new display
 * waits {@linkcode JUPYTER_SETTLE_MS} afterwards; in-place updates do not, except through
 * {@linkcode JupyterSink.settle}.
 */
export class JupyterSink implements DisplaySink {
  #api: JupyterApi;
  #settleMs: number;

  /**
   * @param api `Deno.jupyter`, or a stand-in.
   * @param settleMs Wait after each display. @default JUPYTER_SETTLE_MS
   */
  constructor(api: JupyterApi, settleMs = JUPYTER_SETTLE_MS) {
    this.#api = api;
    this.#settleMs = settleMs;
  }
  async display(record: DisplayRecord): Promise<void> {
    await this.#send("display_data", record);
    await this.settle();
  }
  update(record: DisplayRecord & { displayId: string }): Promise<void> {
    return this.#send("update_display_data", record);
  }
  settle(): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, this.#settleMs));
  }
  #send(msgType: string, { data, metadata, displayId }: DisplayRecord): Promise<void> {
    return this.#api.broadcast(msgType, {
      data,
      metadata: metadata ?? {},
      transient: displayId === undefined ? {} : { display_id: displayId },
    });
  }
}

/** A short text for an output outside a notebook: its `text/plain`, else its types and sizes. */
export function describeBundle(data: MediaBundle): string {
  if (data["text/plain"] !== undefined) return data["text/plain"];
  return `[${
    Object.entries(data).map(([type, body]) => `${type}, ${(body.length / 1024).toFixed(1)} kB`)
      .join("; ")
  }]`;
}

/**
 * Keeps every output as a notebook would (an update replaces the output with its display id),
 * grouped by `cell`, which the code running the cells sets; optionally prints a line per output.
 *
 * @example
 * ```ts
 * import { RecordingSink } from "./display.ts";
 * const sink = new RecordingSink();
 * sink.cell = 2;
 * await sink.display({ data: { "text/html": "<b>1</b>" }, displayId: "p" });
 * await sink.update({ data: { "text/html": "<b>2</b>" }, displayId: "p" });
 * console.log(sink.outputs[2][0].data["text/html"]); // <b>2</b>
 * ```
 */
export class RecordingSink implements DisplaySink {
  /** The cell that outputs are attributed to. @default 0 */
  cell = 0;
  /** Outputs by cell index. */
  readonly outputs: Record<number, DisplayRecord[]> = {};
  #print: boolean;

  /** @param options `print`: also print {@linkcode describeBundle} per output. @default false */
  constructor(options: { print?: boolean } = {}) {
    this.#print = options.print ?? false;
  }

  display(record: DisplayRecord): Promise<void> {
    (this.outputs[this.cell] ??= []).push({ ...record });
    if (this.#print) console.log(describeBundle(record.data));
    return Promise.resolve();
  }

  update(record: DisplayRecord & { displayId: string }): Promise<void> {
    for (const outputs of Object.values(this.outputs)) {
      for (const output of outputs) {
        if (output.displayId !== record.displayId) continue;
        output.data = record.data;
        if (record.metadata === undefined) delete output.metadata;
        else output.metadata = record.metadata;
      }
    }
    return Promise.resolve();
  }
}

/** Outside a kernel: print a line per display; in-place updates print nothing (see LiveDisplay). */
class ConsoleSink implements DisplaySink {
  display(record: DisplayRecord): Promise<void> {
    console.log(describeBundle(record.data));
    return Promise.resolve();
  }
  update(): Promise<void> {
    return Promise.resolve();
  }
}

let sink: DisplaySink | null = null;

/** The sink displays go to: set by {@linkcode setDisplaySink}, else the kernel or the console. */
export function displaySink(): DisplaySink {
  if (sink === null) {
    const api = jupyterApi();
    sink = api === null ? new ConsoleSink() : new JupyterSink(api);
  }
  return sink;
}

/**
 * Sends all later displays to `next` (e.g. a {@linkcode RecordingSink} in a test).
 *
 * @returns The sink used until now, to restore afterwards.
 */
export function setDisplaySink(next: DisplaySink): DisplaySink {
  const previous = displaySink();
  sink = next;
  return previous;
}

/**
 * Prints a line, as `console.log` does, and in a kernel waits until it is published: a cell's
 * last printed line can otherwise be lost (see {@linkcode JUPYTER_SETTLE_MS}).
 *
 * @example
 * ```ts
 * import { log } from "./display.ts";
 * await log("Test Accuracy:", 0.5);
 * ```
 */
export async function log(...values: unknown[]): Promise<void> {
  console.log(...values);
  await displaySink().settle?.();
}

/**
 * Shows an output with any MIME types (`text/html`, `image/png`, `text/plain`, ...).
 *
 * @param data The output by MIME type.
 * @param metadata Per MIME type (a PNG's display size). @default none
 */
export function display(data: MediaBundle, metadata?: Record<string, unknown>): Promise<void> {
  return displaySink().display(metadata === undefined ? { data } : { data, metadata });
}

/**
 * Shows HTML (a table, an image grid, highlighted code).
 *
 * @param html The markup.
 * @param text What a plain-text frontend or the console shows instead. @default a size note
 */
export function showHtml(html: string, text?: string): Promise<void> {
  return display(
    text === undefined ? { "text/html": html } : { "text/html": html, "text/plain": text },
  );
}

/** The axis labels Plot writes (`<g aria-label="x-axis label"><text>epoch</text>`), in order. */
function axisLabels(svg: string): string[] {
  const labels = svg.matchAll(/aria-label="[\w-]*axis label"[^>]*>\s*<text[^>]*>([^<]*)</g);
  const entities: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
  return [...labels].map((m) =>
    m[1].replace(
      /&(?:#(\d+)|(\w+));/g,
      (all, code, name) =>
        code !== undefined ? String.fromCharCode(Number(code)) : entities[name] ?? all,
    )
  );
}

/**
 * A figure as a display: a PNG of the SVG (`DEFAULT_PNG_SCALE` pixels per unit, see raster.ts,
 * with the SVG's size in the metadata so that frontends show it at that size), and a text for
 * frontends without images. No `image/svg+xml` beside it: nbconvert 6 prefers SVG to PNG and
 * then strips its shapes, leaving the exported figure blank.
 *
 * @param svg A standalone `<svg>` document with a width and a height.
 * @param text The alternative text. @default "Figure: " and the axis labels
 * @returns The display record.
 *
 * @example
 * ```ts
 * import { figureRecord } from "./display.ts";
 * const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="30" height="20"/>';
 * const record = await figureRecord(svg, "an empty figure");
 * console.log(record.metadata); // { "image/png": { width: 30, height: 20 } }
 * ```
 */
export async function figureRecord(svg: string, text?: string): Promise<DisplayRecord> {
  const png = await svgToPng(svg);
  // The size from the PNG's IHDR chunk: width at byte 16, height at byte 20, big-endian.
  const header = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const width = header.getUint32(16) / DEFAULT_PNG_SCALE;
  const height = header.getUint32(20) / DEFAULT_PNG_SCALE;
  const labels = axisLabels(svg);
  const alt = text ?? (labels.length > 0 ? `Figure: ${labels.join(", ")}` : "Figure");
  return {
    data: { "image/png": Buffer.from(png).toString("base64"), "text/plain": alt },
    metadata: { "image/png": { width, height } },
  };
}

/**
 * Shows an SVG figure (as the functions of `figures.ts` return them) as a PNG image, see
 * {@linkcode figureRecord}.
 *
 * @param svg A standalone `<svg>` document.
 * @param text What a frontend without images, or the console, shows instead.
 *   @default "Figure: " and the axis labels
 */
export async function showSvg(svg: string, text?: string): Promise<void> {
  await displaySink().display(await figureRecord(svg, text));
}

/**
 * Shows small images with captions as one figure (see `imageGridSvg()` in `figures.ts`): one
 * PNG image keeps the grid's layout in every frontend, where Jupyter's sanitiser breaks an HTML
 * grid of a notebook it does not trust.
 *
 * @param images The images and their captions.
 * @param options The grid's layout, and `text`, the alternative text.
 *   `text` @default the title and the captions
 */
export async function showImageGrid(
  images: CaptionedImage[],
  options: ImageGridOptions & { text?: string } = {},
): Promise<void> {
  const text = options.text ??
    [options.title, images.map((image) => image.caption).join("; ")].filter(Boolean).join(": ");
  await showSvg(await imageGridSvg(images, options), text);
}

let liveDisplays = 0;

/** Content for a {@linkcode LiveDisplay}: HTML for a notebook, text for a console. */
export interface View {
  html: string;
  text: string;
}

/**
 * One output redrawn in place, e.g. a progress line while a cell trains. In a kernel it is a
 * `display_data` output updated with `update_display_data`; on the console, a
 * {@linkcode ProgressLine} (redrawn on a terminal, a plain line every few seconds otherwise).
 *
 * @example
 * ```ts
 * import { LiveDisplay } from "./display.ts";
 * const live = await LiveDisplay.start("starting");
 * await live.update({ html: "<b>half way</b>", text: "half way" });
 * await live.finish(); // shows "half way" even if that update came too soon to be drawn
 * ```
 */
export class LiveDisplay {
  #id: string;
  #sink: DisplaySink;
  #line: ProgressLine | null;
  #minIntervalMs: number;
  #lastDrawMs = -Infinity;
  #html: string;
  #text: string;

  private constructor(
    sink: DisplaySink,
    line: ProgressLine | null,
    minIntervalMs: number,
    text: string,
  ) {
    this.#id = `live-${++liveDisplays}-${crypto.randomUUID()}`;
    this.#sink = sink;
    this.#line = line;
    this.#minIntervalMs = minIntervalMs;
    this.#html = escapeHtml(text);
    this.#text = text;
  }

  /**
   * Shows the display's first state.
   *
   * @param text The first content, as plain text (shown as HTML too).
   * @param options `minIntervalMs`: redraws closer together than this are skipped. @default 500
   * @returns The display, to update.
   */
  static async start(text: string, options: { minIntervalMs?: number } = {}): Promise<LiveDisplay> {
    const current = displaySink();
    const line = current instanceof ConsoleSink ? new ProgressLine(Deno.stdout) : null;
    const live = new LiveDisplay(current, line, options.minIntervalMs ?? 500, text);
    if (line !== null) line.update(text, true);
    else await current.display({ data: live.#bundle(), displayId: live.#id });
    live.#lastDrawMs = performance.now();
    return live;
  }

  /** Sets new content and redraws, unless the last redraw was under `minIntervalMs` ago. */
  async update(view: View): Promise<void> {
    this.#html = view.html;
    this.#text = view.text;
    const now = performance.now();
    if (now - this.#lastDrawMs < this.#minIntervalMs) return;
    this.#lastDrawMs = now;
    await this.#draw(false);
  }

  /** Redraws with the latest content (or `view` if given), however recent the last redraw. */
  async finish(view?: View): Promise<void> {
    this.#html = view?.html ?? this.#html;
    this.#text = view?.text ?? this.#text;
    await this.#draw(true);
    await this.#sink.settle?.();
    this.#line?.done();
  }

  #draw(final: boolean): Promise<void> {
    if (this.#line !== null) {
      this.#line.update(this.#text, final);
      return Promise.resolve();
    }
    return this.#sink.update({ data: this.#bundle(), displayId: this.#id });
  }

  #bundle(): MediaBundle {
    return { "text/html": this.#html, "text/plain": this.#text };
  }
}

/**
 * Wraps HTML in a box that scrolls (for long tables).
 *
 * @param html The content.
 * @param maxHeightPx The box's greatest height. @default 320
 */
export function scrollBox(html: string, maxHeightPx = 320): string {
  return `<div style="max-height:${maxHeightPx}px;overflow:auto">${html}</div>`;
}

/**
 * The training progress as one line of text and as HTML with a bar: epoch, batch, running loss,
 * images per second, time left.
 */
export function progressView(p: BatchProgress): View {
  const done = ((p.epoch - 1) * p.batches + p.batch) / (p.epochs * p.batches);
  const text = `Epoch ${p.epoch}/${p.epochs}, batch ${p.batch}/${p.batches}, ` +
    `loss ${p.loss.toFixed(4)}, ${p.imagesPerSecond.toFixed(1)} images/s, ` +
    `ETA ${formatDuration(p.etaSeconds)}`;
  const html = `<div style="font:13px monospace">` +
    `<progress value="${done.toFixed(4)}" max="1" style="width:240px;vertical-align:middle">` +
    `</progress> ${(100 * done).toFixed(0)}% &nbsp;${escapeHtml(text)}</div>`;
  return { html, text };
}
