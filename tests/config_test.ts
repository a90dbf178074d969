import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { createOptimizer, crossEntropy } from "../lib/train.ts";
import {
  BACKEND_NAMES,
  ConfigError,
  DEFAULT_CONFIG,
  learningRateAt,
  makeConfig,
  MAX_SEED,
  MAX_WIDTH,
  PRESETS,
  type TrainConfig,
} from "../lib/train/config.ts";

Deno.test("DEFAULT_CONFIG is the article's recipe", () => {
  // The article (../shared/article, and ../shared/peer/article_torch.py): num_epochs = 10,
  // DataLoader(batch_size=64), Adam(lr=0.001), ResNet-18 (stem of 64 channels),
  // RandomCrop(32, padding=4) + RandomHorizontalFlip, plain CrossEntropyLoss, a constant rate,
  // every image of both splits, no test-time augmentation; the peer seeds with 0. The backend
  // is this project's choice: the fastest this machine has.
  assert.deepEqual(DEFAULT_CONFIG, {
    epochs: 10,
    batchSize: 64,
    learningRate: 0.001,
    arch: "resnet18",
    width: 64,
    trainLimit: null,
    testLimit: null,
    seed: 0,
    backend: "auto",
    lrSchedule: "constant",
    labelSmoothing: 0,
    testTimeFlip: false,
    cropPadding: 4,
  });
  assert.deepEqual(makeConfig(), DEFAULT_CONFIG);
});

Deno.test("makeConfig() throws a ConfigError naming the field, expected and found", () => {
  const WIDE = "1024 is 16x the article's width: 2.9 billion weights, 34 GB with Adam's state";
  const SEEDS = "2^32 - 1, as NumPy and PyTorch seeds";
  const cases: [Partial<TrainConfig>, keyof TrainConfig, string][] = [
    [{ epochs: 0 }, "epochs", "Expected epochs to be an integer >= 1 but found 0"],
    [{ batchSize: 2.5 }, "batchSize", "Expected batchSize to be an integer >= 1 but found 2.5"],
    [{ width: -4 }, "width", `Expected width to be an integer in 1..1024 but found -4 (${WIDE})`],
    [
      { width: 1e6 },
      "width",
      `Expected width to be an integer in 1..1024 but found 1000000 (${WIDE})`,
    ],
    [{ trainLimit: 0 }, "trainLimit", "Expected trainLimit to be an integer >= 1 but found 0"],
    [{ testLimit: 0 }, "testLimit", "Expected testLimit to be an integer >= 1 but found 0"],
    [
      { seed: -1 },
      "seed",
      `Expected seed to be an integer in 0..4294967295 but found -1 (${SEEDS})`,
    ],
    [
      { seed: 1e20 },
      "seed",
      `Expected seed to be an integer in 0..4294967295 but found 100000000000000000000 (${SEEDS})`,
    ],
    [{ learningRate: 0 }, "learningRate", "Expected learningRate to be a number > 0 but found 0"],
    [
      { backend: "cuda" as "cpu" },
      "backend",
      `Expected backend to be one of ${BACKEND_NAMES.join(", ")} but found cuda`,
    ],
  ];
  for (const [partial, field, message] of cases) {
    assert.throws(() => makeConfig(partial), (e: unknown) => {
      assert.ok(e instanceof ConfigError && e instanceof RangeError, String(e));
      assert.equal(e.field, field);
      assert.equal(e.message, message);
      assert.equal(e.name, "ConfigError");
      return true;
    });
  }
  assert.equal(makeConfig({ trainLimit: null, testLimit: 10 }).testLimit, 10);
  assert.equal(makeConfig({ width: MAX_WIDTH, seed: MAX_SEED }).seed, 2 ** 32 - 1);
});

Deno.test("BACKEND_NAMES lists what a user can choose, auto last", () => {
  assert.deepEqual(BACKEND_NAMES, ["cpu", "wasm", "native", "webgpu", "auto"]);
});

Deno.test("makeConfig() accepts the fast preset and rejects a bad schedule or smoothing", () => {
  assert.deepEqual(makeConfig(PRESETS.fast), { ...DEFAULT_CONFIG, ...PRESETS.fast });
  assert.throws(() => makeConfig({ lrSchedule: "cosine" as "onecycle" }), {
    name: "ConfigError",
    field: "lrSchedule",
    message: "Expected lrSchedule to be one of constant, onecycle but found cosine",
  });
  for (const labelSmoothing of [-0.1, 1, NaN]) {
    assert.throws(() => makeConfig({ labelSmoothing }), {
      name: "ConfigError",
      field: "labelSmoothing",
      message: `Expected labelSmoothing to be a number in [0, 1) but found ${labelSmoothing}`,
    });
  }
});

Deno.test("makeConfig() checks cropPadding and testTimeFlip", () => {
  assert.equal(makeConfig().cropPadding, 4);
  assert.equal(makeConfig({ cropPadding: 0 }).cropPadding, 0);
  for (const cropPadding of [-1, 1.5, 17]) {
    assert.throws(() => makeConfig({ cropPadding }), {
      name: "ConfigError",
      field: "cropPadding",
      message: `Expected cropPadding to be an integer in 0..16 but found ${cropPadding}`,
    });
  }
  assert.throws(() => makeConfig({ testTimeFlip: "yes" as unknown as boolean }), {
    name: "ConfigError",
    field: "testTimeFlip",
    message: "Expected testTimeFlip to be true or false but found yes",
  });
});

Deno.test("learningRateAt() is constant for the article's schedule", () => {
  const config = { learningRate: 0.001, lrSchedule: "constant" } as const;
  for (const step of [0, 10, 1e6]) assert.equal(learningRateAt(config, step, 100), 0.001);
});

Deno.test("learningRateAt() follows PyTorch's OneCycleLR (cosine, pct_start 0.3)", () => {
  const config = { learningRate: 0.004, lrSchedule: "onecycle" } as const;
  const close = (a: number, b: number) =>
    assert.ok(Math.abs(a - b) <= 1e-12 + 1e-9 * b, `${a} vs ${b}`);
  // torch 1.13's OneCycleLR(Adam(lr=0.004), max_lr=0.004, total_steps=100) gives these rates
  // at steps 0, 14, 29 (the peak), 64 and 99.
  close(learningRateAt(config, 0, 100), 0.00015999999999999999);
  close(learningRateAt(config, 14, 100), 0.001976053295515998);
  close(learningRateAt(config, 29, 100), 0.004);
  close(learningRateAt(config, 64, 100), 0.0020000079999999997);
  close(learningRateAt(config, 99, 100), 1.6e-8);
  // It rises, then falls, and stays at the end value past the last step.
  const rates = Array.from({ length: 100 }, (_, step) => learningRateAt(config, step, 100));
  assert.ok(rates.slice(0, 30).every((r, i) => i === 0 || r > rates[i - 1]));
  assert.ok(rates.slice(29).every((r, i) => i === 0 || r < rates[28 + i]));
  close(learningRateAt(config, 500, 100), 0.00016 / 1e4);
});

Deno.test("labelSmoothing and lrSchedule take effect in crossEntropy() and createOptimizer()", async () => {
  await tf.setBackend("cpu");
  const logits = tf.tensor2d([[2, 0, -1, 0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0, 0, 3, 0]]);
  const labels = tf.tensor1d([0, 8], "int32");
  // PyTorch: loss = mean over rows of -sum_k t_k log softmax_k, t = 0.9 * onehot + 0.1 / 10.
  const logSoftmax = await tf.logSoftmax(logits).array();
  const expected = [0, 8].reduce(
    (sum, label, row) =>
      sum - logSoftmax[row].reduce((s, v, k) => s + v * ((k === label ? 0.9 : 0) + 0.01), 0),
    0,
  ) / 2;
  const smoothed = crossEntropy(logits, labels, 0.1);
  assert.ok(Math.abs((await smoothed.data())[0] - expected) < 1e-5);
  const plain = crossEntropy(logits, labels);
  const plainExpected = -(logSoftmax[0][0] + logSoftmax[1][8]) / 2;
  assert.ok(Math.abs((await plain.data())[0] - plainExpected) < 1e-5);

  const w = tf.variable(tf.scalar(1));
  const optimizer = createOptimizer({ learningRate: 0.004, lrSchedule: "onecycle" }, 10);
  const rates: number[] = [];
  for (let step = 0; step < 10; step++) {
    optimizer.minimize(() => tf.square(w) as tf.Scalar);
    rates.push((optimizer as unknown as { learningRate: number }).learningRate);
  }
  assert.deepEqual(
    rates,
    rates.map((_, step) =>
      learningRateAt({ learningRate: 0.004, lrSchedule: "onecycle" }, step, 10)
    ),
  );
  const constant = createOptimizer({ learningRate: 0.001 });
  assert.equal((constant as unknown as { learningRate: number }).learningRate, 0.001);
  tf.dispose([logits, labels, smoothed, plain, w]);
  optimizer.dispose();
  constant.dispose();
});

Deno.test("makeConfig() takes an arch, gives He et al.'s nets their width, refuses others", () => {
  assert.equal(makeConfig({ arch: "resnet20" }).width, 16);
  assert.equal(makeConfig({ arch: "plain56", width: 8 }).width, 8);
  assert.equal(makeConfig({ arch: "resnet34" }).width, 64);
  // A config saved before --arch existed is the article's ResNet-18.
  assert.equal(makeConfig({ width: 16 }).arch, "resnet18");
  assert.throws(() => makeConfig({ arch: "vgg16" as "resnet18" }), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.field, "arch");
    assert.match(
      e.message,
      /^Expected arch to be one of resnet18, resnet34, .* but found "vgg16"$/,
    );
    return true;
  });
});
