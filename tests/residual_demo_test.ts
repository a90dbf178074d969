import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/init.ts";
import {
  createConvStack,
  disposeConvStack,
  layerGradientNorms,
  residualDemo,
  stackLoss,
} from "../lib/notebook/residual_demo.ts";

await initBackend("cpu");

/** A small batch of normal noise standing in for normalised images (16x16 keeps cpu fast). */
function batch(size: number, seed: number): { x: tf.Tensor4D; y: tf.Tensor1D } {
  return {
    x: tf.randomNormal([size, 16, 16, 3], 0, 1, "float32", seed) as tf.Tensor4D,
    y: tf.tensor1d(Array.from({ length: size }, (_, i) => i % 10), "int32"),
  };
}

Deno.test("layerGradientNorms() matches central finite differences of the loss", async () => {
  const stack = createConvStack({ depth: 3, channels: 3, seed: 1 });
  const { x, y } = batch(2, 7);
  try {
    for (const residual of [false, true]) {
      const norms = await layerGradientNorms(stack, x, y, residual);
      assert.equal(norms.length, 3);
      stack.layers.forEach((layer, i) => {
        // Along the gradient's own direction, the directional derivative is the gradient's norm.
        const direction = tf.tidy(() => {
          const kernels = stack.layers.map((l) => l.kernel);
          const g = tf.grads((...k: tf.Tensor[]) =>
            stackLoss(
              { ...stack, layers: stack.layers.map((l, j) => ({ ...l, kernel: k[j] })) },
              x,
              y,
              residual,
            )
          )(kernels)[i];
          return tf.div(g, tf.norm(g));
        });
        const eps = 1e-2;
        const lossAt = (sign: number) => {
          const original = layer.kernel;
          layer.kernel = tf.add(original, tf.mul(direction, sign * eps));
          const loss = stackLoss(stack, x, y, residual);
          const value = loss.dataSync()[0];
          tf.dispose([loss, layer.kernel]);
          layer.kernel = original;
          return value;
        };
        const numeric = (lossAt(1) - lossAt(-1)) / (2 * eps);
        direction.dispose();
        assert.ok(
          Math.abs(numeric - norms[i]) <= 0.02 * norms[i] + 1e-5,
          `layer ${i + 1} (${residual ? "residual" : "plain"}): analytic ${norms[i]}, ` +
            `numeric ${numeric}`,
        );
      });
    }
  } finally {
    tf.dispose([x, y]);
    disposeConvStack(stack);
  }
});

Deno.test("residualDemo() shows the gradient vanishing in the plain stack but not the residual one", async () => {
  const { x, y } = batch(4, 3);
  try {
    const rows = await residualDemo(x, y, { depth: 20, channels: 4 });
    const norms = (network: string) =>
      rows.filter((r) => r.network === network).map((r) => r.value);
    const plain = norms("plain"), residual = norms("residual");
    assert.equal(plain.length, 20);
    assert.equal(residual.length, 20);
    assert.deepEqual(
      rows.slice(0, 20).map((r) => r.layer),
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    assert.ok(rows.every((r) => Number.isFinite(r.value) && r.value > 0), "all norms positive");
    assert.ok(plain[0] / plain[19] < 1e-4, `plain: first/last = ${plain[0] / plain[19]}`);
    assert.ok(
      residual[0] / residual[19] > 0.1,
      `residual: first/last = ${residual[0] / residual[19]}`,
    );
  } finally {
    tf.dispose([x, y]);
  }
});

Deno.test("residualDemo() is reproducible from its seed and leaves no tensors behind", async () => {
  const { x, y } = batch(2, 5);
  try {
    const before = tf.memory().numTensors;
    const a = await residualDemo(x, y, { depth: 4, channels: 2, seed: 3 });
    assert.equal(tf.memory().numTensors, before);
    assert.deepEqual(await residualDemo(x, y, { depth: 4, channels: 2, seed: 3 }), a);
    assert.notDeepEqual(await residualDemo(x, y, { depth: 4, channels: 2, seed: 4 }), a);
  } finally {
    tf.dispose([x, y]);
  }
});

Deno.test("createConvStack() rejects a depth or width that is not a positive integer", () => {
  assert.throws(
    () => createConvStack({ depth: 0 }),
    { name: "RangeError", message: "Expected depth to be an integer >= 1 but found 0" },
  );
  assert.throws(
    () => createConvStack({ channels: 2.5 }),
    { name: "RangeError", message: "Expected channels to be an integer >= 1 but found 2.5" },
  );
});

Deno.test("createConvStack() initialises like PyTorch: uniform within 1/sqrt(fanIn)", () => {
  const stack = createConvStack({ depth: 2, channels: 4 });
  try {
    const bound = 1 / Math.sqrt(9 * 4);
    const values = stack.layers[1].kernel.dataSync();
    assert.deepEqual(stack.layers[1].kernel.shape, [3, 3, 4, 4]);
    assert.ok(values.every((v) => Math.abs(v) <= bound));
    assert.ok(Math.max(...values.map(Math.abs)) > 0.8 * bound, "fills the range");
  } finally {
    disposeConvStack(stack);
  }
});
