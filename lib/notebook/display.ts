/**
 * What the notebook `notebooks/resnet-cifar.ipynb` needs besides the library proper:
 *
 * - showing HTML and SVG from a Deno Jupyter kernel, including one display updated in place
 *   (training progress), and the same calls working outside a kernel (`deno run`, `deno test`),
 *   where they print a line or record what would have been shown;
 * - the run plan: a configuration this machine can finish in a few minutes, with the reason;
 * - small helpers that turn data, models and predictions into rows and images for the figures.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { BackendInfo } from "../backends/init.ts";
import { DEFAULT_CONFIG, makeConfig, type TrainConfig } from "../train/config.ts";
import {
  augmentInto,
  drawAugmentation,
  epochBatches,
  IMAGE_BYTES,
  type LoadOptions,
  NUM_CLASSES,
  type Split,
} from "../data.ts";
import type { CaptionedImage } from "../report/figures.ts";
import { formatDuration, ProgressLine } from "../report/progress.ts";
import { Rng } from "../train/rng.ts";
import { resnet18 } from "../model.ts";
import { type BatchProgress, createOptimizer, trainStep } from "../train.ts";

// ---------------------------------------------------------------- displays

/** Output data by MIME type, as a Jupyter `display_data` message carries it. */
export type MediaBundle = Record<string, string>;

/** One display as a notebook cell's output records it. */
export interface DisplayRecord {
  data: MediaBundle;
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

/** Sends displays to the kernel's frontend through `Deno.jupyter.broadcast`. */
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
  #send(msgType: string, { data, displayId }: DisplayRecord): Promise<void> {
    return this.#api.broadcast(msgType, {
      data,
      metadata: {},
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
        if (output.displayId === record.displayId) output.data = record.data;
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

/** Shows an output with any MIME types (`text/html`, `image/svg+xml`, `text/plain`, ...). */
export function display(data: MediaBundle): Promise<void> {
  return displaySink().display({ data });
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

/**
 * Shows an SVG figure (as the functions of `figures.ts` return them).
 *
 * @param svg A standalone `<svg>` document.
 * @param text What a plain-text frontend or the console shows instead. @default a size note
 */
export function showSvg(svg: string, text?: string): Promise<void> {
  return display(
    text === undefined ? { "image/svg+xml": svg } : { "image/svg+xml": svg, "text/plain": text },
  );
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

/** Escapes `& < > " '` for HTML text and attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Wraps HTML in a box of at most `maxHeightPx` that scrolls (for long tables). */
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

// ---------------------------------------------------------------- library source

const KEYWORDS = new RegExp(
  "\\b(?:as|async|await|const|else|export|for|function|if|import|interface|let|new|of|" +
    "readonly|return|type)\\b",
);
const TOKENS =
  /(\/\*\*?[\s\S]*?\*\/|\/\/[^\n]*)|("(?:[^"\\\n]|\\.)*"|`(?:[^`\\]|\\.)*`)|(\b\w+\b)/g;

/**
 * A declaration's source text, JSDoc included, cut out of a TypeScript file: from the doc
 * comment above `export function name` / `export const name` to the closing line at column 0.
 *
 * @param source The file's text.
 * @param name The exported function or constant.
 * @returns The declaration's lines.
 * @throws {Error} If `source` has no such export.
 *
 * @example
 * ```ts
 * import { declarationSource } from "./display.ts";
 * const file = "/** Two. *\/\nexport function two(): number {\n  return 2;\n}\nconst x = 1;\n";
 * console.log(declarationSource(file, "two").split("\n").length); // 4
 * ```
 */
export function declarationSource(source: string, name: string): string {
  const lines = source.split("\n");
  const start = lines.findIndex((line) =>
    new RegExp(`^export (?:async )?(?:function|const|class|interface) ${name}\\b`).test(line)
  );
  if (start < 0) throw new Error(`Expected an exported declaration of ${name} but found none`);
  let first = start;
  if (lines[start - 1]?.trimEnd().endsWith("*/")) {
    while (first > 0 && !lines[first].startsWith("/**")) first--;
  }
  let last = start;
  if (!/;\s*$/.test(lines[start])) {
    while (last < lines.length - 1 && !/^[}\]]/.test(lines[last])) last++;
  }
  return lines.slice(first, last + 1).join("\n");
}

/** TypeScript as HTML with comments, strings and keywords coloured. */
export function highlightTypeScript(code: string): string {
  let html = "";
  let at = 0;
  for (const match of code.matchAll(TOKENS)) {
    html += escapeHtml(code.slice(at, match.index));
    const [token, comment, string, word] = match;
    const color = comment !== undefined
      ? "#6a737d"
      : string !== undefined
      ? "#032f62"
      : word !== undefined && KEYWORDS.test(word)
      ? "#d73a49"
      : null;
    html += color === null
      ? escapeHtml(token)
      : `<span style="color:${color}">${escapeHtml(token)}</span>`;
    at = match.index + token.length;
  }
  html += escapeHtml(code.slice(at));
  return `<pre style="font-size:12px;line-height:1.35;background:#f6f8fa;padding:8px;` +
    `overflow:auto">${html}</pre>`;
}

/**
 * Shows declarations of a `lib/` module as highlighted code: what the notebook teaches is the
 * library's own code, not a copy of it.
 *
 * @param file A module of `lib/`, e.g. `"model.ts"`.
 * @param names The exported functions or constants to show, in this order.
 */
export async function showLibrarySource(file: string, names: string[]): Promise<void> {
  const text = await Deno.readTextFile(new URL(`../${file}`, import.meta.url));
  const code = names.map((name) => declarationSource(text, name)).join("\n\n");
  await showHtml(highlightTypeScript(code), `lib/${file}: ${names.join(", ")}`);
}

// ---------------------------------------------------------------- the run plan

/** What the notebook runs: the training config and the sizes of the other steps. */
export interface NotebookPlan {
  config: TrainConfig;
  /** Why this config: the backend, the speed measured and the time it should take. */
  reason: string;
  /** Images of the test set for the final evaluation; null = all 10,000. */
  finalTestLimit: number | null;
  /** Images in the batch of the residual-learning demonstration. */
  demoImages: number;
}

/** Seconds of training the notebook aims for on a CPU, so that all of it takes about ten minutes. */
export const CPU_TRAINING_BUDGET_SECONDS = 240;

/** Stem width trained on a CPU: 1/8 of the article's channels, about 1/60 of its work per image. */
export const CPU_WIDTH = 8;

/** Epochs trained on a CPU: enough for learning curves. */
export const CPU_EPOCHS = 4;

/** Test images evaluated after each epoch on a CPU (the final evaluation uses all 10,000). */
export const CPU_EPOCH_TEST_IMAGES = 2000;

/**
 * Times a few training steps of ResNet-18 (forward, backward, Adam) on random images with the
 * active backend, after one untimed step (which packs weights and compiles kernels).
 *
 * @param config Width, batch size and learning rate of the steps.
 * @param steps Timed steps. @default 3
 * @returns Training images per second.
 */
export async function measureTrainingSpeed(
  config: Pick<TrainConfig, "width" | "batchSize" | "learningRate">,
  steps = 3,
): Promise<number> {
  const model = resnet18({ width: config.width });
  const optimizer = createOptimizer(config);
  const x = tf.randomNormal([config.batchSize, 32, 32, 3]) as tf.Tensor4D;
  const y = tf.randomUniform([config.batchSize], 0, NUM_CLASSES, "int32") as tf.Tensor1D;
  try {
    await trainStep(model, optimizer, x, y);
    const start = performance.now();
    for (let i = 0; i < steps; i++) await trainStep(model, optimizer, x, y);
    return (steps * config.batchSize) / ((performance.now() - start) / 1000);
  } finally {
    tf.dispose([x, y]);
    optimizer.dispose();
    model.dispose();
  }
}

/**
 * The largest class-balanced training subset (a multiple of 500, from 1,000 to all 50,000
 * images) that trains for `epochs` epochs within `budgetSeconds` at `imagesPerSecond`.
 *
 * @example
 * ```ts
 * import { trainLimitForBudget } from "./display.ts";
 * console.log(trainLimitForBudget(80, 300, 4)); // 6000
 * ```
 */
export function trainLimitForBudget(
  imagesPerSecond: number,
  budgetSeconds: number,
  epochs: number,
): number {
  const images = Math.floor((imagesPerSecond * budgetSeconds) / epochs / 500) * 500;
  return Math.min(50_000, Math.max(1000, images));
}

/** Options of {@linkcode chooseNotebookPlan}. */
export interface PlanOptions {
  /** The smallest run that exercises every step, for tests; wins over the others. */
  smoke: boolean;
  /** The article's settings on any backend. @default false */
  articleSettings?: boolean;
  /** Measures training speed at a width. @default measureTrainingSpeed */
  measure?: (config: Pick<TrainConfig, "width" | "batchSize" | "learningRate">) => Promise<number>;
}

/**
 * Chooses what the notebook trains, so that a laptop gets through the notebook in about ten
 * minutes: the article's exact settings on a hardware WebGPU backend; on wasm, ResNet-18 at
 * width 8 for 4 epochs on the class-balanced subset that fits
 * {@linkcode CPU_TRAINING_BUDGET_SECONDS} at the speed measured here; a token run on the
 * (very slow) cpu backend; a tiny run for `smoke`.
 *
 * @param backend The backend `initBackend()` started.
 * @param options See {@linkcode PlanOptions}.
 * @returns The plan, with its reason in words.
 *
 * @example
 * ```ts
 * import { chooseNotebookPlan } from "./display.ts";
 * const plan = await chooseNotebookPlan({ name: "wasm", detail: "" }, {
 *   smoke: false,
 *   measure: () => Promise.resolve(80), // images/s
 * });
 * console.log(plan.config.width, plan.config.trainLimit, plan.config.epochs); // 8 4500 4
 * ```
 */
export async function chooseNotebookPlan(
  backend: Pick<BackendInfo, "name" | "detail">,
  options: PlanOptions,
): Promise<NotebookPlan> {
  const plan = (config: Partial<TrainConfig>, reason: string, finalTestLimit: number | null) => ({
    config: makeConfig({ ...config, backend: backend.name }),
    reason,
    finalTestLimit,
    demoImages: options.smoke ? 16 : 64,
  });
  if (options.smoke) {
    return plan(
      { width: 4, trainLimit: 200, testLimit: 100, epochs: 1 },
      "RESNET_CIFAR_SMOKE=1: the smallest run that goes through every cell (a test)",
      100,
    );
  }
  if (options.articleSettings) {
    return plan({}, `articleSettings is true: the article's settings, on ${backend.name}`, null);
  }
  if (backend.name === "webgpu") {
    return plan(
      {},
      `a hardware GPU (${backend.detail}) can run the article's settings: ResNet-18 at width 64 ` +
        `on all 50,000 training images for 10 epochs`,
      null,
    );
  }
  if (backend.name === "cpu") {
    return plan(
      { width: 4, trainLimit: 200, testLimit: 200, epochs: 1 },
      "the cpu backend is the pure-JavaScript reference and trains at well under one image/s: " +
        "this is a token run; use wasm (the default) to learn anything",
      500,
    );
  }
  const base = { width: CPU_WIDTH, epochs: CPU_EPOCHS, testLimit: CPU_EPOCH_TEST_IMAGES };
  const imagesPerSecond = await (options.measure ?? measureTrainingSpeed)(makeConfig(base));
  const trainLimit = trainLimitForBudget(imagesPerSecond, CPU_TRAINING_BUDGET_SECONDS, CPU_EPOCHS);
  return plan(
    { ...base, trainLimit },
    `on ${backend.name} ResNet-18 at width ${CPU_WIDTH} trains at ${imagesPerSecond.toFixed(0)} ` +
      `images/s here (just measured), so ${CPU_EPOCHS} epochs of ` +
      `${trainLimit.toLocaleString("en-US")} images take about ` +
      `${formatDuration((CPU_EPOCHS * trainLimit) / imagesPerSecond)} ` +
      `(the budget is ${formatDuration(CPU_TRAINING_BUDGET_SECONDS)}); the article's settings ` +
      `(width 64, about 60 times the work per image, on 50,000 images for 10 epochs) ` +
      `would take roughly ${formatDuration((60 * 10 * 50_000) / imagesPerSecond)}, if time grows ` +
      `with the arithmetic`,
    null,
  );
}

/**
 * Rows for `htmlTable()`: each setting of `config` next to the article's ({@linkcode DEFAULT_CONFIG}).
 *
 * @example
 * ```ts
 * import { makeConfig } from "../train/config.ts";
 * import { configRows } from "./display.ts";
 * console.log(configRows(makeConfig({ epochs: 2 }))[1]); // ["epochs", "2", "10"]
 * ```
 */
export function configRows(config: TrainConfig): string[][] {
  const keys = Object.keys(DEFAULT_CONFIG) as (keyof TrainConfig)[];
  return [
    ["setting", "this run", "the article"],
    ...keys.map((key) => [key, String(config[key] ?? "all"), String(DEFAULT_CONFIG[key] ?? "all")]),
  ];
}

/** Where `loadCifar10()` finds the data, and what the notebook should say about it. */
export interface DataSource {
  options: LoadOptions;
  description: string;
}

/** This project's shared copy of the archive, next to the repository (used only if present). */
const SHARED_ARCHIVE = new URL("../../../shared/data/cifar-10-binary.tar.gz", import.meta.url);

/** The repository's `data/` folder, where `deno task train` downloads to as well. */
const DATA_ROOT = new URL("../../data", import.meta.url);

/**
 * Where the notebook loads CIFAR-10 from: `$CIFAR10_DATA` (a folder or `.tar.gz`) if set, else
 * a shared copy of the archive beside the repository if there is one, else the official
 * download, cached in the repository's `data/` folder (shared with `deno task train`).
 */
export function findCifar10Source(): DataSource {
  const root = decodeURIComponent(DATA_ROOT.pathname);
  const fromEnv = Deno.env.get("CIFAR10_DATA");
  if (fromEnv !== undefined && fromEnv !== "") {
    return { options: { source: fromEnv, root }, description: `$CIFAR10_DATA = ${fromEnv}` };
  }
  const shared = decodeURIComponent(SHARED_ARCHIVE.pathname);
  try {
    if (Deno.statSync(shared).isFile) {
      return { options: { source: shared, root }, description: `the shared archive ${shared}` };
    }
  } catch {
    // Not there: download.
  }
  return { options: { root }, description: `the official archive, downloaded once into ${root}` };
}

/** One line about this machine: CPU, cores, OS, Deno and TensorFlow.js versions. */
export function describeMachine(): string {
  let cpu = "unknown CPU";
  try {
    const match = Deno.readTextFileSync("/proc/cpuinfo").match(/^model name\s*:\s*(.+)$/m);
    if (match) cpu = match[1].trim();
  } catch {
    // Not Linux, or not readable: leave it unknown.
  }
  return `${cpu}, ${navigator.hardwareConcurrency} logical cores, ${Deno.build.os} ` +
    `${Deno.build.arch}, Deno ${Deno.version.deno}, TensorFlow.js ${tf.version.tfjs}`;
}

// ---------------------------------------------------------------- figure data

/** Images per class, label order. */
export function classCounts(split: Split): number[] {
  const counts = new Array<number>(NUM_CLASSES).fill(0);
  for (const label of split.labels) counts[label]++;
  return counts;
}

/** Image `index` of a split, as the 3072 RGB bytes `imageGridHtml()` takes (a view, no copy). */
export function imageAt(split: Split, index: number): Uint8Array {
  return split.images.subarray(index * IMAGE_BYTES, (index + 1) * IMAGE_BYTES);
}

/**
 * The first image of each class, and the same images after one draw of the training
 * augmentation (random crop with 4 pixels of zero padding, then a coin-flip mirror).
 *
 * @param split Training images.
 * @param classNames Names by label.
 * @param seed Seeds the augmentation draws.
 * @returns Two rows for `imageGridHtml()`: the originals captioned with their class, and the
 *   augmented ones captioned with the shift (dx, dy) and whether they were flipped.
 */
export function augmentationExamples(
  split: Split,
  classNames: readonly string[],
  seed: number,
): { original: CaptionedImage[]; augmented: CaptionedImage[] } {
  const indices = classNames.map((_, label) => split.labels.indexOf(label)).filter((i) => i >= 0);
  const rng = new Rng(seed);
  const original = indices.map((i) => ({
    rgb: imageAt(split, i),
    caption: classNames[split.labels[i]],
  }));
  const augmented = indices.map((i) => {
    const params = drawAugmentation(rng);
    const rgb = new Uint8Array(IMAGE_BYTES);
    augmentInto(imageAt(split, i), rgb, params);
    const shift = (d: number) => (d > 4 ? `+${d - 4}` : `${d - 4}`);
    return {
      rgb,
      caption: `(${shift(params.dx)}, ${shift(params.dy)})${params.flip ? " flip" : ""}`,
    };
  });
  return { original, augmented };
}

/**
 * A copy of `split` with the training augmentation applied once to every image: what the
 * article's test loader feeds the model, since it reuses the training transform.
 */
export function augmentedSplit(split: Split, seed: number): Split {
  const rng = new Rng(seed);
  const images = new Uint8Array(split.images.length);
  for (let i = 0; i < split.count; i++) {
    augmentInto(imageAt(split, i), images.subarray(i * IMAGE_BYTES), drawAugmentation(rng));
  }
  return { images, labels: split.labels, count: split.count };
}

/**
 * The model's predicted class for each image of `split` (no augmentation, inference mode).
 *
 * @param model Maps `[n, 32, 32, 3]` normalised images to `[n, 10]` logits.
 * @param split The images.
 * @param batchSize Images per forward pass. @default 500
 * @returns One label per image, in split order.
 */
export async function predictLabels(
  model: tf.LayersModel,
  split: Split,
  batchSize = 500,
): Promise<Uint8Array> {
  const predicted = new Uint8Array(split.count);
  let at = 0;
  for (const { x, y, size } of epochBatches(split, { batchSize, rng: null, augment: false })) {
    const labels = tf.tidy(() => tf.argMax(model.apply(x, { training: false }) as tf.Tensor2D, 1));
    predicted.set(await labels.data(), at);
    tf.dispose([x, y, labels]);
    at += size;
  }
  return predicted;
}

/**
 * The first `count` images the model got wrong, captioned `true → predicted` in red.
 *
 * @param split The images that were classified.
 * @param predicted One predicted label per image of `split`.
 * @param classNames Names by label.
 * @param count How many to return at most.
 */
export function misclassifiedExamples(
  split: Split,
  predicted: Uint8Array,
  classNames: readonly string[],
  count: number,
): CaptionedImage[] {
  if (predicted.length !== split.count) {
    throw new RangeError(
      `Expected one prediction per image (${split.count}) but found ${predicted.length}`,
    );
  }
  const wrong: CaptionedImage[] = [];
  for (let i = 0; i < split.count && wrong.length < count; i++) {
    if (predicted[i] === split.labels[i]) continue;
    wrong.push({
      rgb: imageAt(split, i),
      caption: `${classNames[split.labels[i]]} → ${classNames[predicted[i]]}`,
      color: "#c0392b",
    });
  }
  return wrong;
}

/** `[null, 32, 32, 64]` -> `[batch, 32, 32, 64]`; a multi-output layer shows its first output. */
function formatShape(shape: (number | null)[] | (number | null)[][]): string {
  const first = (Array.isArray(shape[0]) ? shape[0] : shape) as (number | null)[];
  return `[${first.map((d) => d ?? "batch").join(", ")}]`;
}

/**
 * Rows for `htmlTable()` in the manner of tfjs-vis `modelSummary`: one per layer with its type,
 * output shape and trainable parameters (BatchNorm's running mean and variance are buffers,
 * as in PyTorch, and not counted).
 *
 * @example
 * ```ts
 * import { modelSummaryRows } from "./display.ts";
 * import { resnet18 } from "../model.ts";
 * const model = resnet18({ width: 4 });
 * console.log(modelSummaryRows(model)[1]); // ["conv1", "Conv2D", "[batch, 32, 32, 4]", 112]
 * model.dispose();
 * ```
 */
export function modelSummaryRows(model: tf.LayersModel): (string | number)[][] {
  const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
  return [
    ["layer", "type", "output shape", "trainable params"],
    ...model.layers.map((layer) => [
      layer.name,
      layer.getClassName(),
      formatShape(layer.outputShape),
      layer.trainableWeights.reduce((sum, w) => sum + size(w.shape as number[]), 0),
    ]),
  ];
}
