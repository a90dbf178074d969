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
  EPOCH_TEST_IMAGES,
  epochsForBudget,
  findCifar10Source,
  fitEpochs,
  MAX_EPOCHS,
  NOTEBOOK_BUDGET_SECONDS,
  trainLimitForBudget,
  withoutMachinePaths,
} from "../lib/notebook/plan.ts";
import { depthSummary, loadDepthResults } from "../lib/notebook/depth.ts";
import { keepForLaterCells } from "../lib/notebook/keep.ts";
import { PRESETS } from "../lib/train/config.ts";
import { declarationSource, highlightTypeScript } from "../lib/notebook/source.ts";
import { Rng } from "../lib/train/rng.ts";
import { evaluate } from "../lib/train.ts";
import { checkNotebook, REQUIRED_FIGURES } from "../tools/check_notebook.ts";
import {
  absolutizeImports,
  cellSource,
  NOTEBOOK,
  notebookEnv,
  runCellsHeadless,
  topLevelNames,
  withFinalNewlines,
  withOutputs,
} from "../tools/notebook.ts";
import { writeSyntheticCifar } from "./support/synthetic_cifar_folder.ts";
import { syntheticSplit } from "./support/synthetic.ts";

await initBackend("cpu");

const NOTEBOOK_PATH = new URL(`../${NOTEBOOK}`, import.meta.url).pathname;

/**
 * The depth cell shows its figure once `deno task experiment:depth`'s results are committed
 * (`docs/depth/results.json`); until then a smoke run may leave it out, and only then.
 */
const smokeCheckOptions = {
  optionalFigures: (await loadDepthResults()) === null ? ["depth"] : [],
};

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
      assert.deepEqual(checkNotebook(run.executed, undefined, undefined, smokeCheckOptions), []);
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

/** The article's headings, in its order, with the level each has in the notebook. */
const ARTICLE_HEADINGS: readonly (readonly [string, string])[] = [
  ["##", "前言"],
  ["##", "一、图像分类的基本概念"],
  ["###", "(一)图像分类的定义"],
  ["###", "(二)图像分类的应用场景"],
  ["##", "二、ResNet架构的理论基础"],
  ["###", "(一)残差学习(Residual Learning)"],
  ["###", "(二)ResNet架构"],
  ["###", "(三)ResNet的优势"],
  ["##", "三、代码实现"],
  ["###", "(一)环境准备"],
  ["###", "(二)加载数据集"],
  ["###", "(三)定义ResNet模型"],
  ["###", "(四)训练模型"],
  ["###", "(五)评估模型"],
  ["##", "四、总结"],
];

/** The markdown headings of a notebook, `[level, text]`, outside fenced code. */
function markdownHeadings(notebook: { cells: { cell_type: string; source: string | string[] }[] }) {
  return notebook.cells.filter((cell) => cell.cell_type === "markdown").flatMap((cell) => {
    let fenced = false;
    return cellSource(cell).split("\n").flatMap((line) => {
      if (line.startsWith("```")) fenced = !fenced;
      const match = fenced ? null : /^(#{1,6}) (.+)$/.exec(line);
      return match === null ? [] : [[match[1], match[2]] as const];
    });
  });
}

Deno.test("the notebook's headings are the article's, in its order, beside English; additions are marked", async () => {
  const notebook = JSON.parse(await Deno.readTextFile(NOTEBOOK_PATH));
  const headings = markdownHeadings(notebook);
  assert.equal(headings[0][0], "#", "a title first");
  const additions = headings.filter(([, text]) => text.startsWith("附加 / Addition: "));
  assert.ok(additions.length > 0);
  const article = headings.slice(1).filter((heading) => !additions.includes(heading));
  assert.deepEqual(
    article.map(([level, text]) => [level, text.split(" · ")[0]]),
    ARTICLE_HEADINGS.map(([level, text]) => [level, text]),
  );
  for (const [, text] of article) assert.match(text, / · [A-Z][a-z]/, `${text}: English beside it`);
});

Deno.test("the notebook's markdown states no number the run decides, and no cell reads tensors synchronously", async () => {
  const notebook = JSON.parse(await Deno.readTextFile(NOTEBOOK_PATH));
  const cells = notebook.cells as { cell_type: string; source: string[] }[];
  const markdown = cells.filter((c) => c.cell_type === "markdown").map(cellSource).join("\n");
  for (
    const stale of [
      /a few thousand/,
      /about (five|ten|\d+) minutes/,
      /\d+(\.\d+)? ?% (test )?accuracy/,
    ]
  ) {
    assert.doesNotMatch(markdown, stale);
  }
  const code = cells.filter((c) => c.cell_type === "code").map(cellSource).join("\n");
  assert.doesNotMatch(code, /\b(arraySync|dataSync)\(/);
});

Deno.test("topLevelNames() lists what a cell declares for later cells, not types", () => {
  const cell =
    'import * as tf from "@tensorflow/tfjs";\nimport {\n  a,\n  type B,\n  c as d,\n} from "./x.ts";\n' +
    'import type { E } from "./e.ts";\nconst { f, g: [h, , i], j = 1, ...k } = l;\nlet m = 1;\n' +
    "async function n() {}\nclass O {}\nif (m) {\n  const inner = 2;\n}\n";
  assert.deepEqual(topLevelNames(cell), ["tf", "a", "d", "f", "h", "i", "j", "k", "m", "n", "O"]);
});

Deno.test("keepForLaterCells() disposes what the same name kept before, not the value itself", () => {
  const first = tf.scalar(1);
  keepForLaterCells("keep test", first);
  keepForLaterCells("keep test", first);
  assert.equal(first.isDisposed, false);
  const second = keepForLaterCells("keep test", tf.scalar(2));
  assert.equal(first.isDisposed, true);
  second.dispose();
});

Deno.test("loadDepthResults() reads the committed results; depthSummary() says what they show", async () => {
  const root = await Deno.makeTempDir();
  try {
    assert.equal(await loadDepthResults(root), null, "no results yet");
    const net = (depth: number, residual: boolean, trainErrors: number[]) => ({
      arch: `${residual ? "resnet" : "plain"}${depth}`,
      depth,
      residual,
      records: trainErrors.map((trainError, i) => ({ epoch: i + 1, trainError, testError: 0.5 })),
    });
    const results = {
      complete: true,
      models: [
        net(20, false, [0.5, 0.2]),
        net(56, false, [0.6, 0.3]),
        net(20, true, [0.5, 0.2]),
        net(56, true, [0.5, 0.1]),
      ],
    };
    await Deno.mkdir(join(root, "docs/depth"), { recursive: true });
    await Deno.writeTextFile(join(root, "docs/depth/results.json"), JSON.stringify(results));
    const loaded = (await loadDepthResults(root))!;
    assert.deepEqual(loaded, results);
    assert.equal(
      depthSummary(loaded),
      "plain: training error 20.0 % at 20 layers, 30.0 % at 56 layers: higher at the " +
        "deepest than at the shallowest.\nresidual: training error 20.0 % at 20 layers, 10.0 % at 56 " +
        "layers: lower at the deepest than at the shallowest.",
    );
    assert.match(
      depthSummary({ ...results, complete: false }),
      /\n\(The experiment is not complete/,
    );
    await Deno.writeTextFile(join(root, "docs/depth/results.json"), '{"models":[{"arch":"vgg"}]}');
    await assert.rejects(() => loadDepthResults(root), {
      message: /^Expected docs\/depth\/results.json to list "models", each with depth, residual/,
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
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
  const png = {
    output_type: "display_data",
    data: { "image/png": ["iVBORw0K", "Ggo=\n"], "text/plain": "a figure" },
  };
  const notebook = {
    nbformat: 4,
    metadata: { kernelspec: { name: "deno" } },
    cells: [
      cell(["a"], [png], 1),
      cell(["b"], [{ output_type: "stream", name: "stdout", text: "no figure" }], 2),
      cell(undefined, [{ output_type: "error", ename: "TypeError", evalue: "x is undefined" }], 3),
      cell(undefined, [], null),
    ],
  };
  assert.deepEqual(checkNotebook(notebook, ["a", "b", "c"], []), [
    "Expected cell 1 (b) to show 1 image or HTML output(s) but found 0",
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

Deno.test("withOutputs() numbers the code cells and keeps each display's metadata", () => {
  const notebook = {
    cells: [
      { cell_type: "markdown", source: "# A" },
      { cell_type: "code", source: "a" },
      { cell_type: "code", source: "b" },
    ],
  };
  const png = { "image/png": "iVBORw0KGgo=", "text/plain": "a figure" };
  const executed = withOutputs(notebook, {
    displays: { 1: [{ data: png, metadata: { "image/png": { width: 3, height: 2 } } }] },
    stdout: { 2: "b\n" },
  });
  assert.deepEqual(executed.cells.map((cell) => [cell.execution_count, cell.outputs]), [
    [undefined, undefined],
    [1, [{
      output_type: "display_data",
      data: png,
      metadata: { "image/png": { width: 3, height: 2 } },
    }]],
    [2, [{ output_type: "stream", name: "stdout", text: "b\n" }]],
  ]);
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

Deno.test("findCifar10Source() prefers $CIFAR10_DATA, else the repository's data/ (cache or download)", () => {
  const root = new URL("../data", import.meta.url).pathname;
  assert.deepEqual(findCifar10Source("/somewhere/cifar-10-binary.tar.gz"), {
    options: { source: "/somewhere/cifar-10-binary.tar.gz", root },
    description: "$CIFAR10_DATA (cifar-10-binary.tar.gz)",
  });
  const fallback = findCifar10Source("");
  assert.deepEqual(fallback.options, { root });
  assert.match(
    fallback.description,
    /^(the cache in data\/cifar-10-batches-bin|the official archive)/,
  );
  assert.ok(!fallback.description.includes(root), "no machine path in what the notebook prints");
});

Deno.test("withoutMachinePaths() shows paths relative to the repository and names $CIFAR10_DATA", () => {
  const root = new URL("../", import.meta.url);
  assert.equal(
    withoutMachinePaths(
      `from ${root.pathname}node_modules/x and ${root.href}native/y.so`,
      undefined,
    ),
    "from node_modules/x and native/y.so",
  );
  assert.equal(
    withoutMachinePaths("Reading /mnt/data/c.tar.gz", "/mnt/data/c.tar.gz"),
    "Reading $CIFAR10_DATA",
  );
});

Deno.test("notebookEnv() passes the shared archive as $CIFAR10_DATA only when it exists and none is set", async () => {
  const previous = Deno.env.get("CIFAR10_DATA");
  const file = await Deno.makeTempFile({ suffix: ".tar.gz" });
  try {
    Deno.env.delete("CIFAR10_DATA");
    assert.deepEqual(notebookEnv(true, file), { RESNET_CIFAR_SMOKE: "1", CIFAR10_DATA: file });
    assert.deepEqual(notebookEnv(false, `${file}.absent`), {});
    Deno.env.set("CIFAR10_DATA", "/elsewhere");
    assert.deepEqual(notebookEnv(false, file), {}, "the variable already set wins");
  } finally {
    await Deno.remove(file);
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
  const train = await Deno.readTextFile(new URL("../lib/train.ts", import.meta.url));
  assert.match(
    declarationSource(train, "inferBatches"),
    /\nexport async function\* inferBatches\(/,
  );
  assert.throws(() => declarationSource(text, "VGG16"), {
    message: "Expected an exported declaration of VGG16 but found none",
  });
});

Deno.test("highlightTypeScript() escapes the code and colours comments, strings, keywords", () => {
  const html = highlightTypeScript('// a < b\nconst s = "<x>";');
  assert.ok(!html.includes("<x>"));
  assert.match(html, /<font color="#6a737d">\/\/ a &#60; b<\/font>/);
  assert.match(html, /<font color="#d73a49">const<\/font>/);
  assert.match(html, /<font color="#032f62">&#34;&#60;x&#62;&#34;<\/font>/);
});

Deno.test("chooseNotebookPlan() trains the fast preset on all images on a CPU, the article's settings on a GPU", () => {
  const native = chooseNotebookPlan({ name: "native", detail: "" }, { smoke: false });
  assert.deepEqual(
    native.config,
    makeConfig({
      ...PRESETS.fast,
      trainLimit: null,
      testLimit: EPOCH_TEST_IMAGES,
      backend: "native",
    }),
  );
  assert.equal(native.fitEpochs, true);
  assert.equal(native.finalTestLimit, null);
  const gpu = chooseNotebookPlan({ name: "webgpu", detail: "GPU" }, { smoke: false });
  assert.deepEqual(gpu.config, makeConfig({ backend: "webgpu" }));
  assert.equal(gpu.fitEpochs, false);
  const article = chooseNotebookPlan({ name: "wasm", detail: "" }, {
    smoke: false,
    articleSettings: true,
  });
  assert.deepEqual(article.config, makeConfig({ backend: "wasm" }));
  const smoke = chooseNotebookPlan({ name: "wasm", detail: "" }, {
    smoke: true,
    articleSettings: true,
  });
  assert.deepEqual([smoke.config.epochs, smoke.config.trainLimit, smoke.fitEpochs], [
    1,
    200,
    false,
  ]);
  const cpu = chooseNotebookPlan({ name: "cpu", detail: "" }, { smoke: false });
  assert.equal(cpu.config.trainLimit, 200);
});

Deno.test("epochsForBudget() fits whole epochs of 50,000 images in what the budget leaves", () => {
  const speed = { trainImagesPerSecond: 400, testImagesPerSecond: 800 };
  // After training: 20 s + 2 x 10,000 / 800 = 45 s; 0.92 x (660 - 45) = 565.8 s for epochs of
  // 50,000 / 400 + 2,000 / 800 = 127.5 s: 4 epochs.
  assert.deepEqual(epochsForBudget(660, speed), {
    epochs: 4,
    trainImages: 50_000,
    trainingSeconds: 510,
    afterTrainingSeconds: 45,
  });
  assert.equal(epochsForBudget(1e6, speed).epochs, MAX_EPOCHS);
  const slow = epochsForBudget(600, { trainImagesPerSecond: 50, testImagesPerSecond: 200 });
  assert.equal(slow.epochs, 1);
  assert.ok(slow.trainImages < 50_000 && slow.trainImages % 500 === 0, `${slow.trainImages}`);
});

Deno.test("fitEpochs() measures once and sizes the epochs; a fixed plan is kept as it is", async () => {
  const measured: number[] = [];
  const measure = (config: { width: number }) => {
    measured.push(config.width);
    return Promise.resolve({ trainImagesPerSecond: 400, testImagesPerSecond: 800 });
  };
  const plan = chooseNotebookPlan({ name: "native", detail: "" }, { smoke: false });
  const fit = await fitEpochs(plan, { elapsedSeconds: NOTEBOOK_BUDGET_SECONDS - 660, measure });
  assert.deepEqual(measured, [16]);
  assert.deepEqual(fit.config, makeConfig({ ...plan.config, epochs: 4 }));
  assert.match(
    fit.reason,
    /native trains this network at 400 images\/s .* so 4 epoch\(s\) of 50,000 images/,
  );
  const smoke = chooseNotebookPlan({ name: "native", detail: "" }, { smoke: true });
  assert.equal((await fitEpochs(smoke, { elapsedSeconds: 0, measure })).config, smoke.config);
  assert.deepEqual(measured, [16], "a fixed plan measures nothing");
});

Deno.test("trainLimitForBudget() rounds down to 500s between 1,000 and 50,000", () => {
  assert.equal(trainLimitForBudget(80, 300, 4), 6000);
  assert.equal(trainLimitForBudget(35, 300, 4), 2500);
  assert.equal(trainLimitForBudget(1, 300, 4), 1000);
  assert.equal(trainLimitForBudget(5000, 300, 4), 50_000);
});

Deno.test("configRows() shows a note instead of a value where given", () => {
  const rows = configRows(makeConfig({ epochs: 3 }), { epochs: "later" });
  assert.deepEqual(rows.find((r) => r[0] === "epochs"), ["epochs", "later", "10"]);
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
