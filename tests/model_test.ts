import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/init.ts";
import {
  ARCH_EXAMPLES,
  architecture,
  ARTICLE_PYTORCH_PARAMETERS,
  buildModel,
  countTrainableParameters,
  resnet18,
  stageShapes,
} from "../lib/model.ts";

await initBackend("cpu");

Deno.test("resnet18() has the article's 11,177,866 trainable parameters", () => {
  const model = resnet18();
  try {
    assert.equal(countTrainableParameters(model), ARTICLE_PYTORCH_PARAMETERS);
    assert.equal(countTrainableParameters(model), 11_177_866);
    // Keras also counts BatchNorm's moving mean and variance: 2 x 4800 more.
    assert.equal(model.countParams(), 11_187_466);
  } finally {
    model.dispose();
  }
});

Deno.test("resnet18() output shapes stage by stage match the article", () => {
  const model = resnet18();
  try {
    assert.deepEqual(stageShapes(model), [
      { name: "stem", shape: [32, 32, 64] },
      { name: "layer1", shape: [32, 32, 64] },
      { name: "layer2", shape: [16, 16, 128] },
      { name: "layer3", shape: [8, 8, 256] },
      { name: "layer4", shape: [4, 4, 512] },
      { name: "avgpool", shape: [512] },
      { name: "fc", shape: [10] },
    ]);
  } finally {
    model.dispose();
  }
});

Deno.test("resnet18() without conv biases has the bias-free count", () => {
  // The stem and both convs of every block carry a bias; shortcuts never do.
  const withBias = resnet18({ width: 8 });
  const without = resnet18({ width: 8, convBias: false });
  try {
    const w = 8;
    const biases = w + 4 * w + 4 * 2 * w + 4 * 4 * w + 4 * 8 * w; // stem + 4 convs per stage
    assert.equal(countTrainableParameters(withBias) - countTrainableParameters(without), biases);
  } finally {
    withBias.dispose();
    without.dispose();
  }
});

Deno.test("resnet18() names layers like the PyTorch state_dict", () => {
  const model = resnet18({ width: 4 });
  try {
    const names = model.weights.map((w) => w.originalName);
    for (
      const expected of [
        "conv1/kernel",
        "conv1/bias",
        "bn1/gamma",
        "bn1/moving_mean",
        "layer1.0.conv1/kernel",
        "layer2.0.shortcut.0/kernel",
        "layer2.0.shortcut.1/moving_variance",
        "layer4.1.bn2/beta",
        "fc/kernel",
        "fc/bias",
      ]
    ) assert.ok(names.includes(expected), `missing ${expected}`);
    assert.ok(!names.includes("layer1.0.shortcut.0/kernel"), "layer1 keeps identity shortcuts");
  } finally {
    model.dispose();
  }
});

Deno.test("resnet18() BatchNorm uses PyTorch's momentum 0.1 (Keras 0.9) and epsilon 1e-5", () => {
  const model = resnet18({ width: 4 });
  try {
    const config = model.getLayer("layer3.1.bn2").getConfig();
    assert.equal(config.momentum, 0.9);
    assert.equal(config.epsilon, 1e-5);
  } finally {
    model.dispose();
  }
});

Deno.test("resnet18() pads stride-2 convs like PyTorch (one pixel on every side)", () => {
  // Compare the first stride-2 conv with a direct conv2d using PyTorch's symmetric padding.
  const model = resnet18({ width: 4 });
  try {
    const conv = model.getLayer("layer2.0.conv1");
    const pad = model.getLayer("layer2.0.conv1.pad");
    const x = tf.randomNormal([2, 32, 32, 4], 0, 1, "float32", 7) as tf.Tensor4D;
    const ours = conv.apply(pad.apply(x)) as tf.Tensor4D;
    const [kernel, bias] = conv.getWeights();
    const reference = tf.add(
      tf.conv2d(x, kernel as tf.Tensor4D, 2, [[0, 0], [1, 1], [1, 1], [0, 0]]),
      bias,
    );
    assert.deepEqual(ours.shape, [2, 16, 16, 8]);
    const diff = tf.max(tf.abs(tf.sub(ours, reference))).dataSync()[0];
    assert.ok(diff < 1e-5, `max difference ${diff}`);
    // TensorFlow's 'same' would pad bottom/right only and give different numbers.
    const same = tf.add(tf.conv2d(x, kernel as tf.Tensor4D, 2, "same"), bias);
    assert.ok(tf.max(tf.abs(tf.sub(same, reference))).dataSync()[0] > 1e-3);
    tf.dispose([x, ours, reference, same]);
  } finally {
    model.dispose();
  }
});

Deno.test("resnet18() initialises like PyTorch: weights uniform within 1/sqrt(fanIn), seeded", () => {
  const a = resnet18({ width: 4, seed: 3 });
  const b = resnet18({ width: 4, seed: 3 });
  const c = resnet18({ width: 4, seed: 4 });
  try {
    const kernel = a.getLayer("layer1.0.conv1").getWeights()[0];
    const bound = 1 / Math.sqrt(3 * 3 * 4);
    const values = kernel.dataSync();
    assert.ok(values.every((v) => Math.abs(v) <= bound));
    assert.ok(Math.max(...values.map(Math.abs)) > 0.8 * bound);
    assert.deepEqual(b.getLayer("layer1.0.conv1").getWeights()[0].dataSync(), values);
    assert.notDeepEqual(c.getLayer("layer1.0.conv1").getWeights()[0].dataSync(), values);
  } finally {
    [a, b, c].forEach((m) => m.dispose());
  }
});

Deno.test("resnet18() rejects a bad width or stage layout with the value found", () => {
  assert.throws(() => resnet18({ width: 0 }), /Expected width to be an integer >= 1 but found 0/);
  assert.throws(
    () => resnet18({ blocksPerStage: [2, 2, 2] }),
    /Expected blocksPerStage to be 4 integers >= 1 but found \[2,2,2\]/,
  );
});

// ------------------------------------------------------------------ other architectures

/** Layers of `model` by class name: how many of each. */
function layerCounts(model: tf.LayersModel): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const layer of model.layers) {
    counts[layer.getClassName()] = (counts[layer.getClassName()] ?? 0) + 1;
  }
  return counts;
}

/**
 * He et al.'s CIFAR net of `n` blocks per stage at width 16, counted by hand: 3x3 convs without
 * bias, a BatchNorm (scale and shift) after each, the two 1x1 projections (+ BN) of a ResNet
 * where the width doubles, and the 64 -> 10 classifier.
 */
function cifarParameters(n: number, residual: boolean): number {
  const conv = (inC: number, outC: number) => 3 * 3 * inC * outC + 2 * outC; // + its BN
  const stem = conv(3, 16);
  const stage1 = n * 2 * conv(16, 16);
  const stage2 = conv(16, 32) + conv(32, 32) + (n - 1) * 2 * conv(32, 32);
  const stage3 = conv(32, 64) + conv(64, 64) + (n - 1) * 2 * conv(64, 64);
  const projections = residual ? (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64) : 0;
  return stem + stage1 + stage2 + stage3 + projections + (64 * 10 + 10);
}

Deno.test("architecture() parses the article's family, He et al.'s 6n+2 nets and plain twins", () => {
  assert.deepEqual(architecture("resnet18").stages.map((s) => s.blocks), [2, 2, 2, 2]);
  assert.deepEqual(architecture("resnet34").stages.map((s) => s.blocks), [3, 4, 6, 3]);
  assert.deepEqual(architecture("resnet56").stages.map((s) => s.blocks), [9, 9, 9]);
  assert.deepEqual(architecture("plain20").stages.map((s) => s.widthMultiplier), [1, 2, 4]);
  assert.equal(architecture("plain34").residual, false);
  assert.equal(architecture("resnet32").residual, true);
  assert.equal(architecture("resnet20").defaultWidth, 16);
  assert.equal(architecture("resnet20").convBias, false);
  assert.equal(architecture("plain18").convBias, true);
  for (const name of ARCH_EXAMPLES) assert.equal(architecture(name).name, name);
});

Deno.test("architecture() refuses an unknown name, listing the valid ones", () => {
  const valid = "Expected arch to be one of resnet18, resnet34, plain18, plain34, resnet20, " +
    "resnet32, resnet44, resnet56, resnet110, plain20, plain56, or resnet/plain followed by " +
    "another depth 6n+2 up to 1202, but found";
  assert.throws(() => architecture("vgg16"), { name: "RangeError", message: `${valid} "vgg16"` });
  assert.throws(() => architecture("resnet21"), {
    message: `${valid} "resnet21" (21 is neither 18, 34 nor 6n+2 with n >= 1)`,
  });
  assert.throws(() => architecture("plain2"), {
    message: `${valid} "plain2" (2 is neither 18, 34 nor 6n+2 with n >= 1)`,
  });
  assert.throws(() => architecture("resnet1208"), {
    message: `${valid} "resnet1208" (deeper than 1202, He et al.'s deepest)`,
  });
  assert.throws(() => architecture("resnet020"), { message: `${valid} "resnet020"` });
});

Deno.test("buildModel(architecture('resnet18')) is resnet18(): same layers, names and weights", async () => {
  const a = resnet18({ width: 4, seed: 2 });
  const b = buildModel(architecture("resnet18"), { width: 4, seed: 2 });
  const c = buildModel(architecture("resnet18"));
  try {
    assert.equal(b.name, "resnet18");
    assert.deepEqual(b.layers.map((l) => l.name), a.layers.map((l) => l.name));
    const values = (m: tf.LayersModel) => Promise.all(m.weights.map((w) => w.read().data()));
    assert.deepEqual(await values(b), await values(a));
    assert.equal(countTrainableParameters(c), ARTICLE_PYTORCH_PARAMETERS);
  } finally {
    [a, b, c].forEach((m) => m.dispose());
  }
});

Deno.test("resnet20 and resnet56 have He et al.'s 0.27 M and 0.85 M parameters", () => {
  for (const [name, n, published] of [["resnet20", 3, 0.27], ["resnet56", 9, 0.85]] as const) {
    const model = buildModel(architecture(name));
    try {
      const count = countTrainableParameters(model);
      assert.equal(count, cifarParameters(n, true), name);
      // He's counts are for zero-padded shortcuts (option A); the projections add 2,752.
      assert.equal(count - 2_752, cifarParameters(n, false));
      assert.ok(Math.abs(count / 1e6 - published) < 0.01, `${name}: ${count}`);
      // 6n + 2 layers with weights: the stem, two convs per block, the classifier; plus the
      // two projections, and one Add per block.
      const counts = layerCounts(model);
      assert.equal(counts.Conv2D, 6 * n + 2 - 1 + 2, name);
      assert.equal(counts.Dense, 1);
      assert.equal(counts.Add, 3 * n, name);
      assert.deepEqual(stageShapes(model).map((s) => s.shape), [
        [32, 32, 16],
        [32, 32, 16],
        [16, 16, 32],
        [8, 8, 64],
        [64],
        [10],
      ]);
    } finally {
      model.dispose();
    }
  }
  assert.equal(cifarParameters(3, true), 272_474);
  assert.equal(cifarParameters(9, true), 855_770);
});

Deno.test("plain twins are the same layers without shortcuts: no Add, no projection", () => {
  for (const [plain, n] of [["plain20", 3], ["plain56", 9]] as const) {
    const model = buildModel(architecture(plain), { width: 16 });
    try {
      const counts = layerCounts(model);
      assert.equal(counts.Add, undefined, plain);
      assert.equal(counts.Conv2D, 6 * n + 1, plain);
      assert.ok(!model.layers.some((l) => l.name.includes("shortcut")), plain);
      assert.equal(countTrainableParameters(model), cifarParameters(n, false), plain);
    } finally {
      model.dispose();
    }
  }
  const plain18 = buildModel(architecture("plain18"));
  try {
    assert.equal(layerCounts(plain18).Add, undefined);
    // ResNet-18 less its three projections (1x1 conv + BN where the width doubles).
    const projections = [[64, 128], [128, 256], [256, 512]]
      .reduce((sum, [i, o]) => sum + i * o + 2 * o, 0);
    assert.equal(countTrainableParameters(plain18), ARTICLE_PYTORCH_PARAMETERS - projections);
  } finally {
    plain18.dispose();
  }
});

Deno.test("resnet34 without conv biases has PyTorch's CIFAR ResNet34 count (21,282,122)", () => {
  // kuangliu/pytorch-cifar's ResNet34 (convs without bias): 21,282,122 parameters; the
  // article's convention adds a bias to the stem and to both convs of every block.
  const withBias = buildModel(architecture("resnet34"), { width: 64 });
  const without = buildModel({ ...architecture("resnet34"), convBias: false });
  try {
    assert.equal(countTrainableParameters(without), 21_282_122);
    const biases = 64 + 3 * 2 * 64 + 4 * 2 * 128 + 6 * 2 * 256 + 3 * 2 * 512;
    assert.equal(countTrainableParameters(withBias), 21_282_122 + biases);
    assert.equal(layerCounts(withBias).Add, 16);
  } finally {
    withBias.dispose();
    without.dispose();
  }
});

Deno.test("buildModel() scales He et al.'s widths with width and names the model for its arch", () => {
  const model = buildModel(architecture("plain8"), { width: 4, seed: 1 });
  try {
    assert.equal(model.name, "plain8");
    assert.deepEqual(stageShapes(model).map((s) => s.shape.at(-1)), [4, 4, 8, 16, 16, 10]);
  } finally {
    model.dispose();
  }
  assert.throws(
    () => buildModel(architecture("resnet20"), { width: 0 }),
    /Expected width to be an integer >= 1 but found 0/,
  );
});
