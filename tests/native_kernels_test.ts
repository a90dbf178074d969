import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/init.ts";
import { batchNormTraining } from "../lib/backends/native/batchnorm.ts";
import { addRelu } from "../lib/backends/native/relu_fusion.ts";
import { createOptimizer } from "../lib/train.ts";
import {
  checkedNative,
  nativeKernelsEnabled,
  packConvGeometry,
  RN_MOVING_AVERAGES,
} from "../lib/backends/native/kernels.ts";
import {
  type Backend,
  CONV_CASES,
  type ConvCase,
  convGradients,
  expectConvGradientsMatchCpu,
  expectForwardCasesMatchCpu,
  expectOpGradientsMatchCpu,
  expectTinyTrainingMatchesCpu,
  GRADIENT_TOLERANCE,
  onBackend,
  opGradients,
  type Pad,
  pseudoRandom,
  relativeError,
  tinyNetwork,
  tinyResidualNetwork,
} from "./support/kernel_parity.ts";

// `deno task test` builds the library first and fails if it cannot; run on
// its own on a machine without a C toolchain, this file skips, saying why.
let started: Awaited<ReturnType<typeof initBackend>> | null = null;
let unavailable = "";
try {
  started = await initBackend("native");
} catch (error) {
  unavailable = (error as Error).message;
  console.warn(`native_kernels_test: skipped, the native backend cannot start: ${unavailable}`);
}

/** A test of the native backend: ignored (and reported above) where it cannot start. */
function nativeTest(name: string, fn: (t: Deno.TestContext) => void | Promise<void>): void {
  Deno.test({ name, ignore: started === null, fn });
}

nativeTest("initBackend('native') runs the wasm backend with the native kernels on", async () => {
  assert.equal(started?.name, "native");
  assert.equal(tf.getBackend(), "wasm");
  assert.match(started?.detail ?? "", /oneDNN/);
  assert.ok(nativeKernelsEnabled());
  await initBackend("wasm");
  assert.equal(nativeKernelsEnabled(), false, "choosing wasm turns the native kernels off");
  await initBackend("native");
  assert.ok(nativeKernelsEnabled());
});

/** conv2d, and fused conv2d with bias and ReLU, forward values on one backend. */
function convForward(backend: Backend, c: ConvCase): Promise<[Float32Array, Float32Array]> {
  return onBackend(backend, async () => {
    const x = tf.tensor4d(pseudoRandom(c.x, 1), c.x);
    const filter = tf.tensor4d(pseudoRandom(c.filter, 2), c.filter);
    const bias = tf.tensor1d(pseudoRandom([c.filter[3]], 4));
    const plain = tf.conv2d(x, filter, c.strides, c.pad);
    const fused = tf.fused.conv2d({
      x,
      filter,
      strides: c.strides,
      pad: c.pad,
      bias,
      activation: "relu",
    });
    const data = await Promise.all([plain.data(), fused.data()]) as [Float32Array, Float32Array];
    tf.dispose([x, filter, bias, plain, fused]);
    return data;
  });
}

nativeTest("native Conv2D and FusedConv2D (bias, ReLU) match the cpu backend", async (t) => {
  for (const c of CONV_CASES) {
    await t.step(c.name, async () => {
      const cpu = await convForward("cpu", c);
      const native = await convForward("native", c);
      const errors = native.map((values, i) => relativeError(values, cpu[i]));
      console.log(
        `    ${c.name}: conv ${errors[0].toExponential(1)}, fused ${errors[1].toExponential(1)}`,
      );
      for (const e of errors) assert.ok(e <= GRADIENT_TOLERANCE, `relative error ${e}`);
    });
  }
});

nativeTest(
  "native conv2d input and filter gradients match the cpu backend",
  (t) => expectConvGradientsMatchCpu(t, "native"),
);

nativeTest(
  "native hands what it does not implement to the wasm kernels, which match cpu",
  async (t) => {
    const x = [2, 9, 9, 4];
    const filter = [3, 3, 4, 5];
    const cases: { name: string; op: (x: tf.Tensor4D, f: tf.Tensor4D) => tf.Tensor }[] = [
      { name: "dilated conv2d", op: (a, f) => tf.conv2d(a, f, 1, "same", "NHWC", 2) },
      {
        name: "fused conv2d with elu",
        op: (a, f) =>
          tf.fused.conv2d({ x: a, filter: f, strides: 1, pad: "valid", activation: "elu" }),
      },
    ];
    for (const c of cases) {
      await t.step(c.name, async () => {
        const run = (backend: Backend) =>
          onBackend(backend, async () => {
            const a = tf.tensor4d(pseudoRandom(x, 1), x as [number, number, number, number]);
            const f = tf.tensor4d(
              pseudoRandom(filter, 2),
              filter as [number, number, number, number],
            );
            const y = c.op(a, f);
            const values = await y.data() as Float32Array;
            tf.dispose([a, f, y]);
            return values;
          });
        const error = relativeError(await run("native"), await run("cpu"));
        assert.ok(error <= GRADIENT_TOLERANCE, `relative error ${error}`);
      });
    }
  },
);

nativeTest(
  "native Add and PadV2 give cpu's values exactly, and hand on what they do not cover",
  async (t) => {
    const cases: { name: string; shapes: number[][]; op: (...x: tf.Tensor[]) => tf.Tensor }[] = [
      { name: "add, one shape", shapes: [[3, 5, 5, 8], [3, 5, 5, 8]], op: tf.add },
      { name: "add a bias [C]", shapes: [[3, 5, 5, 8], [8]], op: tf.add },
      { name: "add a bias [1, 1, 1, C], first", shapes: [[1, 1, 1, 8], [3, 5, 5, 8]], op: tf.add },
      { name: "add, other broadcast (wasm)", shapes: [[4, 1, 3], [1, 5, 3]], op: tf.add },
      {
        name: "add int32 (wasm)",
        shapes: [[6]],
        op: (x) =>
          tf.add(tf.cast(tf.mul(x, 100), "int32"), tf.tensor1d([1, 2, 3, 4, 5, 6], "int32")),
      },
      {
        name: "pad height and width",
        shapes: [[2, 5, 6, 3]],
        op: (x) => tf.pad(x, [[0, 0], [1, 2], [3, 0], [0, 0]]),
      },
      {
        name: "pad with a constant",
        shapes: [[2, 4, 4, 3]],
        op: (x) => tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], 1.5),
      },
      {
        name: "pad channels (wasm)",
        shapes: [[2, 4, 4, 3]],
        op: (x) => tf.pad(x, [[0, 0], [1, 1], [0, 0], [0, 2]]),
      },
    ];
    for (const c of cases) {
      await t.step(c.name, async () => {
        const run = (backend: Backend) =>
          onBackend(backend, async () => {
            const inputs = c.shapes.map((shape, i) =>
              tf.tensor(pseudoRandom(shape, 70 + i), shape)
            );
            const y = tf.tidy(() => c.op(...inputs));
            const result = { shape: y.shape, values: Array.from(await y.data()) };
            tf.dispose([...inputs, y]);
            return result;
          });
        assert.deepEqual(await run("native"), await run("cpu"));
      });
    }
  },
);

nativeTest(
  "native Sum, Mean and Slice (native or handed on) match cpu",
  (t) => expectForwardCasesMatchCpu(t, "native"),
);

nativeTest(
  "native matches cpu on the gradients of the other ops a ResNet step uses",
  (t) => expectOpGradientsMatchCpu(t, "native"),
);

nativeTest(
  "a conv/BN/relu/pad/conv/mean/dense training step on native matches cpu",
  () => expectTinyTrainingMatchesCpu("native"),
);

nativeTest(
  "a residual block's training step on native (ReLUs fused into BN and add) matches cpu",
  () => expectTinyTrainingMatchesCpu("native", tinyResidualNetwork),
);

nativeTest(
  "a native training step of a residual block runs the fused ReLUs, not the ReLU kernels",
  async () => {
    await initBackend("native");
    const model = tinyResidualNetwork();
    const x = tf.tensor4d(pseudoRandom([6, 8, 8, 3], 7), [6, 8, 8, 3]);
    const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const profile = await tf.profile(() => {
      const { value, grads } = tf.variableGrads(
        () => tf.sum(model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
        variables,
      );
      tf.dispose([value, ...Object.values(grads)]);
    });
    const kernels = profile.kernels.map((k) => k.name);
    const count = (name: string) => kernels.filter((k) => k === name).length;
    assert.equal(count("Relu"), 0, `kernels: ${kernels.join(", ")}`);
    assert.equal(count("RnAddRelu"), 1);
    // The add's ReLU gradient; the BN's is folded into RnBatchNormBackward.
    assert.equal(count("RnReluGrad"), 1);
    assert.equal(count("RnBatchNormBackward"), 2);
    tf.dispose(x);
    model.dispose();
  },
);

nativeTest("a batch norm whose output goes to a ReLU and elsewhere trains unfused", async () => {
  // Its weights start as ones and zeros on every backend: nothing random to share.
  const network = () => {
    const input = tf.input({ shape: [4, 4, 3] });
    const bn = tf.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-5 });
    const normalised = bn.apply(input) as tf.SymbolicTensor;
    const rectified = tf.layers.reLU().apply(normalised) as tf.SymbolicTensor;
    const sum = tf.layers.add({}).apply([rectified, normalised]) as tf.SymbolicTensor;
    return tf.model({ inputs: input, outputs: sum });
  };
  const run = (backend: Backend) =>
    onBackend(backend, async () => {
      const model = network();
      const x = tf.tensor4d(pseudoRandom([2, 4, 4, 3], 3), [2, 4, 4, 3]);
      const y = model.apply(x, { training: true }) as tf.Tensor;
      const values = await y.data() as Float32Array;
      tf.dispose([x, y]);
      model.dispose();
      return values;
    });
  const native = await run("native");
  const cpu = await run("cpu");
  assert.ok(native.some((v) => v < 0), "the sum keeps the unrectified half's negatives");
  const error = relativeError(native, cpu);
  assert.ok(error <= GRADIENT_TOLERANCE, `relative error ${error}`);
});

nativeTest("addRelu() matches relu(add) on cpu, forward and gradients", async () => {
  const shapes = [[4, 6, 6, 8], [4, 6, 6, 8]];
  const op = (backend: Backend) => (a: tf.Tensor, b: tf.Tensor) =>
    backend === "native" ? addRelu(a, b) : tf.relu(tf.add(a, b));
  const forward = (backend: Backend) =>
    onBackend(backend, async () => {
      const [a, b] = shapes.map((shape, i) => tf.tensor(pseudoRandom(shape, 10 + i), shape));
      const y = tf.tidy(() => op(backend)(a, b));
      const values = await y.data() as Float32Array;
      tf.dispose([a, b, y]);
      return values;
    });
  const forwardError = relativeError(await forward("native"), await forward("cpu"));
  assert.ok(forwardError <= GRADIENT_TOLERANCE, `forward relative error ${forwardError}`);
  const cpu = await opGradients("cpu", shapes, op("cpu"));
  const native = await opGradients("native", shapes, op("native"));
  native.forEach((g, i) => {
    const error = relativeError(g, cpu[i]);
    assert.ok(error <= GRADIENT_TOLERANCE, `gradient ${i} relative error ${error}`);
  });
});

nativeTest("addRelu() keeps ReLU's NaN and zero conventions, and needs native", async () => {
  const run = (backend: Backend) =>
    onBackend(backend, async () => {
      const a = tf.tensor1d([NaN, -1, -0, 0, 2]);
      const b = tf.tensor1d([0, 0.5, 0, -0, 1]);
      const dy = tf.tensor1d([1, 2, 3, 4, 5]);
      const op = (x: tf.Tensor, y: tf.Tensor) =>
        backend === "native" ? addRelu(x, y) : tf.relu(tf.add(x, y));
      const out = tf.tidy(() => op(a, b));
      const [da, db] = tf.grads(op)([a, b], dy);
      const values = await Promise.all([out, da, db].map(async (t) => Array.from(await t.data())));
      tf.dispose([a, b, dy, out, da, db]);
      return values;
    });
  const native = await run("native");
  assert.deepEqual(native, await run("cpu"));
  assert.deepEqual(native[0], [NaN, 0, 0, 0, 3]);
  await initBackend("wasm");
  const x = tf.zeros([3]);
  assert.throws(() => addRelu(x, x), {
    message: /addRelu\(\) runs only while the native backend is active/,
  });
  x.dispose();
  await initBackend("native");
});

/** Batch-norm output, statistics and the gradients of sum(y * w) on one backend (relu(y) with `relu`). */
function batchNormResults(
  backend: Backend,
  shape: number[],
  relu = false,
): Promise<Float32Array[]> {
  return onBackend(backend, async () => {
    const channels = shape[shape.length - 1];
    // An offset and a spread per channel, as activations have.
    const x = tf.tidy(() =>
      tf.add(tf.mul(tf.tensor(pseudoRandom(shape, 21), shape), 3), tf.linspace(-2, 5, channels))
    );
    const gamma = tf.tensor1d(pseudoRandom([channels], 22));
    const beta = tf.tensor1d(pseudoRandom([channels], 23));
    const w = tf.tensor(pseudoRandom(shape, 24), shape);
    const forward = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
      if (backend === "native") return batchNormTraining(a, g, b, 1e-5, { relu });
      const { mean, variance } = tf.moments(a, [0, 1, 2]);
      const normalise = () => tf.batchNorm(a, mean, variance, b, g, 1e-5);
      return {
        y: relu ? tf.tidy(() => tf.relu(normalise())) : normalise(),
        mean: mean as tf.Tensor1D,
        variance: variance as tf.Tensor1D,
      };
    };
    const { y, mean, variance } = forward(x, gamma, beta);
    const grads = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(forward(a, g, b).y, w))
    )([x, gamma, beta]);
    const results = await Promise.all(
      [y, mean, variance, ...grads].map((t) => t.data() as Promise<Float32Array>),
    );
    tf.dispose([x, gamma, beta, w, y, mean, variance, ...grads]);
    return results;
  });
}

nativeTest(
  "batchNormTraining() (fused native kernels) matches moments + batchNorm on cpu",
  async () => {
    const shape = [4, 6, 6, 16];
    const cpu = await batchNormResults("cpu", shape);
    const native = await batchNormResults("native", shape);
    const names = ["y", "mean", "variance", "dx", "dgamma", "dbeta"];
    const errors = native.map((values, i) => relativeError(values, cpu[i]));
    console.log(`    ${names.map((n, i) => `${n} ${errors[i].toExponential(1)}`).join(", ")}`);
    errors.forEach((e, i) => assert.ok(e <= GRADIENT_TOLERANCE, `${names[i]} relative error ${e}`));
  },
);

nativeTest(
  "batchNormTraining({ relu: true }) matches relu(moments + batchNorm) on cpu",
  async () => {
    const shape = [4, 6, 6, 16];
    const cpu = await batchNormResults("cpu", shape, true);
    const native = await batchNormResults("native", shape, true);
    const names = ["y", "mean", "variance", "dx", "dgamma", "dbeta"];
    const errors = native.map((values, i) => relativeError(values, cpu[i]));
    console.log(`    ${names.map((n, i) => `${n} ${errors[i].toExponential(1)}`).join(", ")}`);
    errors.forEach((e, i) => assert.ok(e <= GRADIENT_TOLERANCE, `${names[i]} relative error ${e}`));
    // The ReLU really cut: zeros in the output, and a gradient that differs from the plain one.
    assert.ok(native[0].some((v) => v === 0) && native[0].some((v) => v > 0));
    const plain = await batchNormResults("native", shape);
    assert.ok(relativeError(native[3], plain[3]) > 1e-2, "dx is the rectified op's");
  },
);

nativeTest(
  "batchNormTraining() refuses to run without the native kernels, and bad shapes",
  async () => {
    await initBackend("wasm");
    const x = tf.zeros([2, 3, 3, 4]);
    const v = tf.ones([4]);
    assert.throws(() => batchNormTraining(x, v, v, 1e-5), {
      message: /batchNormTraining\(\) runs only while the native backend is active/,
    });
    await initBackend("native");
    const wrong = tf.ones([5]);
    assert.throws(() => batchNormTraining(x, wrong, v, 1e-5), {
      message:
        /RnBatchNormForward: expected gamma to be float32 with 4 values .* but found float32 \[5\]/,
    });
    tf.dispose([x, v, wrong]);
  },
);

nativeTest("native ReLU and its gradient keep tfjs's NaN and zero conventions", async () => {
  const run = (backend: Backend) =>
    onBackend(backend, async () => {
      const x = tf.tensor1d([NaN, -1, -0, 0, 2]);
      const dy = tf.tensor1d([1, 2, 3, 4, 5]);
      const y = tf.relu(x);
      const dx = tf.grad((a: tf.Tensor) => tf.relu(a))(x, dy);
      const values = [Array.from(await y.data()), Array.from(await dx.data())];
      tf.dispose([x, dy, y, dx]);
      return values;
    });
  const native = await run("native");
  assert.deepEqual(native, await run("cpu"));
  assert.deepEqual(native, [[NaN, 0, 0, 0, 2], [NaN, 0, 0, 0, 5]]);
});

nativeTest("RnMovingAverages equals the stock layer's update bit for bit", async () => {
  const decay = 1 - 0.9;
  const [moving, batch] = [pseudoRandom([2, 37], 60), pseudoRandom([2, 37], 61)];
  const stock = (m: Float32Array, b: Float32Array) =>
    tf.tidy(() => {
      const current = tf.tensor1d(m);
      return tf.sub(current, tf.mul(tf.sub(current, tf.tensor1d(b)), decay));
    });
  const cpu = await onBackend("cpu", async () => {
    const out = [0, 1].map((i) =>
      stock(moving.subarray(37 * i, 37 * (i + 1)), batch.subarray(37 * i, 37 * (i + 1)))
    );
    const values = await Promise.all(out.map((t) => t.data()));
    tf.dispose(out);
    return values;
  });
  const native = await onBackend("native", async () => {
    const inputs = [
      moving.subarray(0, 37),
      moving.subarray(37),
      batch.subarray(0, 37),
      batch.subarray(37),
    ]
      .map((v) => tf.tensor1d(v));
    const out = tf.engine().runKernel(RN_MOVING_AVERAGES, {
      movingMean: inputs[0],
      movingVariance: inputs[1],
      mean: inputs[2],
      variance: inputs[3],
    }, { decay }) as tf.Tensor[];
    const values = await Promise.all(out.map((t) => t.data()));
    tf.dispose([...inputs, ...out]);
    return values;
  });
  assert.deepEqual(native, cpu);
  assert.throws(
    () =>
      tf.tidy(() =>
        tf.engine().runKernel(RN_MOVING_AVERAGES, {
          movingMean: tf.zeros([3]),
          movingVariance: tf.zeros([3]),
          mean: tf.zeros([4]),
          variance: tf.zeros([3]),
        }, { decay })
      ),
    /RnMovingAverages: expected mean to be float32 with 3 values \(one per channel\) but found float32 \[4\]/,
  );
});

nativeTest("the tiny network in inference (moving statistics) on native matches cpu", async () => {
  await tf.setBackend("cpu");
  const reference = tinyNetwork();
  // Non-trivial moving statistics, so inference differs from the initial identity.
  const weights = reference.getWeights().map((w, i) =>
    tf.tidy(() => tf.add(tf.abs(tf.tensor(pseudoRandom(w.shape, 30 + i), w.shape)), 0.1))
  );
  const values = await Promise.all(weights.map((w) => w.data() as Promise<Float32Array>));
  tf.dispose(weights);
  reference.dispose();
  const predict = (backend: Backend) =>
    onBackend(backend, async () => {
      const model = tinyNetwork();
      const tensors = values.map((v, i) => tf.tensor(v, model.getWeights()[i].shape));
      model.setWeights(tensors);
      const x = tf.tensor4d(pseudoRandom([6, 8, 8, 3], 7), [6, 8, 8, 3]);
      const y = model.predict(x) as tf.Tensor;
      const out = await y.data() as Float32Array;
      tf.dispose([...tensors, x, y]);
      model.dispose();
      return out;
    });
  const error = relativeError(await predict("native"), await predict("cpu"));
  assert.ok(error <= GRADIENT_TOLERANCE, `relative error ${error}`);
});

/** Three Adam steps of createOptimizer() on two variables; their values and the optimiser state. */
function adamSteps(backend: Backend): Promise<Float32Array[]> {
  return onBackend(backend, async () => {
    // The last one is large enough for the kernel to split it over threads.
    const shapes = [[3, 3, 4, 5], [5], [3, 3, 64, 128]];
    const variables = shapes.map((shape, i) =>
      tf.tidy(() =>
        tf.variable(tf.tensor(pseudoRandom(shape, 40 + i), shape), true, `adam_${backend}_${i}`)
      )
    );
    const optimizer = createOptimizer({ learningRate: 0.01, lrSchedule: "onecycle" }, 5);
    for (let step = 0; step < 3; step++) {
      const gradients = variables.map((v, i) => ({
        name: v.name,
        tensor: tf.tensor(pseudoRandom(shapes[i], 50 + 10 * step + i), shapes[i]),
      }));
      optimizer.applyGradients(gradients);
      tf.dispose(gradients.map((g) => g.tensor));
    }
    const state = await optimizer.getWeights();
    const values = await Promise.all(
      [...variables, ...state.map((s) => s.tensor)].map((t) => t.data() as Promise<Float32Array>),
    );
    assert.equal(state.length, 1 + 2 * variables.length, "iterations, then m and v per variable");
    tf.dispose([...variables, ...state.map((s) => s.tensor)]);
    optimizer.dispose();
    return values;
  });
}

nativeTest(
  "Adam's update as one native kernel per variable equals tfjs's Adam on cpu bit for bit",
  async () => {
    const cpu = await adamSteps("cpu");
    const native = await adamSteps("native");
    const errors = native.map((values, i) => relativeError(values, cpu[i]));
    console.log(
      `    values, iterations, m and v: ${errors.map((e) => e.toExponential(1)).join(", ")}`,
    );
    // The same float32 operations in the same order: bit for bit.
    native.forEach((values, i) => assert.deepEqual(values, cpu[i]));
    // The step really moved the variables.
    assert.ok(relativeError(native[0], pseudoRandom([3, 3, 4, 5], 40)) > 1e-3);
  },
);

// ------------------------------------------------ the binding's size checks

/**
 * A conv_t (native/resnet_native.h) from its fields in order: n, h, w, c, kh, kw, cout, sh, sw,
 * pt, pl, pb, pr, ho, wo.
 */
function geometry(fields: number[]): Int32Array {
  return Int32Array.from(fields);
}

/** 1 image of 4x4x2, a 3x3 filter to 4 channels, stride 1, padding 1: output 4x4x4. */
const SAME_3X3 = [1, 4, 4, 2, 3, 3, 4, 1, 1, 1, 1, 1, 1, 4, 4];

// These fail before any C runs, so they hold with or without the library.
Deno.test("checkedNative refuses a length that overruns its buffers, and the process goes on", () => {
  // The length that crashed the process (SIGSEGV) before the binding checked it.
  assert.throws(
    () => checkedNative.relu(new Float32Array(4), new Float32Array(4), 2 ** 30),
    {
      name: "RangeError",
      message:
        "native rn_relu: expected x to hold n = 1073741824 floats (4294967296 bytes) but found 16 bytes",
    },
  );
  const four = () => new Float32Array(4);
  assert.throws(() => checkedNative.reluGrad(four(), four(), new Float32Array(3), 4), {
    message: "native rn_relu_grad: expected dx to hold n = 4 floats (16 bytes) but found 12 bytes",
  });
  assert.throws(() => checkedNative.add(four(), four(), four(), 8, 0), {
    message: "native rn_add: expected a to hold n = 8 floats (32 bytes) but found 16 bytes",
  });
  assert.throws(() => checkedNative.add(four(), new Float32Array(2), four(), 4, 3), {
    message: "native rn_add: expected c = 3 to divide n = 4",
  });
  assert.throws(() => checkedNative.sumMiddle(four(), four(), 1, 4, -1, 1), {
    message:
      "native rn_sum_middle: expected inner to be an integer in [0, 2147483647] but found -1",
  });
  assert.throws(() => checkedNative.moments(four(), four(), new Float32Array(1), 1, 4), {
    message:
      "native rn_moments: expected variance to hold c = 4 floats (16 bytes) but found 4 bytes",
  });
  assert.throws(
    () =>
      checkedNative.padHw(four(), four(), { n: 1, h: 2, w: 2, c: 1 }, {
        top: 1,
        bottom: 0,
        left: 0,
        right: 0,
      }, 0),
    {
      message: "native rn_pad_hw: expected y to hold n*(h+top+bottom)*(w+left+right)*c = 6 " +
        "floats (24 bytes) but found 16 bytes",
    },
  );
  // A view of another element size: its length is right, its bytes are not.
  assert.throws(
    () => checkedNative.relu(new Uint8Array(4) as unknown as Float32Array, four(), 4),
    { message: "native rn_relu: expected x to hold n = 4 floats (16 bytes) but found 4 bytes" },
  );
  const vectors = () => ({
    value: four(),
    m: four(),
    v: four(),
    gradient: four(),
    valueOut: four(),
    mOut: four(),
    vOut: four(),
  });
  const adam = { learningRate: 0.001, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 };
  assert.throws(
    () =>
      checkedNative.adam(vectors(), { accBeta1: new Float32Array(0), accBeta2: four() }, 4, adam),
    {
      message: "native rn_adam: expected accBeta1 to hold 1 = 1 floats (4 bytes) but found 0 bytes",
    },
  );
});

Deno.test("checkedNative checks a convolution's geometry and every buffer against it", () => {
  const x = new Float32Array(1 * 4 * 4 * 2);
  const filter = new Float32Array(3 * 3 * 2 * 4);
  const y = new Float32Array(1 * 4 * 4 * 4);
  const bias = new Float32Array(4);
  const withFields = (fields: Record<number, number>) => SAME_3X3.map((v, j) => fields[j] ?? v);
  const withField = (i: number, value: number) => withFields({ [i]: value });
  const cases: [Int32Array, Float32Array | null, string][] = [
    [geometry(withField(0, 1000)), bias, "expected x to hold n*h*w*c = 32000 floats"],
    [geometry(SAME_3X3), new Float32Array(3), "expected bias to hold cout = 4 floats"],
    [geometry(withField(6, 8)), bias, "expected filter to hold kh*kw*c*cout = 144 floats"],
    [
      geometry(withField(13, 8)),
      bias,
      "expected an output of 4x4 from the 4x4 input, kernel 3x3, strides 1x1 and padding top 1, " +
      "bottom 1, left 1, right 1 but found 8x4",
    ],
    [
      geometry(withFields({ 9: 0, 11: 5, 13: 7 })),
      bias,
      "expected the last output window to start inside",
    ],
    [geometry(withField(9, 3)), bias, "expected padding below the kernel size 3x3 but found top 3"],
    [
      geometry(withField(7, 0)),
      bias,
      "expected sh to be an integer in [1, 2147483647] but found 0",
    ],
    [geometry(SAME_3X3.slice(0, 14)), bias, "expected a geometry of 15 int32 fields"],
  ];
  for (const [g, b, message] of cases) {
    assert.throws(() => checkedNative.conv2d(x, filter, b, y, g, 0), (error: Error) => {
      assert.ok(error instanceof RangeError, String(error));
      assert.ok(error.message.startsWith("native rn_dnnl_conv2d: "), error.message);
      assert.ok(error.message.includes(message), `${error.message} lacks ${message}`);
      return true;
    });
  }
  // The gradients name their own buffers: dy is the output-sized one.
  assert.throws(
    () => checkedNative.conv2dBackpropInput(new Float32Array(3), filter, x, geometry(SAME_3X3)),
    {
      message:
        "native rn_dnnl_conv2d_backprop_input: expected dy to hold n*ho*wo*cout = 64 floats " +
        "(256 bytes) but found 12 bytes",
    },
  );
  assert.throws(
    () => checkedNative.conv2dBackpropFilter(x, y, new Float32Array(1), geometry(SAME_3X3)),
    {
      message:
        "native rn_dnnl_conv2d_backprop_filter: expected dfilter to hold kh*kw*c*cout = 72 " +
        "floats (288 bytes) but found 4 bytes",
    },
  );
  assert.throws(
    () =>
      checkedNative.gemmConv2dBackpropFilter(new Float32Array(2), y, filter, geometry(SAME_3X3)),
    {
      message: "native rn_gemm_conv2d_backprop_filter: expected x to hold n*h*w*c = 32 floats " +
        "(128 bytes) but found 8 bytes",
    },
  );
});

Deno.test("checkedNative.sgemmGflops() checks its sizes and library before C runs", () => {
  assert.throws(() => checkedNative.sgemmGflops(64, 0, 64, 0, 3), {
    name: "RangeError",
    message: "native rn_sgemm_gflops: expected n to be an integer in [1, 2147483647] but found 0",
  });
  assert.throws(() => checkedNative.sgemmGflops(64, 64, 64.5, 1, 3), {
    message:
      "native rn_sgemm_gflops: expected k to be an integer in [1, 2147483647] but found 64.5",
  });
  assert.throws(() => checkedNative.sgemmGflops(64, 64, 64, 2, 3), {
    message:
      "native rn_sgemm_gflops: expected library to be 0 (OpenBLAS) or 1 (oneDNN) but found 2",
  });
});

nativeTest("checkedNative.sgemmGflops() measures both libraries' SGEMM", () => {
  for (const library of [0, 1]) {
    const gflops = checkedNative.sgemmGflops(96, 80, 72, library, 2);
    assert.ok(Number.isFinite(gflops) && gflops > 0, `library ${library}: ${gflops} GFLOP/s`);
  }
});

nativeTest(
  "both native filter gradients, oneDNN's and im2col + SGEMM, match the cpu backend",
  async (t) => {
    for (const c of CONV_CASES) {
      const info = tf.backend_util.computeConv2DInfo(c.x, c.filter, c.strides, 1, c.pad);
      const g = packConvGeometry(info);
      if (g === null) continue; // padding as wide as the kernel: the wasm kernels take it
      await t.step(c.name, async () => {
        const [, dFilterCpu] = await convGradients("cpu", c);
        const x = pseudoRandom(c.x, 1);
        const dy = pseudoRandom(info.outShape, 3);
        const errors = [checkedNative.conv2dBackpropFilter, checkedNative.gemmConv2dBackpropFilter]
          .map((run) => {
            const dFilter = new Float32Array(dFilterCpu.length);
            assert.equal(run(x, dy, dFilter, g), 0);
            return relativeError(dFilter, dFilterCpu);
          });
        console.log(
          `    ${c.name}: oneDNN ${errors[0].toExponential(1)}, ` +
            `GEMM ${errors[1].toExponential(1)}`,
        );
        for (const e of errors) assert.ok(e <= GRADIENT_TOLERANCE, `relative error ${e}`);
      });
    }
  },
);

nativeTest("checkedNative passes consistent calls through to the library", () => {
  const y = new Float32Array(4);
  checkedNative.relu(Float32Array.of(-1, 2, NaN, -0), y, 4);
  assert.deepEqual([...y], [0, 2, NaN, 0]);
  // A 3x3 all-ones filter over ones, padding 1: each output counts its in-bounds taps times c.
  const out = new Float32Array(1 * 4 * 4 * 4);
  const status = checkedNative.conv2d(
    new Float32Array(32).fill(1),
    new Float32Array(72).fill(1),
    null,
    out,
    geometry(SAME_3X3),
    0,
  );
  assert.equal(status, 0);
  assert.deepEqual([...out.slice(0, 4)], [8, 8, 8, 8], "corner: 4 taps x 2 channels");
  assert.deepEqual([...out.slice(5 * 4, 5 * 4 + 4)], [18, 18, 18, 18], "inside: 9 taps x 2");
});

nativeTest(
  "a conv2d with padding as wide as its kernel runs on the wasm kernels and matches cpu",
  async () => {
    const pad: Pad = [[0, 0], [3, 3], [3, 3], [0, 0]];
    const run = (backend: Backend) =>
      onBackend(backend, async () => {
        const x = tf.tensor4d(pseudoRandom([1, 5, 5, 2], 7), [1, 5, 5, 2]);
        const filter = tf.tensor4d(pseudoRandom([3, 3, 2, 4], 8), [3, 3, 2, 4]);
        const y = tf.conv2d(x, filter, 1, pad);
        const data = await y.data() as Float32Array;
        tf.dispose([x, filter, y]);
        return data;
      });
    const cpu = await run("cpu");
    const native = await run("native");
    assert.ok(relativeError(native, cpu) <= GRADIENT_TOLERANCE);
  },
);

nativeTest("a program that used the native kernels ends on its own without crashing", async () => {
  // Deno closes FFI libraries at a natural exit; the library is linked with
  // -z nodelete so OpenMP's worker threads never outlive their code.
  const script = `
    import * as tf from "@tensorflow/tfjs";
    import { initBackend } from "./lib/backends/init.ts";
    await initBackend("native");
    const y = tf.conv2d(tf.ones([4, 8, 8, 3]), tf.ones([3, 3, 3, 4]), 1, "same");
    console.log((await y.data())[0]);
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", script],
    cwd: new URL("..", import.meta.url),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `exit code ${out.code}, signal ${out.signal}; stderr: ${stderr}`);
  assert.equal(new TextDecoder().decode(out.stdout).trim(), "12");
});
