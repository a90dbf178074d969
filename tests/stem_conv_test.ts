/**
 * lib/backends/stem_conv.ts: the wasm and native accelerations train the stem
 * conv without the image's gradient; the stock layers (cpu) compute it.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/init.ts";
import { nativeLoads } from "./support/native.ts";
import { resnet18 } from "../lib/model.ts";

/** The input-gradient convolutions of one training step, and whether one produced the image's. */
async function inputGradients(): Promise<{ count: number; imageGradient: boolean }> {
  const model = resnet18({ width: 4, seed: 2 });
  const x = tf.randomNormal([2, 32, 32, 3], 0, 1, "float32", 5) as tf.Tensor4D;
  try {
    const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const info = await tf.profile(() => {
      const { value, grads } = tf.variableGrads(
        () => tf.sum(model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
        variables,
      );
      tf.dispose([value, ...Object.values(grads)]);
      return [] as tf.Tensor[];
    });
    const kernels = info.kernels.filter((k) => k.name === "Conv2DBackpropInput");
    return {
      count: kernels.length,
      imageGradient: kernels.some((k) => k.outputShapes[0]?.[3] === 3),
    };
  } finally {
    x.dispose();
    model.dispose();
  }
}

Deno.test("the stock stem conv (cpu) computes the image's gradient in a training step", async () => {
  await initBackend("cpu");
  // One per conv: 8 blocks x 2 convs + 3 shortcuts + the stem.
  assert.deepEqual(await inputGradients(), { count: 20, imageGradient: true });
});

Deno.test("on wasm and native a training step skips the image's gradient", async () => {
  for (const name of nativeLoads() ? ["wasm", "native"] as const : ["wasm"] as const) {
    await initBackend(name);
    // One per conv except the stem.
    assert.deepEqual(await inputGradients(), { count: 19, imageGradient: false }, name);
  }
  await initBackend("cpu");
});

Deno.test("the unfused stem computes what the stock layer does, and inference is the stock op", async () => {
  await initBackend("wasm");
  const model = resnet18({ width: 4, seed: 2 });
  const x = tf.randomNormal([2, 32, 32, 3], 0, 1, "float32", 5) as tf.Tensor4D;
  const stem = model.getLayer("conv1");
  const stock = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: "same" });
  stock.apply(x);
  stock.setWeights(stem.getWeights());
  // The stock layer, fed by a tensor rather than a model input, is never the stem.
  const [trained, inferred, reference] = tf.tidy(() =>
    [
      stem.apply(x, { training: true }),
      stem.apply(x, { training: false }),
      stock.apply(x),
    ] as tf.Tensor[]
  );
  const [a, b, c] = await Promise.all([trained.data(), inferred.data(), reference.data()]);
  assert.deepEqual(b, c, "inference runs the stock fused op");
  let maxDiff = 0;
  for (let i = 0; i < c.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - c[i]));
  assert.ok(maxDiff < 1e-5, `conv2d + bias differs from the fused op by ${maxDiff}`);
  tf.dispose([trained, inferred, reference, x]);
  stock.dispose();
  model.dispose();
  await initBackend("cpu");
});
