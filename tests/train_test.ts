import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/init.ts";
import { CHECKPOINT_FILE, restoreCheckpoint } from "../lib/train/checkpoint.ts";
import { makeConfig } from "../lib/train/config.ts";
import { resnet18 } from "../lib/model.ts";
import { loadModel, saveModel } from "../lib/io/tfjs_model.ts";
import { RunFolderError } from "../lib/train/run_folder.ts";
import { makeBatch } from "../lib/data.ts";
import {
  createOptimizer,
  crossEntropy,
  evaluate,
  NonFiniteLossError,
  train,
} from "../lib/train.ts";
import { syntheticSplit } from "./support/synthetic.ts";

await initBackend("wasm");

const data = { train: syntheticSplit(96, 1), test: syntheticSplit(40, 2) };
const small = { width: 4, batchSize: 32, backend: "wasm" as const, epochs: 2 };

async function weightsOf(model: tf.LayersModel): Promise<Float32Array[]> {
  return await Promise.all(model.weights.map((w) => w.read().data() as Promise<Float32Array>));
}

Deno.test("train() leaks no tensors: tf.memory().numTensors is the same after every epoch", async () => {
  const before = tf.memory().numTensors;
  const counts: number[] = [];
  const result = await train({
    config: makeConfig({ ...small, epochs: 3 }),
    data,
    callbacks: { onEpochEnd: () => void counts.push(tf.memory().numTensors) },
  });
  assert.equal(counts.length, 3);
  assert.equal(counts[1], counts[0]);
  assert.equal(counts[2], counts[0]);
  result.model.dispose();
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("train() learns: synthetic colour classes are separated within a few epochs", async () => {
  const result = await train({
    config: makeConfig({ ...small, epochs: 8, batchSize: 16, learningRate: 0.003 }),
    data,
  });
  try {
    assert.equal(result.history.length, 8);
    assert.ok(
      result.history[7].trainLoss < result.history[0].trainLoss,
      JSON.stringify(result.history),
    );
    // Chance is 0.1; measured 0.8 with this seed.
    assert.ok(result.evaluation.accuracy >= 0.5, `accuracy ${result.evaluation.accuracy}`);
  } finally {
    result.model.dispose();
  }
});

Deno.test("train() writes the run folder, and --resume gives the uninterrupted run's weights", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const full = await train({ config: makeConfig(small), data, runDir: `${dir}/full` });
    const once = await train({
      config: makeConfig({ ...small, epochs: 1 }),
      data,
      runDir: `${dir}/cut`,
    });
    once.model.dispose();
    const resumed = await train({
      config: makeConfig(small),
      data,
      runDir: `${dir}/cut`,
      resume: true,
    });
    const [a, b] = [await weightsOf(full.model), await weightsOf(resumed.model)];
    assert.equal(a.length, b.length);
    a.forEach((w, i) => assert.deepEqual(b[i], w, `weight ${full.model.weights[i].originalName}`));
    const strip = (h: typeof full.history) =>
      h.map(({ seconds: _s, imagesPerSecond: _i, ...r }) => r);
    assert.deepEqual(strip(resumed.history), strip(full.history));

    for (
      const file of [
        "config.json",
        "history.json",
        CHECKPOINT_FILE,
        "model/model.json",
        "model/weights.bin",
      ]
    ) {
      await Deno.stat(`${dir}/full/${file}`);
    }
    const history = JSON.parse(await Deno.readTextFile(`${dir}/full/history.json`));
    assert.deepEqual(Object.keys(history[0]).sort(), [
      "epoch",
      "imagesPerSecond",
      "seconds",
      "testAccuracy",
      "testLoss",
      "trainAccuracy",
      "trainLoss",
    ]);
    // The saved TensorFlow.js model gives the trained model's predictions.
    const loaded = await loadModel(`${dir}/full/model`);
    const x = tf.randomNormal([3, 32, 32, 3], 0, 1, "float32", 1);
    const [p, q] = [full.model.predict(x) as tf.Tensor, loaded.predict(x) as tf.Tensor];
    assert.deepEqual(await q.data(), await p.data());
    tf.dispose([x, p, q]);
    [full.model, resumed.model, loaded].forEach((m) => m.dispose());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train() stops on a NaN loss and keeps the last good checkpoint byte for byte", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const first = await train({ config: makeConfig({ ...small, epochs: 1 }), data, runDir: dir });
    first.model.dispose();
    const good = await Deno.readFile(`${dir}/${CHECKPOINT_FILE}`);
    const before = tf.memory().numTensors;
    await assert.rejects(
      train({
        config: makeConfig({ ...small, learningRate: 1e38 }),
        data,
        runDir: dir,
        resume: true,
      }),
      (e: unknown) => {
        assert.ok(e instanceof NonFiniteLossError);
        assert.match((e as Error).message, /Loss became (NaN|Infinity) at epoch 2, batch \d+/);
        return true;
      },
    );
    assert.equal(tf.memory().numTensors, before);
    assert.deepEqual(await Deno.readFile(`${dir}/${CHECKPOINT_FILE}`), good);
    const leftovers = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) =>
      n.includes(".tmp-")
    );
    assert.deepEqual(leftovers, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--resume after 2 Adam steps gives the uninterrupted run's weights (beta2^t by product, not pow)", async () => {
  // 0.999^3 as two float32 products differs from float32 pow(0.999, 3) in its last bit; tfjs's
  // Adam.setWeights() uses pow, so the checkpoint restores the product.
  const dir = await Deno.makeTempDir();
  try {
    const config = makeConfig({ ...small, batchSize: 48, arch: "resnet8" });
    const full = await train({ config, data, runDir: `${dir}/full` });
    const stop = (r: { epoch: number }) => {
      if (r.epoch === 1) throw new Error("killed");
    };
    await assert.rejects(
      train({ config, data, runDir: `${dir}/cut`, callbacks: { onEpochEnd: stop } }),
      { message: "killed" },
    );
    const resumed = await train({ config, data, runDir: `${dir}/cut`, resume: true });
    const [a, b] = [await weightsOf(full.model), await weightsOf(resumed.model)];
    a.forEach((w, i) => assert.deepEqual(b[i], w, `weight ${full.model.weights[i].originalName}`));
    [full.model, resumed.model].forEach((m) => m.dispose());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("restoreCheckpoint() refuses a checkpoint of another width, listing what did not fit", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const run = await train({ config: makeConfig({ ...small, epochs: 1 }), data, runDir: dir });
    run.model.dispose();
    const wider = resnet18({ width: 8 });
    const optimizer = createOptimizer({ learningRate: 0.001 });
    await assert.rejects(
      restoreCheckpoint(`${dir}/${CHECKPOINT_FILE}`, wider, optimizer),
      /does not fit this model .*model\/conv1\/kernel: expected shape \[3,3,3,8\] but found \[3,3,3,4\]/,
    );
    await assert.rejects(
      train({ config: makeConfig({ ...small, seed: 5 }), data, runDir: dir, resume: true }),
      /Cannot resume .*seed was 0, now 5/,
    );
    wider.dispose();
    optimizer.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train() refuses to resume a run with another --arch, before loading any weight", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const plain = { ...small, arch: "plain8" as const, epochs: 1 };
    const run = await train({ config: makeConfig(plain), data, runDir: dir });
    assert.equal(run.model.name, "plain8");
    run.model.dispose();
    const config = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    assert.equal(config.arch, "plain8");
    await assert.rejects(
      train({
        config: makeConfig({ ...plain, arch: "resnet8", epochs: 2 }),
        data,
        runDir: dir,
        resume: true,
      }),
      { message: `Cannot resume ${dir}: arch was plain8, now resnet8` },
    );
    // The same arch continues.
    const resumed = await train({
      config: makeConfig({ ...plain, epochs: 2 }),
      data,
      runDir: dir,
      resume: true,
    });
    assert.deepEqual(resumed.history.map((r) => r.epoch), [1, 2]);
    resumed.model.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("evaluate() fills a confusion matrix whose diagonal gives the accuracy", async () => {
  const model = resnet18({ width: 4 });
  try {
    const result = await evaluate(model, data.test, { batchSize: 16 });
    const total = result.confusion.flat().reduce((a, b) => a + b, 0);
    assert.equal(total, 40);
    result.confusion.forEach((row) => assert.equal(row.reduce((a, b) => a + b, 0), 4));
    const diagonal = result.confusion.reduce((s, row, i) => s + row[i], 0);
    assert.equal(result.accuracy, diagonal / 40);
    assert.ok(Number.isFinite(result.loss) && result.loss > 0);
  } finally {
    model.dispose();
  }
});

Deno.test("evaluate({ flip: true }) scores each image by the mean of its and its mirror's logits", async () => {
  const model = resnet18({ width: 4, seed: 3 });
  try {
    const flipped = await evaluate(model, data.test, { batchSize: 16, flip: true });
    const plain = await evaluate(model, data.test, { batchSize: 16 });
    // The same scores computed by hand, in one batch.
    const { x, y } = makeBatch(data.test, [...Array(data.test.count).keys()], { augment: false });
    const [expectedLoss, predicted] = tf.tidy(() => {
      const logits = tf.div(
        tf.add(model.predict(x) as tf.Tensor2D, model.predict(tf.reverse(x, 2)) as tf.Tensor2D),
        2,
      ) as tf.Tensor2D;
      return [crossEntropy(logits, y), tf.argMax(logits, 1)];
    });
    const [predictedValues, labels] = await Promise.all([predicted.data(), y.data()]);
    const correct = Array.from(predictedValues).filter((p, i) => p === labels[i]).length;
    assert.equal(flipped.accuracy, correct / data.test.count);
    assert.ok(Math.abs(flipped.loss - (await expectedLoss.data())[0]) < 1e-5);
    // An untrained network is not mirror-symmetric: the flip changes the scores.
    assert.notEqual(flipped.loss, plain.loss);
    tf.dispose([x, y, expectedLoss, predicted]);
  } finally {
    model.dispose();
  }
});

Deno.test("train() refuses a runDir holding a run unless told to resume or restart, before any work", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const first = await train({ config: makeConfig({ ...small, epochs: 1 }), data, runDir: dir });
    first.model.dispose();
    const checkpoint = await Deno.readFile(`${dir}/${CHECKPOINT_FILE}`);
    const before = tf.memory().numTensors;
    await assert.rejects(
      train({ config: makeConfig({ ...small, epochs: 1, seed: 3 }), data, runDir: dir }),
      new RunFolderError(
        dir,
        `${dir} already holds a run (checkpoint.safetensors, config.json, history.json, model): ` +
          `continue it with --resume, or start it over with --restart (which deletes that run's files)`,
      ),
    );
    assert.equal(tf.memory().numTensors, before);
    assert.deepEqual(await Deno.readFile(`${dir}/${CHECKPOINT_FILE}`), checkpoint);
    const again = await train({
      config: makeConfig({ ...small, epochs: 1, seed: 3 }),
      data,
      runDir: dir,
      restart: true,
    });
    again.model.dispose();
    assert.equal(JSON.parse(await Deno.readTextFile(`${dir}/config.json`)).seed, 3);
    assert.notDeepEqual(await Deno.readFile(`${dir}/${CHECKPOINT_FILE}`), checkpoint);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train() stops on a non-finite test loss before the checkpoint is replaced", async () => {
  const dir = await Deno.makeTempDir();
  // One batch an epoch: its loss is computed before the step, so at a rate of 1e38 the training
  // loss is still finite and only the evaluation after the step sees the diverged weights.
  const oneBatch = { ...small, batchSize: data.train.count };
  try {
    const first = await train({
      config: makeConfig({ ...oneBatch, epochs: 1 }),
      data,
      runDir: dir,
    });
    first.model.dispose();
    const good = await Deno.readFile(`${dir}/${CHECKPOINT_FILE}`);
    const history = await Deno.readTextFile(`${dir}/history.json`);
    const before = tf.memory().numTensors;
    await assert.rejects(
      train({
        config: makeConfig({ ...oneBatch, learningRate: 1e38 }),
        data,
        runDir: dir,
        resume: true,
      }),
      (e: unknown) => {
        assert.ok(e instanceof NonFiniteLossError, String(e));
        assert.equal(e.batch, null);
        assert.match(e.message, /^Test loss became (NaN|Infinity) at epoch 2; training stopped$/);
        return true;
      },
    );
    assert.equal(tf.memory().numTensors, before);
    assert.deepEqual(await Deno.readFile(`${dir}/${CHECKPOINT_FILE}`), good);
    assert.equal(await Deno.readTextFile(`${dir}/history.json`), history);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train({ resume }) rewrites history.json and config.json from the checkpoint before training", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const full = await train({ config: makeConfig(small), data, runDir: dir });
    full.model.dispose();
    const complete = await Deno.readTextFile(`${dir}/history.json`);
    // Killed between the last checkpoint's rename and history.json's: one epoch short.
    await Deno.writeTextFile(
      `${dir}/history.json`,
      JSON.stringify(JSON.parse(complete).slice(0, 1)),
    );
    let atStart: number[] = [];
    const resumed = await train({
      config: makeConfig(small),
      data,
      runDir: dir,
      resume: true,
      callbacks: {
        onStart: async (history) => {
          atStart = history.map((r) => r.epoch);
          assert.equal(await Deno.readTextFile(`${dir}/history.json`), complete);
        },
      },
    });
    resumed.model.dispose();
    assert.deepEqual(atStart, [1, 2]);
    assert.equal(await Deno.readTextFile(`${dir}/history.json`), complete);
    // --resume --epochs 3: config.json says what the run now is.
    const longer = await train({
      config: makeConfig({ ...small, epochs: 3 }),
      data,
      runDir: dir,
      resume: true,
    });
    longer.model.dispose();
    assert.equal(JSON.parse(await Deno.readTextFile(`${dir}/config.json`)).epochs, 3);
    assert.equal(JSON.parse(await Deno.readTextFile(`${dir}/history.json`)).length, 3);
    await assert.rejects(
      train({ config: makeConfig({ ...small, epochs: 2 }), data, runDir: dir, resume: true }),
      new Error(`Cannot resume ${dir} with epochs 2: it has already trained 3`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadModel() names the folder when model.json and weights.bin do not belong together", async () => {
  const dir = await Deno.makeTempDir();
  const model = resnet18({ width: 2 });
  try {
    await saveModel(model, dir);
    const weights = await Deno.readFile(`${dir}/weights.bin`);
    await Deno.writeFile(`${dir}/weights.bin`, new Uint8Array(40));
    await assert.rejects(
      loadModel(dir),
      new Error(
        `Expected the weights in ${dir} (./weights.bin) to hold ${weights.length} bytes, as ` +
          `model.json lists, but found 40: the two files do not belong together`,
      ),
    );
    await Deno.writeFile(`${dir}/weights.bin`, weights);
    const json = JSON.parse(await Deno.readTextFile(`${dir}/model.json`));
    json.modelTopology.config.layers[1].class_name = "NoSuchLayer";
    await Deno.writeTextFile(`${dir}/model.json`, JSON.stringify(json));
    await assert.rejects(
      loadModel(dir),
      (e: Error) =>
        e.message.startsWith(`Cannot build the TensorFlow.js model in ${dir} from model.json: `),
    );
    await Deno.writeTextFile(`${dir}/model.json`, '{"modelTopology": {}, "weightsManifest": 3}');
    await assert.rejects(
      loadModel(dir),
      new Error(
        `Expected ${dir}/model.json to hold a modelTopology and a weightsManifest of paths and weights`,
      ),
    );
  } finally {
    model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});
