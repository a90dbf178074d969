/**
 * A small executed notebook made of real `lib/notebook/display.ts` outputs (figures, an image
 * grid, a table, coloured code), recorded with a `RecordingSink`: what the export test and the
 * checks of what Jupyter shows run on, without training anything.
 *
 * @module
 */
import { CIFAR10_CLASSES } from "../../lib/data.ts";
import {
  RecordingSink,
  setDisplaySink,
  showHtml,
  showImageGrid,
  showSvg,
} from "../../lib/notebook/display.ts";
import { confusionSvg, curvesSvg, htmlTable } from "../../lib/report/figures.ts";
import { colorText } from "../../lib/report/html.ts";

/** One 32x32 RGB image: horizontal bands whose shade depends on `seed`. */
export function bandedImage(seed: number): Uint8Array {
  return new Uint8Array(32 * 32 * 3).map((_, i) => {
    const row = Math.floor(i / (32 * 3));
    return (row % 8 < 4 ? 40 : 200) + ((seed * 23 + (i % 3) * 17) % 50);
  });
}

/** What each code cell shows, in order. */
const CELLS: (() => Promise<void>)[] = [
  () =>
    showSvg(curvesSvg([1, 2, 3].map((epoch) => ({
      epoch,
      trainLoss: 2 / epoch,
      trainAccuracy: 0.2 * epoch,
      testLoss: 2.2 / epoch,
      testAccuracy: 0.18 * epoch,
      seconds: 10,
      imagesPerSecond: 100,
    })))),
  () =>
    showSvg(confusionSvg(
      CIFAR10_CLASSES.map((_, t) => CIFAR10_CLASSES.map((_, p) => t === p ? 80 : (t + p) % 7)),
      CIFAR10_CLASSES,
    )),
  () =>
    showImageGrid(
      CIFAR10_CLASSES.map((name, i) => ({
        rgb: bandedImage(i),
        caption: i % 2 ? `${name} → cat` : name,
        color: i % 2 ? "#c0392b" : undefined,
      })),
      { columns: 5, title: "One image per class" },
    ),
  () => showHtml(htmlTable([["layer", "params"], ["conv1", 1728], ["fc", 5130]]), "a table"),
  () =>
    showHtml(
      `<pre>${colorText("const", "#d73a49")} x = ${colorText('"<b>"', "#032f62")};</pre>`,
      "const x",
    ),
];

/**
 * Runs {@linkcode CELLS} with a recording sink and returns the nbformat 4 notebook Jupyter would
 * have saved: one code cell per display, executed in order.
 */
export async function displayNotebook(): Promise<Record<string, unknown>> {
  const sink = new RecordingSink();
  const previous = setDisplaySink(sink);
  try {
    for (const [index, show] of CELLS.entries()) {
      sink.cell = index;
      await show();
    }
  } finally {
    setDisplaySink(previous);
  }
  return {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: {
      kernelspec: { name: "deno", display_name: "Deno", language: "typescript" },
      language_info: { name: "typescript" },
    },
    cells: CELLS.map((_, index) => ({
      cell_type: "code",
      id: `cell-${index}`,
      metadata: {},
      execution_count: index + 1,
      source: `// cell ${index}\n`,
      outputs: (sink.outputs[index] ?? []).map((record) => ({
        output_type: "display_data",
        data: record.data,
        metadata: record.metadata ?? {},
      })),
    })),
  };
}
