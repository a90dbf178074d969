/**
 * WebGPU parity with the cpu backend (the numeric reference): forward outputs, the gradient of
 * every weight, a few Adam steps, and the evaluation. Runs wherever Deno finds a WebGPU adapter;
 * CI installs Mesa's software Vulkan (lavapipe) so that it always runs there, slowly.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/init.ts";
import { makeBatch } from "../lib/data.ts";
import { resnet18 } from "../lib/model.ts";
import { createOptimizer, crossEntropy, evaluate, train, trainStep } from "../lib/train.ts";
import { makeConfig } from "../lib/train/config.ts";
import { syntheticSplit } from "./support/synthetic.ts";

const adapter = await navigator.gpu?.requestAdapter().catch(() => null) ?? null;
const WIDTH = 4;
const SEED = 3;
const split = syntheticSplit(20, 5);

/** Relative error as the wasm kernel tests measure it: max|a - b| / max|b|. */
function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0, scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / Math.max(scale, 1e-12);
}

/** Conv biases followed by BatchNorm: their true gradient is 0. */
function isBiasBeforeBatchNorm(name: string): boolean {
  return /conv\d\/bias$/.test(name);
}

interface Run {
  logits: Float32Array;
  gradients: Float32Array[];
  names: string[];
  allNames: string[];
  weightsAfterSteps: Float32Array[];
  predictions: number[][];
}

/** Everything we compare, computed on the active backend from the same weights and batches. */
async function runOnActiveBackend(
  initial: Float32Array[] | null,
  convBias: boolean,
): Promise<[Run, Float32Array[]]> {
  const model = resnet18({ width: WIDTH, seed: SEED, convBias });
  if (initial !== null) {
    const values = initial.map((v, i) => tf.tensor(v, model.weights[i].shape as number[]));
    model.setWeights(values);
    tf.dispose(values);
  }
  const start = await Promise.all(
    model.weights.map((w) => w.read().data() as Promise<Float32Array>),
  );
  const { x, y } = makeBatch(split, [0, 1, 2, 3, 4, 5, 6, 7], { augment: false });
  const logitsTensor = model.apply(x, { training: false }) as tf.Tensor;
  const logits = await logitsTensor.data() as Float32Array;
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const { grads } = tf.variableGrads(
    () => crossEntropy(model.apply(x, { training: true }) as tf.Tensor2D, y),
    variables,
  );
  const gradients = await Promise.all(
    variables.map((v) => grads[v.name].data() as Promise<Float32Array>),
  );
  tf.dispose([logitsTensor, ...Object.values(grads)]);
  // Back to the starting weights (the gradient pass updated BatchNorm's running statistics).
  const reset = start.map((v, i) => tf.tensor(v, model.weights[i].shape as number[]));
  model.setWeights(reset);
  tf.dispose(reset);
  const optimizer = createOptimizer({ learningRate: 0.01 });
  for (let step = 0; step < 3; step++) await trainStep(model, optimizer, x, y);
  const weightsAfterSteps = await Promise.all(
    model.weights.map((w) => w.read().data() as Promise<Float32Array>),
  );
  const evaluation = await evaluate(model, split, { batchSize: 8 });
  tf.dispose([x, y]);
  optimizer.dispose();
  const names = model.trainableWeights.map((w) => w.originalName);
  const allNames = model.weights.map((w) => w.originalName);
  model.dispose();
  return [
    { logits, gradients, names, allNames, weightsAfterSteps, predictions: evaluation.confusion },
    start,
  ];
}

Deno.test({
  name: "webgpu backend matches the cpu backend: forward, every gradient, 3 Adam steps, evaluation",
  ignore: adapter === null,
  sanitizeResources: false,
  async fn() {
    // The article's model (conv biases) for forward and gradients; the same model without the
    // conv biases for the Adam steps: a bias ahead of BatchNorm has a true gradient of 0, so
    // Adam, which rescales any gradient to a step of about lr, moves it by rounding noise on
    // each backend differently, and BatchNorm's running mean records that difference.
    await initBackend("cpu");
    const [cpu, initial] = await runOnActiveBackend(null, true);
    const [cpuNoBias, initialNoBias] = await runOnActiveBackend(null, false);
    const info = await initBackend("webgpu");
    console.log(`webgpu: ${info.detail}`);
    const [gpu] = await runOnActiveBackend(initial, true);
    const [gpuNoBias] = await runOnActiveBackend(initialNoBias, false);

    const forward = relativeError(gpu.logits, cpu.logits);
    const gradientErrors = gpu.gradients.map((g, i) => relativeError(g, cpu.gradients[i]));
    const stepErrors = gpuNoBias.weightsAfterSteps.map((w, i) =>
      relativeError(w, cpuNoBias.weightsAfterSteps[i])
    );
    const worst = (errors: number[], names: string[]) => {
      const i = errors.indexOf(Math.max(...errors));
      return `${errors[i].toExponential(2)} (${names[i]})`;
    };
    console.log(`forward logits: ${forward.toExponential(2)}`);
    const compared = gpu.names.map((name, i) =>
      isBiasBeforeBatchNorm(name) ? 0 : gradientErrors[i]
    );
    console.log(
      `gradients (conv biases ahead of BatchNorm aside), worst: ${worst(compared, gpu.names)}`,
    );
    console.log(`weights after 3 Adam steps, worst: ${worst(stepErrors, gpuNoBias.allNames)}`);
    assert.ok(forward <= 1e-4, `forward ${forward}`);
    // Conv biases ahead of BatchNorm have a true gradient of 0 (BN subtracts the mean), so both
    // backends return rounding noise there; compare them by absolute size instead.
    gpu.names.forEach((name, i) => {
      if (isBiasBeforeBatchNorm(name)) {
        assert.ok(Math.max(...gpu.gradients[i].map(Math.abs)) < 1e-4, `${name} is not ~0`);
      } else {
        assert.ok(gradientErrors[i] <= 1e-3, `gradient of ${name}: ${gradientErrors[i]}`);
      }
    });
    stepErrors.forEach((e, i) =>
      assert.ok(e <= 1e-3, `${gpuNoBias.allNames[i]} after 3 steps: ${e}`)
    );
    assert.deepEqual(gpuNoBias.predictions, cpuNoBias.predictions);
    await initBackend("cpu");
  },
});

Deno.test({
  name: "webgpu backend leaks no tensors or GPU memory across epochs",
  ignore: adapter === null,
  sanitizeResources: false,
  async fn() {
    await initBackend("webgpu");
    const seen: { tensors: number; bytes: number }[] = [];
    const result = await train({
      config: makeConfig({ width: WIDTH, batchSize: 10, epochs: 3, backend: "webgpu" }),
      data: { train: split, test: split },
      callbacks: {
        onEpochEnd: () => {
          const memory = tf.memory() as tf.MemoryInfo & { numBytesInGPU?: number };
          seen.push({ tensors: memory.numTensors, bytes: memory.numBytesInGPU ?? memory.numBytes });
        },
      },
    });
    result.model.dispose();
    console.log(`per epoch: ${JSON.stringify(seen)}`);
    assert.equal(seen[1].tensors, seen[0].tensors);
    assert.equal(seen[2].tensors, seen[0].tensors);
    assert.equal(seen[2].bytes, seen[1].bytes);
    await initBackend("cpu");
  },
});
