/**
 * lib/report/flops.ts: FLOPs per image against hand-counted multiply-adds, for a tiny model and
 * for the article's ResNet-18.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { countFlops } from "../lib/report/flops.ts";
import { resnet18 } from "../lib/model.ts";

/**
 * [6, 6, 2] -> conv 3x3 "same" (4, bias) -> BN -> ReLU -> { conv 3x3 stride 2 "valid" (4, no
 * bias), conv 1x1 stride 3 (4, no bias) } -> add -> global average -> dense 3 (bias).
 */
function tinyModel(): tf.LayersModel {
  const input = tf.input({ shape: [6, 6, 2] });
  const stem = tf.layers.conv2d({ name: "stem", filters: 4, kernelSize: 3, padding: "same" })
    .apply(input) as tf.SymbolicTensor;
  const bn = tf.layers.batchNormalization({ name: "bn" }).apply(stem) as tf.SymbolicTensor;
  const relu = tf.layers.reLU({ name: "relu" }).apply(bn) as tf.SymbolicTensor;
  const main = tf.layers.conv2d({
    name: "main",
    filters: 4,
    kernelSize: 3,
    strides: 2,
    padding: "valid",
    useBias: false,
  }).apply(relu) as tf.SymbolicTensor;
  const shortcut = tf.layers.conv2d({
    name: "shortcut",
    filters: 4,
    kernelSize: 1,
    strides: 3,
    useBias: false,
  }).apply(relu) as tf.SymbolicTensor;
  const sum = tf.layers.add({ name: "add" }).apply([main, shortcut]) as tf.SymbolicTensor;
  const pooled = tf.layers.globalAveragePooling2d({ name: "pool" }).apply(sum);
  const logits = tf.layers.dense({ name: "fc", units: 3 }).apply(pooled) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: logits });
}

Deno.test("countFlops() counts 2 FLOPs per multiply-add of a tiny model, by hand", () => {
  const model = tinyModel();
  try {
    const flops = countFlops(model);
    // Multiply-adds: output positions x kernel elements.
    const stem = 6 * 6 * (3 * 3 * 2 * 4); // 2592
    const main = 2 * 2 * (3 * 3 * 4 * 4); // 576: (6 - 3) / 2 + 1 = 2
    const shortcut = 2 * 2 * (4 * 4); // 64: (6 - 1) / 3 + 1 = 2
    const fc = 4 * 3; // 12
    assert.deepEqual(flops.layers.map((l) => [l.name, l.forwardFlops, l.inputGradient]), [
      ["stem", 2 * stem, false],
      ["main", 2 * main, true],
      ["shortcut", 2 * shortcut, true],
      ["fc", 2 * fc, true],
    ]);
    assert.equal(flops.forwardFlops, 2 * (stem + main + shortcut + fc)); // 6488
    // The stem: forward and weight gradient; the others add their input gradient.
    assert.equal(flops.trainFlops, 2 * (2 * stem + 3 * (main + shortcut + fc))); // 14280
    // Stem bias 144, BN 2 x 144, ReLU 144, add 16, pooling reads 16, fc bias 3.
    assert.equal(flops.forwardElementwiseOps, 144 + 288 + 144 + 16 + 16 + 3);
  } finally {
    model.dispose();
  }
});

Deno.test("countFlops() takes no weight gradient of a frozen layer, no input gradient before weights", () => {
  const input = tf.input({ shape: [5] });
  const frozen = tf.layers.dense({ name: "frozen", units: 4, trainable: false });
  const hidden = frozen.apply(input) as tf.SymbolicTensor;
  const output = tf.layers.dense({ name: "out", units: 2 }).apply(hidden) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: output });
  try {
    const flops = countFlops(model);
    // Nothing upstream of either layer trains, so neither needs its input's gradient.
    assert.deepEqual(flops.layers.map((l) => [l.name, l.trainFlops, l.inputGradient]), [
      ["frozen", 2 * 20, false],
      ["out", 2 * 2 * 8, false],
    ]);
  } finally {
    model.dispose();
  }
});

Deno.test("countFlops() refuses a layer with weights it cannot count, naming it", () => {
  const input = tf.input({ shape: [4, 4, 2] });
  const up = tf.layers.conv2dTranspose({ name: "up", filters: 2, kernelSize: 2, strides: 2 })
    .apply(input) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: up });
  try {
    assert.throws(() => countFlops(model), {
      message:
        /countFlops: expected only Conv1D, .*BatchNormalization, PReLU layers to hold weights but found Conv2DTranspose layer "up" with 2 weights; its FLOPs would go uncounted/,
    });
  } finally {
    model.dispose();
  }
});

/** ResNet-18's multiply-adds per 32x32 image at stem width `w`, from the architecture. */
function resnet18MultiplyAdds(w: number): { total: number; stem: number } {
  const conv = (size: number, k: number, cin: number, cout: number) =>
    size * size * k * k * cin * cout;
  const stem = conv(32, 3, 3, w);
  let total = stem + 4 * conv(32, 3, w, w); // layer1: four 3x3 convs at 32x32
  for (const [size, c] of [[16, 2 * w], [8, 4 * w], [4, 8 * w]]) {
    // First conv halves the map and doubles the channels; a 1x1 shortcut does the same.
    total += conv(size, 3, c / 2, c) + 3 * conv(size, 3, c, c) + conv(size, 1, c / 2, c);
  }
  return { total: total + 8 * w * 10, stem };
}

Deno.test("countFlops() of ResNet-18 at width 64 is the known 0.56 GMAC x 2, train 3.33 GFLOP", () => {
  const model = resnet18({ width: 64 });
  try {
    const flops = countFlops(model);
    const macs = resnet18MultiplyAdds(64);
    assert.equal(macs.total, 555_422_720); // the 0.56 GMac usually quoted for CIFAR ResNet-18
    assert.equal(flops.forwardFlops, 2 * macs.total); // 1.111 GFLOP
    // Three products per layer, less the stem's input gradient: 3.329 GFLOP. The issue's
    // "about 3.35" is 3 x 2 x 0.56, the rounded multiply-adds; the count is 0.6 % below it.
    assert.equal(flops.trainFlops, 3 * 2 * macs.total - 2 * macs.stem);
    assert.ok(Math.abs(flops.trainFlops / 3.35e9 - 1) < 0.01, String(flops.trainFlops));
    // Elementwise work is a rounding error in FLOPs (its cost is memory traffic).
    assert.ok(flops.forwardElementwiseOps < 0.005 * flops.forwardFlops);
    assert.equal(flops.layers.length, 21); // 20 convs (17 + 3 shortcuts) and fc
  } finally {
    model.dispose();
  }
});

Deno.test("countFlops() of ResNet-18 scales with the width (width 16)", () => {
  const model = resnet18({ width: 16 });
  try {
    const flops = countFlops(model);
    const macs = resnet18MultiplyAdds(16);
    assert.equal(flops.forwardFlops, 2 * macs.total); // 70.1 MFLOP
    assert.equal(flops.trainFlops, 3 * 2 * macs.total - 2 * macs.stem); // 209.4 MFLOP
  } finally {
    model.dispose();
  }
});
