/**
 * The depth experiment (lib/experiment/depth.ts): its settings, and tiny real runs (He et al.'s
 * 8-layer nets at width 4 on a few hundred synthetic images) that write the results, the figure
 * and one run folder per net, and resume a partial run where it stopped.
 */
import assert from "node:assert/strict";
import { decode } from "fast-png";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/init.ts";
import {
  DEFAULT_DEPTH_CONFIG,
  DEPTH_FILES,
  DEPTH_MEASURES,
  depthArchs,
  type DepthConfig,
  DepthConfigError,
  DepthFolderError,
  type DepthRecord,
  type DepthResults,
  makeDepthConfig,
  openDepthFolder,
  runConfigFor,
  runDepthExperiment,
} from "../lib/experiment/depth.ts";
import { syntheticSplit } from "./support/synthetic.ts";

await initBackend("wasm");

const data = { train: syntheticSplit(200, 1), test: syntheticSplit(60, 2) };
const TINY: DepthConfig = makeDepthConfig({
  depths: [8],
  width: 4,
  epochs: 2,
  trainLimit: 200,
  testLimit: 60,
  trainEvalLimit: 50,
  backend: "wasm",
});

/** What a record measures, without the timings (which differ from run to run). */
function figures(records: readonly DepthRecord[]) {
  return records.map(({ seconds: _s, imagesPerSecond: _i, ...rest }) => rest);
}

async function readJson<T>(path: string): Promise<T> {
  return JSON.parse(await Deno.readTextFile(path));
}

Deno.test("makeDepthConfig() defaults to plain and residual 20 and 56, and names a bad field", () => {
  assert.deepEqual(makeDepthConfig(), DEFAULT_DEPTH_CONFIG);
  assert.deepEqual(depthArchs(makeDepthConfig()), ["plain20", "resnet20", "plain56", "resnet56"]);
  const cases: [Partial<DepthConfig>, keyof DepthConfig, RegExp][] = [
    [{ depths: [18] }, "depths", /^Expected depths to be distinct depths 6n\+2 .* found \[18\]$/],
    [{ depths: [] }, "depths", /found \[\]$/],
    [{ depths: [20, 20] }, "depths", /found \[20,20\]$/],
    [{ epochs: 0 }, "epochs", /^Expected epochs to be an integer >= 1 but found 0$/],
    [{ width: 0 }, "width", /^Expected width to be an integer in 1\.\.1024 but found 0/],
    [{ trainEvalLimit: 0 }, "trainEvalLimit", /^Expected trainEvalLimit .* found 0$/],
    [{ backend: "tpu" as "cpu" }, "backend", /^Expected backend to be one of cpu, /],
  ];
  for (const [partial, field, message] of cases) {
    assert.throws(() => makeDepthConfig(partial), (e: unknown) => {
      assert.ok(e instanceof DepthConfigError, String(e));
      assert.equal(e.field, field);
      assert.match(e.message, message);
      return true;
    });
  }
});

Deno.test("runConfigFor() trains every net with one recipe, differing only in arch", () => {
  const [plain, residual] = depthArchs(TINY).map((arch) => runConfigFor(TINY, arch));
  assert.deepEqual({ ...plain, arch: "resnet8" }, residual);
  assert.equal(plain.arch, "plain8");
  assert.equal(plain.width, 4);
  assert.equal(plain.lrSchedule, "onecycle");
  assert.equal(plain.labelSmoothing, 0);
  assert.equal(plain.cropPadding, 4);
});

Deno.test("runDepthExperiment() writes records, results.json, the figure and a run per net, and resumes a partial run", async () => {
  const dir = await Deno.makeTempDir({ prefix: "depth_test_" });
  const full = `${dir}/full`;
  const partial = `${dir}/partial`;
  try {
    const before = tf.memory().numTensors;
    const epochLines: string[] = [];
    const results = await runDepthExperiment({
      config: TINY,
      data,
      out: full,
      callbacks: { onEpochEnd: (arch, r) => void epochLines.push(`${arch} ${r.epoch}`) },
    });
    assert.equal(tf.memory().numTensors, before, "no tensor left behind");
    assert.deepEqual(epochLines, ["plain8 1", "plain8 2", "resnet8 1", "resnet8 2"]);

    // results.json: the settings, what each figure measures, and every net's records.
    const saved = await readJson<DepthResults>(`${full}/${DEPTH_FILES.results}`);
    assert.deepEqual(saved, JSON.parse(JSON.stringify(results)));
    assert.equal(saved.complete, true);
    assert.deepEqual(saved.config, TINY);
    assert.deepEqual(Object.keys(saved.measures), Object.keys(DEPTH_MEASURES));
    assert.deepEqual(saved.models.map((m) => [m.arch, m.depth, m.residual]), [
      ["plain8", 8, false],
      ["resnet8", 8, true],
    ]);
    for (const m of saved.models) {
      assert.ok(m.complete && m.stopped === null && m.parameters > 0, m.arch);
      assert.deepEqual(m.records.map((r) => r.epoch), [1, 2]);
      for (const r of m.records) {
        for (const key of ["trainError", "trainErrorAugmented", "testError"] as const) {
          assert.ok(r[key] !== null && r[key]! >= 0 && r[key]! <= 1, `${m.arch} ${key}`);
        }
        assert.ok(Number.isFinite(r.trainLoss) && Number.isFinite(r.testLoss) && r.seconds > 0);
      }
      // Each net is a normal run folder, and its own records file matches.
      const history = await readJson<{ testAccuracy: number }[]>(`${full}/${m.arch}/history.json`);
      assert.deepEqual(history.map((h) => 1 - h.testAccuracy), m.records.map((r) => r.testError));
      await Deno.stat(`${full}/${m.arch}/model/model.json`);
      assert.deepEqual(await readJson(`${full}/${m.arch}.json`), m);
    }
    assert.ok(saved.models[1].parameters > saved.models[0].parameters, "projections");

    // The figure: two panels; the plain net dashed, the ResNet solid; and its PNG.
    const svg = await Deno.readTextFile(`${full}/${DEPTH_FILES.figure}`);
    assert.ok(svg.startsWith("<svg") && svg.includes('stroke-dasharray="6 4"'));
    assert.ok(svg.includes("plain-8") && svg.includes("ResNet-8"));
    const png = decode(await Deno.readFile(`${full}/${DEPTH_FILES.figurePng}`));
    assert.ok(png.width > 400 && png.height > 100, `${png.width}x${png.height}`);

    // A run that stops after the ResNet's first epoch, killed before that epoch's record was
    // kept (its checkpoint was): --resume skips the finished plain net, continues the ResNet
    // from epoch 2, measures the lost record's training error, and ends where the
    // uninterrupted run did.
    await assert.rejects(
      runDepthExperiment({
        config: TINY,
        data,
        out: partial,
        callbacks: {
          onEpochEnd: (arch) => {
            if (arch === "resnet8") throw new Error("killed");
          },
        },
      }),
      { message: "killed" },
    );
    const kept = await readJson<{ records: DepthRecord[] }>(`${partial}/resnet8.json`);
    assert.equal(kept.records.length, 1);
    await Deno.writeTextFile(`${partial}/resnet8.json`, JSON.stringify({ ...kept, records: [] }));
    const started: string[] = [];
    const trainedEpochs = new Set<string>();
    const resumed = await runDepthExperiment({
      config: { ...TINY, backend: "wasm" },
      data,
      out: partial,
      mode: "resume",
      callbacks: {
        onModelStart: ({ arch, epochsDone }) => void started.push(`${arch} after ${epochsDone}`),
        onBatchEnd: (arch, p) => void trainedEpochs.add(`${arch} ${p.epoch}`),
        onModelEnd: (m, skipped) => void started.push(`${m.arch} ${skipped ? "skipped" : "done"}`),
      },
    });
    assert.deepEqual(started, ["plain8 skipped", "resnet8 after 1", "resnet8 done"]);
    assert.deepEqual([...trainedEpochs], ["resnet8 2"], "continued, not restarted");
    assert.deepEqual(
      resumed.models.map((m) => figures(m.records)),
      results.models.map((m) => figures(m.records)),
    );
    assert.equal(resumed.complete, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openDepthFolder() refuses a folder that is not what --resume, --restart or neither ask for", async () => {
  const dir = await Deno.makeTempDir({ prefix: "depth_folder_test_" });
  const open = async (mode: "new" | "resume" | "restart", config = TINY) =>
    await (await openDepthFolder(dir, mode, config)).release();
  try {
    await Deno.writeTextFile(`${dir}/notes.txt`, "mine");
    await assert.rejects(open("new"), {
      name: "DepthFolderError",
      message: `Expected ${dir} to be a new or empty folder but it holds notes.txt, and not a ` +
        `depth experiment (no experiment.json): choose another --out`,
    });
    await assert.rejects(open("resume"), {
      message: `Expected a depth experiment to resume in ${dir} but it has no experiment.json`,
    });
    await assert.rejects(open("restart"), (e: unknown) => e instanceof DepthFolderError);

    // An experiment's folder (its files as the first epoch leaves them, say).
    await Deno.writeTextFile(`${dir}/experiment.json`, JSON.stringify(TINY));
    await Deno.mkdir(`${dir}/plain8`);
    await Deno.writeTextFile(
      `${dir}/plain8/config.json`,
      JSON.stringify(runConfigFor(TINY, "plain8")),
    );
    await Deno.writeTextFile(`${dir}/plain8.json`, "{}");
    await assert.rejects(open("restart"), {
      message: `--restart deletes only a depth experiment's files, and ${dir} also holds ` +
        `notes.txt: move them away or choose another --out`,
    });
    await Deno.remove(`${dir}/notes.txt`);
    await assert.rejects(open("new"), {
      message: `${dir} already holds a depth experiment: continue it with --resume, or start ` +
        `it over with --restart (which deletes its files)`,
    });
    await assert.rejects(open("resume", { ...TINY, epochs: 3 }), {
      message: `Cannot resume ${dir}: epochs was 2, now 3 (start it over with --restart, or ` +
        `choose another --out)`,
    });
    await open("resume", { ...TINY, backend: "cpu" }); // the backend may change
    await open("restart");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
