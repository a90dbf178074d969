import assert from "node:assert/strict";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/init.ts";
import { makeConfig } from "../lib/train/config.ts";
import {
  augmentInto,
  CIFAR10_CLASSES,
  drawAugmentation,
  IMAGE_BYTES,
  imageAt,
} from "../lib/data.ts";
import { ARTICLE_PYTORCH_PARAMETERS, countTrainableParameters, resnet18 } from "../lib/model.ts";
import {
  describeBundle,
  display,
  inJupyter,
  JupyterSink,
  LiveDisplay,
  RecordingSink,
  setDisplaySink,
} from "../lib/notebook/display.ts";
import {
  augmentationExamples,
  augmentedSplit,
  classCounts,
  misclassifiedExamples,
  modelSummaryRows,
  predictLabels,
} from "../lib/notebook/examples.ts";
import {
  chooseNotebookPlan,
  configRows,
  findCifar10Source,
  trainLimitForBudget,
} from "../lib/notebook/plan.ts";
import { declarationSource, highlightTypeScript } from "../lib/notebook/source.ts";
import { Rng } from "../lib/train/rng.ts";
import { evaluate } from "../lib/train.ts";
import { checkNotebook, REQUIRED_FIGURES } from "../tools/check_notebook.ts";
import {
  absolutizeImports,
  NOTEBOOK,
  runCellsHeadless,
  withFinalNewlines,
} from "../tools/notebook.ts";
import { recordsOf, repeatRecords } from "./support/cifar10_fixture.ts";
import { syntheticSplit } from "./support/synthetic.ts";

await initBackend("cpu");

const NOTEBOOK_PATH = new URL(`../${NOTEBOOK}`, import.meta.url).pathname;

/**
 * An offline stand-in for `cifar-10-batches-bin` of the real size (10,000 records a file, as
 * `loadCifar10()` requires): each training batch repeats 60 synthetic images, the test batch 100.
 */
async function writeSyntheticCifar(dir: string): Promise<void> {
  const folder = join(dir, "cifar-10-batches-bin");
  await Deno.mkdir(folder, { recursive: true });
  for (let k = 1; k <= 5; k++) {
    const records = repeatRecords(recordsOf(syntheticSplit(60, k)));
    await Deno.writeFile(join(folder, `data_batch_${k}.bin`), records);
  }
  const test = repeatRecords(recordsOf(syntheticSplit(100, 9)));
  await Deno.writeFile(join(folder, "test_batch.bin"), test);
  await Deno.writeTextFile(join(folder, "batches.meta.txt"), CIFAR10_CLASSES.join("\n") + "\n");
}

Deno.test({
  name: "the notebook's code cells run in order in the smoke configuration and show every figure",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "notebook-test-" });
    try {
      await writeSyntheticCifar(dir);
      const run = await runCellsHeadless(NOTEBOOK_PATH, {
        RESNET_CIFAR_SMOKE: "1",
        CIFAR10_DATA: dir,
      });
      assert.equal(
        run.code,
        0,
        `the cells failed; generated module ${run.modulePath}:\n${run.output.slice(-4000)}`,
      );
      assert.deepEqual(checkNotebook(run.executed), []);
      assert.match(
        run.output,
        /Test Loss: \d+\.\d{4}, Test Accuracy: \d+\.\d\d%\n\(on 100 test images/,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("the committed notebook names every required figure once, in order", async () => {
  const notebook = JSON.parse(await Deno.readTextFile(NOTEBOOK_PATH));
  const named = notebook.cells.flatMap((cell: { metadata: { figure?: string[] } }) =>
    cell.metadata.figure ?? []
  );
  assert.deepEqual(named, [...REQUIRED_FIGURES]);
  assert.equal(notebook.metadata.kernelspec.name, "deno");
});

Deno.test("checkNotebook() reports errors, unexecuted cells and missing figures", () => {
  const cell = (
    figure: string[] | undefined,
    outputs: unknown[],
    executionCount: number | null,
  ) => ({
    cell_type: "code",
    metadata: figure === undefined ? {} : { figure },
    execution_count: executionCount,
    outputs,
    source: "",
  });
  const svg = { output_type: "display_data", data: { "image/svg+xml": ["<svg>", "</svg>"] } };
  const notebook = {
    nbformat: 4,
    metadata: { kernelspec: { name: "deno" } },
    cells: [
      cell(["a"], [svg], 1),
      cell(["b"], [{ output_type: "stream", name: "stdout", text: "no figure" }], 2),
      cell(undefined, [{ output_type: "error", ename: "TypeError", evalue: "x is undefined" }], 3),
      cell(undefined, [], null),
    ],
  };
  assert.deepEqual(checkNotebook(notebook, ["a", "b", "c"], []), [
    "Expected cell 1 (b) to show 1 SVG or HTML output(s) but found 0",
    "cell 2 failed: TypeError: x is undefined",
    "Expected cell 3 to have been executed but its execution_count is null",
    'Expected a cell with figure "c" but found none',
  ]);
  assert.deepEqual(checkNotebook({ nbformat: 3, metadata: {}, cells: [] }, [], []), [
    "Expected nbformat 4 but found 3",
    'Expected the kernel "deno" but found undefined',
  ]);
});

Deno.test("checkNotebook() wants the required lines in the cells' printed output", () => {
  const printed = (text: string | string[]) => ({
    nbformat: 4,
    metadata: { kernelspec: { name: "deno" } },
    cells: [{
      cell_type: "code",
      metadata: {},
      execution_count: 1,
      outputs: [{ output_type: "stream", name: "stdout", text }],
    }],
  });
  const required = [/^Test Loss: \d+\.\d+$/m];
  assert.deepEqual(checkNotebook(printed(["x\n", "Test Loss: 1.5\n"]), [], required), []);
  assert.deepEqual(checkNotebook(printed("Test Loss: ?\n"), [], required), [
    "Expected printed output matching /^Test Loss: \\d+\\.\\d+$/m",
  ]);
});

Deno.test("absolutizeImports() resolves relative imports from the notebook's folder only", () => {
  const base = new URL("file:///repo/notebooks/x.ipynb");
  const source = 'import { a } from "../lib/a.ts";\nimport * as tf from "@tensorflow/tfjs";\n' +
    'const m = await import("./b.ts");\nconst s = "../lib/a.ts";';
  assert.equal(
    absolutizeImports(source, base),
    'import { a } from "file:///repo/lib/a.ts";\nimport * as tf from "@tensorflow/tfjs";\n' +
      'const m = await import("file:///repo/notebooks/b.ts");\nconst s = "../lib/a.ts";',
  );
});

Deno.test("withFinalNewlines() ends every non-empty cell with a newline, as lines", () => {
  const notebook = {
    cells: [
      { cell_type: "markdown", source: ["# A\n", "b"] },
      { cell_type: "code", source: "x\n" },
      { cell_type: "code", source: [] },
    ],
  };
  assert.deepEqual(withFinalNewlines(notebook).cells.map((c) => c.source), [
    ["# A\n", "b\n"],
    "x\n",
    [],
  ]);
});

Deno.test("RecordingSink keeps displays by cell and applies updates in place", async () => {
  const sink = new RecordingSink();
  const previous = setDisplaySink(sink);
  try {
    assert.equal(inJupyter(), false);
    sink.cell = 3;
    await display({ "text/html": "<i>x</i>" });
    const live = await LiveDisplay.start("starting", { minIntervalMs: 60_000 });
    await live.update({ html: "<b>1</b>", text: "1" }); // within the interval: not drawn yet
    assert.equal(sink.outputs[3][1].data["text/plain"], "starting");
    await live.update({ html: "<b>2</b>", text: "2" });
    await live.finish(); // draws the latest content
    assert.equal(sink.outputs[3].length, 2);
    assert.deepEqual(sink.outputs[3][1].data, { "text/html": "<b>2</b>", "text/plain": "2" });
    assert.deepEqual(sink.outputs[3][0].data, { "text/html": "<i>x</i>" });
  } finally {
    setDisplaySink(previous);
  }
});

Deno.test("JupyterSink sends display_data, then update_display_data with the same display id", async () => {
  const sent: [string, Record<string, unknown>][] = [];
  const sink = new JupyterSink({
    broadcast: (type, content) => Promise.resolve(void sent.push([type, content])),
  }, 0);
  await sink.display({ data: { "text/html": "<b>1</b>" } });
  await sink.display({ data: { "text/plain": "1" }, displayId: "p" });
  await sink.update({ data: { "text/plain": "2" }, displayId: "p" });
  assert.deepEqual(sent, [
    ["display_data", { data: { "text/html": "<b>1</b>" }, metadata: {}, transient: {} }],
    ["display_data", { data: { "text/plain": "1" }, metadata: {}, transient: { display_id: "p" } }],
    [
      "update_display_data",
      { data: { "text/plain": "2" }, metadata: {}, transient: { display_id: "p" } },
    ],
  ]);
});

Deno.test("findCifar10Source() prefers $CIFAR10_DATA and keeps downloads in the repository's data/", () => {
  const previous = Deno.env.get("CIFAR10_DATA");
  const root = new URL("../data", import.meta.url).pathname;
  try {
    Deno.env.set("CIFAR10_DATA", "/somewhere/cifar-10-binary.tar.gz");
    assert.deepEqual(findCifar10Source(), {
      options: { source: "/somewhere/cifar-10-binary.tar.gz", root },
      description: "$CIFAR10_DATA = /somewhere/cifar-10-binary.tar.gz",
    });
    Deno.env.delete("CIFAR10_DATA");
    assert.equal(findCifar10Source().options.root, root);
  } finally {
    if (previous === undefined) Deno.env.delete("CIFAR10_DATA");
    else Deno.env.set("CIFAR10_DATA", previous);
  }
});

Deno.test("describeBundle() prefers text/plain, else names the types and sizes", () => {
  assert.equal(describeBundle({ "text/html": "<b/>", "text/plain": "bold" }), "bold");
  assert.equal(describeBundle({ "image/svg+xml": "x".repeat(2048) }), "[image/svg+xml, 2.0 kB]");
});

Deno.test("declarationSource() cuts an export with its JSDoc out of lib/model.ts", async () => {
  const text = await Deno.readTextFile(new URL("../lib/model.ts", import.meta.url));
  const block = declarationSource(text, "residualBlock");
  assert.match(block, /^\/\*\*\n \* The article's `ResidualBlock`/);
  assert.match(block, /\nexport function residualBlock\(/);
  assert.match(block, /\n}$/);
  assert.ok(!block.includes("export function resnet18"));
  const stages = declarationSource(text, "RESNET18_STAGES");
  assert.match(stages, /^\/\*\* ResNet-18's four stages/);
  assert.match(stages, /\n\];$/);
  assert.throws(() => declarationSource(text, "VGG16"), {
    message: "Expected an exported declaration of VGG16 but found none",
  });
});

Deno.test("highlightTypeScript() escapes the code and colours comments, strings, keywords", () => {
  const html = highlightTypeScript('// a < b\nconst s = "<x>";');
  assert.ok(!html.includes("<x>"));
  assert.match(html, /<span style="color:#6a737d">\/\/ a &#60; b<\/span>/);
  assert.match(html, /<span style="color:#d73a49">const<\/span>/);
  assert.match(html, /<span style="color:#032f62">&#34;&#60;x&#62;&#34;<\/span>/);
});

Deno.test("chooseNotebookPlan() picks by backend and sizes the wasm run from the measured speed", async () => {
  const measured: number[] = [];
  const measure = (config: { width: number }) => {
    measured.push(config.width);
    return Promise.resolve(40);
  };
  const wasm = await chooseNotebookPlan({ name: "wasm", detail: "" }, { smoke: false, measure });
  assert.deepEqual(measured, [8]);
  assert.deepEqual(
    wasm.config,
    makeConfig({ width: 8, epochs: 4, trainLimit: 2000, testLimit: 2000, backend: "wasm" }),
  );
  assert.match(wasm.reason, /trains at 40 images\/s here \(just measured\)/);
  assert.equal(wasm.finalTestLimit, null);

  const gpu = await chooseNotebookPlan({ name: "webgpu", detail: "GPU" }, {
    smoke: false,
    measure,
  });
  assert.deepEqual(gpu.config, makeConfig({ backend: "webgpu" }));
  const article = await chooseNotebookPlan({ name: "wasm", detail: "" }, {
    smoke: false,
    articleSettings: true,
    measure,
  });
  assert.deepEqual(article.config, makeConfig({ backend: "wasm" }));
  const smoke = await chooseNotebookPlan({ name: "wasm", detail: "" }, {
    smoke: true,
    articleSettings: true,
    measure,
  });
  assert.equal(smoke.config.epochs, 1);
  assert.equal(smoke.config.trainLimit, 200);
  const cpu = await chooseNotebookPlan({ name: "cpu", detail: "" }, { smoke: false, measure });
  assert.equal(cpu.config.trainLimit, 200);
  assert.deepEqual(measured, [8], "only the wasm plan measures");
});

Deno.test("trainLimitForBudget() rounds down to 500s between 1,000 and 50,000", () => {
  assert.equal(trainLimitForBudget(80, 300, 4), 6000);
  assert.equal(trainLimitForBudget(35, 300, 4), 2500);
  assert.equal(trainLimitForBudget(1, 300, 4), 1000);
  assert.equal(trainLimitForBudget(5000, 300, 4), 50_000);
});

Deno.test("configRows() lists every setting next to the article's", () => {
  const rows = configRows(makeConfig({ width: 8, trainLimit: 3000 }));
  assert.deepEqual(rows[0], ["setting", "this run", "the article"]);
  assert.deepEqual(rows.find((r) => r[0] === "width"), ["width", "8", "64"]);
  assert.deepEqual(rows.find((r) => r[0] === "trainLimit"), ["trainLimit", "3000", "all"]);
  assert.equal(rows.length, 1 + Object.keys(makeConfig()).length);
});

Deno.test("classCounts() counts images per class", () => {
  assert.deepEqual(classCounts(syntheticSplit(25)), [3, 3, 3, 3, 3, 2, 2, 2, 2, 2]);
});

Deno.test("augmentationExamples() shows one image per class and its augmentation", () => {
  const split = syntheticSplit(30);
  const { original, augmented } = augmentationExamples(split, CIFAR10_CLASSES, 5);
  assert.deepEqual(original.map((o) => o.caption), [...CIFAR10_CLASSES]);
  const rng = new Rng(5);
  augmented.forEach((image, label) => {
    const params = drawAugmentation(rng);
    const expected = new Uint8Array(IMAGE_BYTES);
    augmentInto(imageAt(split, label), expected, params);
    assert.deepEqual(image.rgb, expected);
    assert.match(image.caption, /^\([+-]?\d, [+-]?\d\)( flip)?$/);
  });
});

Deno.test("augmentedSplit() augments every image reproducibly, keeping the labels", () => {
  const split = syntheticSplit(20);
  const a = augmentedSplit(split, 1);
  assert.deepEqual(augmentedSplit(split, 1), a);
  assert.notDeepEqual(augmentedSplit(split, 2).images, a.images);
  assert.equal(a.labels, split.labels);
  assert.equal(a.count, 20);
  assert.notDeepEqual(a.images, split.images);
});

Deno.test("predictLabels() agrees with evaluate() and leaves no tensors behind", async () => {
  const model = resnet18({ width: 2, seed: 1 });
  try {
    const split = syntheticSplit(30);
    const before = tf.memory().numTensors;
    const predicted = await predictLabels(model, split, 7);
    assert.equal(tf.memory().numTensors, before);
    const evaluation = await evaluate(model, split);
    const confusion = Array.from({ length: 10 }, () => new Array(10).fill(0));
    predicted.forEach((p, i) => confusion[split.labels[i]][p]++);
    assert.deepEqual(confusion, evaluation.confusion);
  } finally {
    model.dispose();
  }
});

Deno.test("misclassifiedExamples() captions true → predicted and checks the lengths", () => {
  const split = syntheticSplit(4);
  const wrong = misclassifiedExamples(split, Uint8Array.from([0, 2, 2, 9]), CIFAR10_CLASSES, 5);
  assert.deepEqual(wrong.map((w) => w.caption), ["automobile → bird", "cat → truck"]);
  assert.deepEqual(wrong[0].rgb, imageAt(split, 1));
  assert.equal(
    misclassifiedExamples(split, Uint8Array.from([1, 2, 2, 9]), CIFAR10_CLASSES, 1).length,
    1,
  );
  assert.throws(() => misclassifiedExamples(split, new Uint8Array(3), CIFAR10_CLASSES, 5), {
    message: "Expected one prediction per image (4) but found 3",
  });
});

Deno.test("modelSummaryRows() lists every layer and sums to the article's parameter count", () => {
  const model = resnet18();
  try {
    const rows = modelSummaryRows(model);
    assert.deepEqual(rows[0], ["layer", "type", "output shape", "trainable params"]);
    assert.equal(rows.length, 1 + model.layers.length);
    assert.deepEqual(rows[1], ["images", "InputLayer", "[batch, 32, 32, 3]", 0]);
    assert.deepEqual(rows.find((r) => r[0] === "fc"), ["fc", "Dense", "[batch, 10]", 5130]);
    const total = rows.slice(1).reduce((sum, r) => sum + (r[3] as number), 0);
    assert.equal(total, countTrainableParameters(model));
    assert.equal(total, ARTICLE_PYTORCH_PARAMETERS);
  } finally {
    model.dispose();
  }
});
