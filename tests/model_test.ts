import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/init.ts";
import {
  ARTICLE_PYTORCH_PARAMETERS,
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
