import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/init.ts";
import { registerWasmTrainingKernels } from "../lib/backends/wasm/kernels.ts";
import {
  expectConvGradientsMatchCpu,
  expectForwardCasesMatchCpu,
  expectOpGradientsMatchCpu,
  expectTinyTrainingMatchesCpu,
  onBackend,
} from "./support/kernel_parity.ts";

await initBackend("wasm");

Deno.test("registerWasmTrainingKernels() makes wasm conv2d gradients match the cpu backend", (t) =>
  expectConvGradientsMatchCpu(t, "wasm"));

const REPLACED = [
  "Conv2D",
  "FusedConv2D",
  "Conv2DBackpropFilter",
  "Conv2DBackpropInput",
  "Tile",
  "Sum",
  "Mean",
  "Identity",
];

Deno.test("registerWasmTrainingKernels() is idempotent", () => {
  const before = REPLACED.map((name) => tf.getKernel(name, "wasm"));
  registerWasmTrainingKernels();
  registerWasmTrainingKernels();
  const after = REPLACED.map((name) => tf.getKernel(name, "wasm"));
  assert.ok(before.every((k) => k !== undefined));
  assert.deepEqual(after, before);
});

Deno.test("wasm Identity shares the buffer, and frees it once both tensors are gone", async () => {
  await onBackend("wasm", async () => {
    const buffers = () =>
      (tf.memory() as tf.MemoryInfo & { numDataBuffers: number }).numDataBuffers;
    const x = tf.tensor2d([[1, -0, NaN], [4, 5, 6]]);
    const before = buffers();
    const y = tf.clone(x);
    assert.equal(buffers(), before, "no new buffer");
    x.dispose();
    assert.deepEqual(Array.from(await y.data()), [1, -0, NaN, 4, 5, 6]);
    assert.deepEqual(y.shape, [2, 3]);
    y.dispose();
    assert.equal(buffers(), before - 1, "freed with the last tensor");
    const names = tf.tensor1d(["a", "b"], "string");
    const copy = tf.clone(names); // strings go to the stock kernel
    assert.deepEqual(await copy.data(), ["a", "b"]);
    tf.dispose([names, copy]);
  });
});

Deno.test("registerWasmTrainingKernels() refuses to run before the wasm kernels exist", () => {
  const conv2d = tf.getKernel("Conv2D", "wasm");
  tf.unregisterKernel("Conv2D", "wasm");
  try {
    assert.throws(() => registerWasmTrainingKernels(), {
      message:
        /Expected the wasm backend's kernels to be registered but Conv2D is missing; import "@tensorflow\/tfjs-backend-wasm"/,
    });
  } finally {
    tf.registerKernel(conv2d);
  }
});

Deno.test("wasm conv2d gradient kernels reject attributes they do not implement", async (t) => {
  await tf.setBackend("wasm");
  const dy = tf.zeros([1, 4, 4, 2]);
  const x = tf.zeros([1, 4, 4, 3]);
  const filter = tf.zeros([3, 3, 3, 2]);
  const common = { strides: 1, pad: "same" };
  try {
    await t.step("NCHW", () => {
      assert.throws(
        () =>
          tf.engine().runKernel("Conv2DBackpropInput", { dy, filter }, {
            ...common,
            dataFormat: "NCHW",
            inputShape: [1, 4, 4, 3],
          }),
        { message: /wasm Conv2DBackpropInput: expected dataFormat 'NHWC' but found 'NCHW'/ },
      );
    });
    await t.step("dilations > 1", () => {
      assert.throws(
        () =>
          tf.engine().runKernel("Conv2DBackpropFilter", { x, dy }, {
            ...common,
            dataFormat: "NHWC",
            dilations: [2, 2],
            filterShape: [3, 3, 3, 2],
          }),
        { message: /wasm Conv2DBackpropFilter: expected dilations 1 but found \[2, 2\]/ },
      );
    });
    await t.step("dy of the wrong shape", () => {
      assert.throws(
        () =>
          tf.engine().runKernel("Conv2DBackpropInput", { dy, filter }, {
            ...common,
            dataFormat: "NHWC",
            inputShape: [1, 8, 8, 3],
          }),
        { message: /expected dy of shape \[1,8,8,2\] but found \[1,4,4,2\]/ },
      );
    });
  } finally {
    tf.dispose([dy, x, filter]);
  }
});

Deno.test("wasm Tile, Sum, Mean and Slice (replaced or handed to the stock kernel) match cpu", (t) =>
  expectForwardCasesMatchCpu(t, "wasm"));

Deno.test("wasm matches cpu on the gradients of the other ops a ResNet step uses", (t) =>
  expectOpGradientsMatchCpu(t, "wasm"));

Deno.test("a conv/BN/relu/pad/conv/mean/dense training step on wasm matches cpu", () =>
  expectTinyTrainingMatchesCpu("wasm"));
