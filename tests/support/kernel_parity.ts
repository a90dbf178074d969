/**
 * What the kernel parity tests share: deterministic inputs, the error
 * measure, a leak-checking runner for each backend, and the cases (the
 * model's convolutions, reductions, the other ops of a step, a tiny network).
 *
 * `native` runs on the wasm backend with the native acceleration installed;
 * `wasm` runs the same backend without it (`initBackend` switches).
 *
 * @module
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../../lib/backends/init.ts";

/** Gradients agree when max|wasm - cpu| / max|cpu| is at most this (float32 sums in another order). */
export const GRADIENT_TOLERANCE = 1e-4;
/** Weights after 3 Adam steps agree to this, relative to each tensor's largest value. */
export const STATE_TOLERANCE = 1e-4;

export type Backend = "cpu" | "wasm" | "native";
export type Pad = "valid" | "same" | number | [
  [number, number],
  [number, number],
  [number, number],
  [number, number],
];

/** Deterministic values in [-1, 1): the same on every backend and every run. */
export function pseudoRandom(shape: readonly number[], seed: number): Float32Array {
  const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
  let state = seed;
  for (let i = 0; i < values.length; i++) {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    values[i] = state / 0x40000000 - 1;
  }
  return values;
}

/** max|actual - expected| / max|expected|, the measure the tolerances above use. */
export function relativeError(actual: Float32Array, expected: Float32Array): number {
  assert.equal(actual.length, expected.length);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < expected.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(actual[i] - expected[i]));
    maxRef = Math.max(maxRef, Math.abs(expected[i]));
  }
  return maxRef === 0 ? maxDiff : maxDiff / maxRef;
}

/** Runs `body` on `backend` and checks it leaves no tensor and no backend buffer behind. */
export async function onBackend<T>(backend: Backend, body: () => Promise<T>): Promise<T> {
  await initBackend(backend);
  const before = tf.memory();
  const result = await body();
  const after = tf.memory() as tf.MemoryInfo & { numDataBuffers: number };
  assert.equal(after.numTensors, before.numTensors, `${backend}: tensors leaked`);
  assert.equal(
    after.numDataBuffers,
    (before as typeof after).numDataBuffers,
    `${backend}: data buffers leaked`,
  );
  return result;
}

export interface ConvCase {
  name: string;
  x: [number, number, number, number];
  filter: [number, number, number, number];
  strides: number | [number, number];
  pad: Pad;
}

/** Input and filter gradients of conv2d for a fixed upstream gradient dy, on one backend. */
export function convGradients(
  backend: Backend,
  c: ConvCase,
): Promise<[Float32Array, Float32Array]> {
  return onBackend(backend, async () => {
    const x = tf.tensor4d(pseudoRandom(c.x, 1), c.x);
    const filter = tf.tensor4d(pseudoRandom(c.filter, 2), c.filter);
    const conv = (a: tf.Tensor, b: tf.Tensor) =>
      tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.strides, c.pad);
    const outShape = tf.tidy(() => conv(x, filter).shape);
    const dy = tf.tensor4d(pseudoRandom(outShape, 3), outShape);
    const before = tf.memory().numTensors;
    const [dx, dFilter] = tf.grads(conv)([x, filter], dy);
    // Exactly the two gradients are new: no intermediate of the kernels survives.
    assert.equal(tf.memory().numTensors, before + 2);
    const data = await Promise.all([dx.data(), dFilter.data()]) as [Float32Array, Float32Array];
    tf.dispose([x, filter, dy, dx, dFilter]);
    return data;
  });
}

// The model's convolutions (ZeroPadding2D then 'valid') at width 8, plus the
// general paddings tfjs can pass. Batches are small: parity does not depend on it.
export const CONV_CASES: ConvCase[] = [
  {
    name: "stem 3x3 s1, 3->8, padded 34x34",
    x: [4, 34, 34, 3],
    filter: [3, 3, 3, 8],
    strides: 1,
    pad: "valid",
  },
  {
    name: "3x3 s1, 8->8, padded 34x34",
    x: [4, 34, 34, 8],
    filter: [3, 3, 8, 8],
    strides: 1,
    pad: "valid",
  },
  {
    name: "3x3 s2, 8->16, 34x34->16x16",
    x: [4, 34, 34, 8],
    filter: [3, 3, 8, 16],
    strides: 2,
    pad: "valid",
  },
  {
    name: "3x3 s2, 16->32, 18x18->8x8",
    x: [4, 18, 18, 16],
    filter: [3, 3, 16, 32],
    strides: 2,
    pad: "valid",
  },
  {
    name: "3x3 s2, 32->64, 10x10->4x4",
    x: [2, 10, 10, 32],
    filter: [3, 3, 32, 64],
    strides: 2,
    pad: "valid",
  },
  {
    name: "3x3 s1, 64->64, padded 6x6->4x4",
    x: [2, 6, 6, 64],
    filter: [3, 3, 64, 64],
    strides: 1,
    pad: "valid",
  },
  {
    name: "1x1 s2 shortcut, 8->16, 32->16",
    x: [4, 32, 32, 8],
    filter: [1, 1, 8, 16],
    strides: 2,
    pad: "valid",
  },
  {
    name: "1x1 s2 shortcut, 32->64, 8->4",
    x: [4, 8, 8, 32],
    filter: [1, 1, 32, 64],
    strides: 2,
    pad: "valid",
  },
  { name: "3x3 s1 'same'", x: [3, 16, 16, 8], filter: [3, 3, 8, 16], strides: 1, pad: "same" },
  // Narrow layers (the model's first stages from width 16), a width not a
  // multiple of 4, and 'same' at stride 2 on an even size, which pads the
  // bottom and right only (asymmetric pads, as tfjs's padInfo gives them).
  {
    name: "3x3 s1 'same', 16->16",
    x: [3, 8, 8, 16],
    filter: [3, 3, 16, 16],
    strides: 1,
    pad: "same",
  },
  {
    name: "3x3 s1 'same', 32->32",
    x: [2, 8, 12, 32],
    filter: [3, 3, 32, 32],
    strides: 1,
    pad: "same",
  },
  {
    name: "3x3 s1 'same', 16->16, width 6",
    x: [2, 5, 6, 16],
    filter: [3, 3, 16, 16],
    strides: 1,
    pad: "same",
  },
  {
    name: "3x3 s2 'same', even size (pads bottom and right only)",
    x: [2, 16, 16, 8],
    filter: [3, 3, 8, 16],
    strides: 2,
    pad: "same",
  },
  // The filter gradient the native backend takes through im2col + SGEMM
  // (strided 3x3 from 64 channels in), at an odd size; and a pointwise conv.
  {
    name: "3x3 s2 'same', 64->48, odd size",
    x: [2, 11, 11, 64],
    filter: [3, 3, 64, 48],
    strides: 2,
    pad: "same",
  },
  {
    name: "1x1 s1, 32->24",
    x: [2, 5, 7, 32],
    filter: [1, 1, 32, 24],
    strides: 1,
    pad: "valid",
  },
  {
    name: "3x3 s2 'same', odd size",
    x: [3, 15, 15, 8],
    filter: [3, 3, 8, 16],
    strides: 2,
    pad: "same",
  },
  // A numeric pad only with a square filter and strides: tfjs 4.22 sizes the
  // output of a numeric pad from the filter height and stride height alone, so
  // a non-square one makes even the stock wasm forward Conv2D overrun its output.
  { name: "3x3 s2, numeric pad 1", x: [2, 13, 13, 3], filter: [3, 3, 3, 5], strides: 2, pad: 1 },
  {
    name: "5x4 strides [3,2], explicit pads",
    x: [2, 13, 12, 3],
    filter: [5, 4, 3, 5],
    strides: [3, 2],
    pad: [[0, 0], [1, 2], [2, 0], [0, 0]],
  },
  {
    name: "3x3 s1, explicit pads wider than the filter",
    x: [2, 7, 6, 3],
    filter: [3, 3, 3, 4],
    strides: 1,
    pad: [[0, 0], [3, 0], [0, 4], [0, 0]],
  },
  {
    name: "3x3 s2, explicit pads wider than the filter",
    x: [2, 9, 11, 3],
    filter: [3, 3, 3, 5],
    strides: 2,
    pad: [[0, 0], [4, 0], [1, 5], [0, 0]],
  },
];

/** Forward values of `op` on one backend, inputs drawn as in {@linkcode pseudoRandom}. */
export function opValues(
  backend: Backend,
  shape: number[],
  dtype: "float32" | "int32" | "bool",
  op: (x: tf.Tensor) => tf.Tensor,
): Promise<{ shape: number[]; values: Float32Array }> {
  return onBackend(backend, async () => {
    const values = pseudoRandom(shape, 5).map((v) => dtype === "float32" ? v : Math.round(4 * v));
    const x = tf.tensor(values, shape, dtype);
    const y = op(x);
    const result = { shape: y.shape, values: Float32Array.from(await y.data()) };
    tf.dispose([x, y]);
    return result;
  });
}

// Tile, Sum and Mean are replaced on wasm; each case notes which path it takes.
export const FORWARD_CASES: {
  name: string;
  shape: number[];
  dtype: "float32" | "int32" | "bool";
  op: (x: tf.Tensor) => tf.Tensor;
}[] = [
  {
    name: "slice off a padding ring (ZeroPadding2D's gradient)",
    shape: [3, 8, 8, 4],
    dtype: "float32",
    op: (x) => tf.slice(x, [0, 1, 1, 0], [3, 6, 6, 4]),
  },
  {
    name: "slice inner axes, size -1 to the end",
    shape: [2, 5, 7],
    dtype: "float32",
    op: (x) => tf.slice(x, [1, 2, 3], [1, -1, 2]),
  },
  { name: "slice int32, rank 1", shape: [9], dtype: "int32", op: (x) => tf.slice(x, [2], [5]) },
  {
    name: "slice bool (stock kernel)",
    shape: [4, 3],
    dtype: "bool",
    op: (x) => tf.slice(x, [1, 0], [2, 3]),
  },
  {
    name: "tile [1,1,1,C] to NHWC (batch-norm gradient)",
    shape: [1, 1, 1, 8],
    dtype: "float32",
    op: (x) => tf.tile(x, [4, 6, 6, 1]),
  },
  {
    name: "tile, both reps and sizes > 1",
    shape: [2, 3],
    dtype: "float32",
    op: (x) => tf.tile(x, [3, 2]),
  },
  { name: "tile int32", shape: [1, 3, 1], dtype: "int32", op: (x) => tf.tile(x, [2, 2, 5]) },
  {
    name: "tile bool (stock kernel)",
    shape: [2, 1, 3],
    dtype: "bool",
    op: (x) => tf.tile(x, [2, 3, 1]),
  },
  {
    name: "tile needing 8 broadcast axes (stock kernel)",
    shape: [2, 2, 2, 2],
    dtype: "float32",
    op: (x) => tf.tile(x, [2, 3, 2, 2]),
  },
  {
    name: "sum over N, H, W",
    shape: [4, 6, 6, 8],
    dtype: "float32",
    op: (x) => tf.sum(x, [0, 1, 2]),
  },
  {
    name: "sum over N, H, W, keepDims",
    shape: [4, 6, 6, 8],
    dtype: "float32",
    op: (x) => tf.sum(x, [2, 0, 1], true),
  },
  { name: "sum over H, W", shape: [4, 6, 6, 8], dtype: "float32", op: (x) => tf.sum(x, [1, 2]) },
  {
    name: "sum over C (stock kernel)",
    shape: [4, 6, 6, 8],
    dtype: "float32",
    op: (x) => tf.sum(x, -1),
  },
  {
    name: "sum over N, W (stock kernel)",
    shape: [4, 6, 6, 8],
    dtype: "float32",
    op: (x) => tf.sum(x, [0, 2]),
  },
  {
    name: "sum int32 (stock kernel)",
    shape: [4, 6, 8],
    dtype: "int32",
    op: (x) => tf.sum(x, [0, 1]),
  },
  {
    name: "mean over N, H, W",
    shape: [4, 6, 6, 8],
    dtype: "float32",
    op: (x) => tf.mean(x, [0, 1, 2]),
  },
  {
    name: "mean over H, W, keepDims",
    shape: [4, 6, 6, 8],
    dtype: "float32",
    op: (x) => tf.mean(x, [1, 2], true),
  },
  { name: "mean int32 (stock kernel)", shape: [4, 6, 8], dtype: "int32", op: (x) => tf.mean(x, 0) },
];

/** Gradients of one op (as a scalar loss: sum(op(inputs) * weights)) on one backend. */
export function opGradients(
  backend: Backend,
  shapes: number[][],
  op: (...inputs: tf.Tensor[]) => tf.Tensor,
): Promise<Float32Array[]> {
  return onBackend(backend, async () => {
    const inputs = shapes.map((shape, i) => tf.tensor(pseudoRandom(shape, 10 + i), shape));
    const outShape = tf.tidy(() => op(...inputs).shape);
    const weights = tf.tensor(pseudoRandom(outShape, 99), outShape);
    const grads = tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(op(...xs), weights)))(inputs);
    const data = await Promise.all(grads.map((g) => g.data() as Promise<Float32Array>));
    tf.dispose([...inputs, weights, ...grads]);
    return data;
  });
}

// The other differentiable ops in a ResNet training step, each on the stock wasm kernels.
export const OP_CASES: {
  name: string;
  shapes: number[][];
  op: (...inputs: tf.Tensor[]) => tf.Tensor;
}[] = [
  {
    name: "batchNorm (FusedBatchNorm; Tile/Sum in its gradient)",
    shapes: [[4, 6, 6, 8], [8], [8], [8], [8]],
    op: (x, mean, variance, offset, scale) =>
      tf.batchNorm(x, mean, tf.add(tf.abs(variance), 0.5), offset, scale, 1e-5),
  },
  {
    name: "moments over N, H, W (BatchNorm's training statistics)",
    shapes: [[4, 6, 6, 8]],
    op: (x) => {
      const { mean, variance } = tf.moments(x, [0, 1, 2]);
      return tf.concat([mean, variance]);
    },
  },
  { name: "relu", shapes: [[4, 6, 6, 8]], op: (x) => tf.relu(x) },
  {
    name: "mean over H, W (global average pooling)",
    shapes: [[4, 6, 6, 8]],
    op: (x) => tf.mean(x, [1, 2]),
  },
  {
    name: "pad (ZeroPadding2D; Slice in its gradient)",
    shapes: [[4, 6, 6, 8]],
    op: (x) => tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]),
  },
  {
    name: "add (residual connection)",
    shapes: [[4, 6, 6, 8], [4, 6, 6, 8]],
    op: (a, b) => tf.add(a, b),
  },
  {
    name: "add a per-channel bias (the stem's conv)",
    shapes: [[4, 6, 6, 8], [8]],
    op: (a, b) => tf.add(a, b),
  },
  {
    name: "fused matMul + bias (Dense)",
    shapes: [[6, 16], [16, 10], [10]],
    op: (a, b, bias) => tf.fused.matMul({ a, b, bias }),
  },
  {
    name: "softmaxCrossEntropy",
    shapes: [[6, 10]],
    op: (logits) =>
      tf.losses.softmaxCrossEntropy(
        tf.oneHot(tf.tensor1d([0, 3, 9, 2, 5, 1], "int32"), 10),
        logits,
      ),
  },
];

/** conv -> BN -> relu -> pad -> conv(stride 2) -> global mean -> dense: one of each layer kind. */
export function tinyNetwork(): tf.LayersModel {
  const input = tf.input({ shape: [8, 8, 3] });
  const layers: tf.layers.Layer[] = [
    tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: "same", useBias: false }),
    // Stock on cpu and wasm; one fused op on native (its acceleration replaces the layer's call).
    tf.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-5 }),
    tf.layers.reLU(),
    tf.layers.zeroPadding2d({ padding: 1 }),
    tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: "valid" }),
    tf.layers.globalAveragePooling2d({}),
    tf.layers.dense({ units: 5 }),
  ];
  let h = input;
  for (const layer of layers) h = layer.apply(h) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: h });
}

/**
 * conv -> BN -> relu, then a residual block's second half (conv -> BN, the
 * identity added, relu), then global mean -> dense: on native, the first BN
 * fuses its ReLU, the second (which feeds the add) does not, and the add
 * fuses the ReLU after it, while the block's input gets gradients from both
 * of its uses.
 */
export function tinyResidualNetwork(): tf.LayersModel {
  const input = tf.input({ shape: [8, 8, 3] });
  const apply = (layer: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[]) =>
    layer.apply(x) as tf.SymbolicTensor;
  const bn = () => tf.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-5 });
  // No bias before a BN: its true gradient is 0, and Adam would amplify the rounding noise.
  const conv = () =>
    tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: "same", useBias: false });
  const h = apply(tf.layers.reLU(), apply(bn(), apply(conv(), input)));
  const r = apply(bn(), apply(conv(), h));
  const out = apply(tf.layers.reLU(), apply(tf.layers.add({}), [r, h]));
  const pooled = apply(tf.layers.globalAveragePooling2d({}), out);
  return tf.model({ inputs: input, outputs: apply(tf.layers.dense({ units: 5 }), pooled) });
}

export interface StepResult {
  firstGradients: Float32Array[];
  losses: number[];
  weights: Float32Array[];
}

/** 3 Adam steps of a tiny network (built by `network`) on one fixed batch, from the given weights. */
export function trainTiny(
  backend: Backend,
  initial: Float32Array[],
  network: () => tf.LayersModel = tinyNetwork,
): Promise<StepResult> {
  return onBackend(backend, async () => {
    const model = network();
    const initialTensors = initial.map((w, i) => tf.tensor(w, model.getWeights()[i].shape));
    model.setWeights(initialTensors);
    tf.dispose(initialTensors);
    const x = tf.tensor4d(pseudoRandom([6, 8, 8, 3], 7), [6, 8, 8, 3]);
    const labels = tf.tidy(() => tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 0], "int32"), 5));
    const loss = () =>
      tf.losses.softmaxCrossEntropy(
        labels,
        model.apply(x, { training: true }) as tf.Tensor,
      ) as tf.Scalar;
    const optimizer = tf.train.adam(0.01, 0.9, 0.999, 1e-8);
    const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);

    const { value, grads } = tf.variableGrads(loss, variables);
    const firstGradients = await Promise.all(
      variables.map((v) => grads[v.name].data() as Promise<Float32Array>),
    );
    tf.dispose([value, ...Object.values(grads)]);

    const losses: number[] = [];
    let tensorsAfterFirstStep = 0;
    for (let step = 0; step < 3; step++) {
      const value = optimizer.minimize(loss, true, variables)!;
      losses.push((await value.data())[0]);
      value.dispose();
      if (step === 0) tensorsAfterFirstStep = tf.memory().numTensors;
    }
    assert.equal(
      tf.memory().numTensors,
      tensorsAfterFirstStep,
      `${backend}: a step leaked tensors`,
    );
    const weights = await Promise.all(
      model.getWeights().map((w) => w.data() as Promise<Float32Array>),
    );
    optimizer.dispose();
    model.dispose();
    tf.dispose([x, labels]);
    return { firstGradients, losses, weights };
  });
}

// ------------------------------------------------------------------ the checks
// Each compares one backend with cpu over a list of cases; the wasm and the
// native test files run the same checks.

/** Input and filter gradients of every {@linkcode CONV_CASES} entry match cpu. */
export async function expectConvGradientsMatchCpu(t: Deno.TestContext, backend: Backend) {
  for (const c of CONV_CASES) {
    await t.step(c.name, async () => {
      const [dxCpu, dFilterCpu] = await convGradients("cpu", c);
      const [dx, dFilter] = await convGradients(backend, c);
      const dxError = relativeError(dx, dxCpu);
      const dFilterError = relativeError(dFilter, dFilterCpu);
      console.log(
        `    ${c.name}: input grad ${dxError.toExponential(1)}, ` +
          `filter grad ${dFilterError.toExponential(1)}`,
      );
      assert.ok(dxError <= GRADIENT_TOLERANCE, `input gradient relative error ${dxError}`);
      assert.ok(
        dFilterError <= GRADIENT_TOLERANCE,
        `filter gradient relative error ${dFilterError}`,
      );
    });
  }
}

/** Every {@linkcode FORWARD_CASES} entry matches cpu: tiles and slices exactly, sums to 1e-6. */
export async function expectForwardCasesMatchCpu(t: Deno.TestContext, backend: Backend) {
  for (const c of FORWARD_CASES) {
    await t.step(c.name, async () => {
      const cpu = await opValues("cpu", c.shape, c.dtype, c.op);
      const other = await opValues(backend, c.shape, c.dtype, c.op);
      assert.deepEqual(other.shape, cpu.shape);
      if (c.name.startsWith("tile") || c.name.startsWith("slice")) {
        assert.deepEqual(other.values, cpu.values); // copies, so exact
      } else {
        const error = relativeError(other.values, cpu.values);
        assert.ok(error <= 1e-6, `relative error ${error}`);
      }
    });
  }
}

/** The gradients of every {@linkcode OP_CASES} entry match cpu. */
export async function expectOpGradientsMatchCpu(t: Deno.TestContext, backend: Backend) {
  for (const c of OP_CASES) {
    await t.step(c.name, async () => {
      const cpu = await opGradients("cpu", c.shapes, c.op);
      const other = await opGradients(backend, c.shapes, c.op);
      const errors = other.map((g, i) => relativeError(g, cpu[i]));
      console.log(`    ${c.name}: ${errors.map((e) => e.toExponential(1)).join(", ")}`);
      for (const e of errors) assert.ok(e <= GRADIENT_TOLERANCE, `relative error ${e}`);
    });
  }
}

/**
 * A tiny network's ({@linkcode tinyNetwork} unless told) first gradients and its
 * weights after 3 Adam steps match cpu, every weight moved, and the loss fell.
 */
export async function expectTinyTrainingMatchesCpu(
  backend: Backend,
  network: () => tf.LayersModel = tinyNetwork,
) {
  await tf.setBackend("cpu");
  const reference = network();
  const initial = await Promise.all(
    reference.getWeights().map((w) => w.data() as Promise<Float32Array>),
  );
  const names = reference.weights.map((w) => w.name);
  reference.dispose();

  const cpu = await trainTiny("cpu", initial, network);
  const other = await trainTiny(backend, initial, network);
  const gradientErrors = other.firstGradients.map((g, i) =>
    relativeError(g, cpu.firstGradients[i])
  );
  const weightErrors = other.weights.map((w, i) => relativeError(w, cpu.weights[i]));
  console.log(
    `    losses cpu ${cpu.losses.join(", ")}\n    losses ${backend} ${other.losses.join(", ")}`,
  );
  console.log(
    `    first-step gradients: ${gradientErrors.map((e) => e.toExponential(1)).join(", ")}`,
  );
  names.forEach((name, i) =>
    console.log(`    ${name} after 3 steps: ${weightErrors[i].toExponential(1)}`)
  );
  for (const e of gradientErrors) {
    assert.ok(e <= GRADIENT_TOLERANCE, `gradient relative error ${e}`);
  }
  weightErrors.forEach((e, i) =>
    assert.ok(e <= STATE_TOLERANCE, `${names[i]} relative error ${e}`)
  );
  // Guards against a vacuous comparison: every weight, BN statistics included, moved.
  other.weights.forEach((w, i) =>
    assert.ok(relativeError(w, initial[i]) > 1e-3, `${names[i]} did not change in 3 steps`)
  );
  assert.ok(other.losses[2] < other.losses[0], `expected the loss to fall but got ${other.losses}`);
}
