/**
 * lib/torch_weights.ts: layouts and errors offline, then parity with the article's PyTorch
 * model both ways (tests/torch_parity.py under Debian's python3-torch; skipped without it).
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/init.ts";
import { architecture, buildModel, resnet18 } from "../lib/model.ts";
import { decodeSafetensors, encodeSafetensors, type NamedArray } from "../lib/io/safetensors.ts";
import {
  exportTorchSafetensors,
  importTorchSafetensors,
  loadTorchStateDict,
  toTorchStateDict,
} from "../lib/io/torch_weights.ts";

await initBackend("cpu");

const PYTHON = "/usr/bin/python3";
const PARITY_SCRIPT = new URL("./torch_parity.py", import.meta.url).pathname;
const TOLERANCE = 1e-3;
// Small for speed; `TORCH_PARITY_WIDTH=64 deno test -P tests/torch_weights_test.ts` checks the article's.
const WIDTH = Number(Deno.env.get("TORCH_PARITY_WIDTH") ?? 8);

function hasTorch(): boolean {
  try {
    return new Deno.Command(PYTHON, {
      args: ["-c", "import torch"],
      stdout: "null",
      stderr: "null",
    })
      .outputSync().success;
  } catch {
    return false;
  }
}
const torchMissing = !hasTorch();

async function python(args: string[]): Promise<string> {
  const out = await new Deno.Command(PYTHON, { args: [PARITY_SCRIPT, ...args] }).output();
  const text = new TextDecoder();
  assert.ok(out.success, `torch_parity.py ${args[0]} failed: ${text.decode(out.stderr)}`);
  return text.decode(out.stdout);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

/** Our logits for NCHW images (PyTorch's layout), fed as NHWC. */
function logitsFor(model: tf.LayersModel, nchw: NamedArray): Float32Array {
  return tf.tidy(() => {
    const x = tf.tensor4d(nchw.data as Float32Array, nchw.shape as [number, number, number, number])
      .transpose([0, 2, 3, 1]); // [n, 3, 32, 32] -> [n, 32, 32, 3]
    return (model.predict(x) as tf.Tensor).dataSync() as Float32Array;
  });
}

Deno.test("toTorchStateDict() uses PyTorch's names and OIHW / [out, in] layouts", async () => {
  const model = resnet18({ width: 2, seed: 3 });
  try {
    const state = await toTorchStateDict(model);
    assert.deepEqual([...state.keys()].slice(0, 7), [
      "conv1.weight",
      "conv1.bias",
      "bn1.weight",
      "bn1.bias",
      "bn1.running_mean",
      "bn1.running_var",
      "bn1.num_batches_tracked",
    ]);
    assert.deepEqual(state.get("layer2.0.shortcut.0.weight")?.shape, [4, 2, 1, 1]);
    assert.equal(state.has("layer2.0.shortcut.0.bias"), false);
    assert.deepEqual(state.get("layer2.0.shortcut.1.running_var")?.shape, [4]);
    assert.deepEqual(state.get("fc.weight")?.shape, [10, 16]);
    assert.deepEqual(state.get("bn1.num_batches_tracked"), {
      dtype: "I64",
      shape: [],
      data: new BigInt64Array([0n]),
    });
    // conv1.weight[o, i, y, x] == conv1/kernel[y, x, i, o]
    const kernel = model.getLayer("conv1").getWeights()[0].arraySync() as number[][][][];
    const weight = state.get("conv1.weight")!;
    assert.equal(weight.data[((1 * 3 + 2) * 3 + 0) * 3 + 1], kernel[0][1][2][1]);
    const fc = model.getLayer("fc").getWeights()[0].arraySync() as number[][];
    assert.equal(state.get("fc.weight")!.data[7 * 16 + 5], fc[5][7]);
  } finally {
    model.dispose();
  }
});

Deno.test("loadTorchStateDict() round-trips toTorchStateDict() exactly", async () => {
  const a = resnet18({ width: 2, seed: 1 });
  const b = resnet18({ width: 2, seed: 2 });
  try {
    loadTorchStateDict(b, await toTorchStateDict(a), "a");
    const wa = a.getWeights();
    b.getWeights().forEach((w, i) => assert.deepEqual(w.dataSync(), wa[i].dataSync()));
  } finally {
    a.dispose();
    b.dispose();
  }
});

Deno.test("loadTorchStateDict() lists every missing, unexpected and misshapen tensor", async () => {
  const narrow = resnet18({ width: 2 });
  const noBias = resnet18({ width: 2, convBias: false });
  const wide = resnet18({ width: 4 });
  try {
    const state = await toTorchStateDict(narrow);
    assert.throws(
      () => loadTorchStateDict(wide, state, "w2.safetensors"),
      /PyTorch state dict w2\.safetensors does not fit this model .*: \d+ problems: conv1\.weight: expected shape \[4,3,3,3\] but found \[2,3,3,3\]; conv1\.bias: expected shape \[4\] but found \[2\];/,
    );
    assert.throws(
      () => loadTorchStateDict(noBias, state, "bias.safetensors"),
      /17 problems: unexpected conv1\.bias \[2\]; unexpected layer1\.0\.conv1\.bias \[2\];/,
    );
    const renamed = new Map(state);
    renamed.set("fc.weights", renamed.get("fc.weight")!);
    renamed.delete("fc.weight");
    assert.throws(
      () => loadTorchStateDict(narrow, renamed, "x"),
      /2 problems: unexpected fc\.weights \[10,16\]; missing fc\.weight \[10,16\]$/,
    );
    const ints = new Map(state);
    ints.set("fc.bias", { dtype: "I32", shape: [10], data: new Int32Array(10) });
    assert.throws(
      () => loadTorchStateDict(narrow, ints, "y"),
      /1 problem: fc\.bias: expected dtype F32 but found I32$/,
    );
  } finally {
    narrow.dispose();
    noBias.dispose();
    wide.dispose();
  }
});

Deno.test("toTorchStateDict() and loadTorchStateDict() refuse an arch other than resnet18", async () => {
  const model = buildModel(architecture("resnet20"), { width: 2 });
  const article = resnet18({ width: 2 });
  try {
    const message =
      "Expected the article's resnet18 (the one model with a PyTorch peer to carry weights to " +
      "and from) but found a model named resnet20";
    await assert.rejects(toTorchStateDict(model), { message });
    const state = await toTorchStateDict(article);
    assert.throws(() => loadTorchStateDict(model, state, "w.safetensors"), { message });
  } finally {
    model.dispose();
    article.dispose();
  }
});

Deno.test("importTorchSafetensors() names an unreadable file", async () => {
  const model = resnet18({ width: 2 });
  try {
    await assert.rejects(
      importTorchSafetensors(model, "/nonexistent/w.safetensors"),
      /Cannot read PyTorch weights \/nonexistent\/w\.safetensors: /,
    );
  } finally {
    model.dispose();
  }
});

Deno.test({
  name:
    `importTorchSafetensors() of the PyTorch peer's state dict gives its logits (cpu and wasm, width ${WIDTH})`,
  ignore: torchMissing,
  async fn() {
    const dir = await Deno.makeTempDir();
    const model = resnet18({ width: WIDTH, seed: 9 });
    try {
      await python([
        "reference",
        String(WIDTH),
        "0",
        `${dir}/state.safetensors`,
        `${dir}/probe.safetensors`,
      ]);
      await importTorchSafetensors(model, `${dir}/state.safetensors`);
      const probe = decodeSafetensors(await Deno.readFile(`${dir}/probe.safetensors`)).tensors;
      const expected = probe.get("logits")!.data as Float32Array;
      for (const backend of ["cpu", "wasm"] as const) {
        await initBackend(backend);
        const diff = maxAbsDiff(logitsFor(model, probe.get("images")!), expected);
        console.log(
          `PyTorch -> ours (${backend}): max |logit difference| ${diff.toExponential(2)} ` +
            `(max |logit| ${Math.max(...expected.map(Math.abs)).toFixed(3)})`,
        );
        assert.ok(diff <= TOLERANCE, `${backend}: ${diff}`);
      }
    } finally {
      await initBackend("cpu");
      model.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    `exportTorchSafetensors() loads into the PyTorch peer with the same logits (width ${WIDTH})`,
  ignore: torchMissing,
  async fn() {
    const dir = await Deno.makeTempDir();
    const model = resnet18({ width: WIDTH, seed: 4 });
    try {
      // Non-trivial BatchNorm: random affine weights, running stats from training-mode passes.
      const bn = model.layers.filter((l) => l.getClassName() === "BatchNormalization");
      bn.forEach((layer, i) =>
        tf.tidy(() => {
          // getWeights() hands out the variables themselves: keep them, do not dispose.
          const [gamma, beta, mean, variance] = layer.getWeights();
          layer.setWeights([
            tf.randomUniform(gamma.shape, 0.5, 1.5, "float32", i),
            tf.randomNormal(beta.shape, 0, 0.2, "float32", i),
            mean,
            variance,
          ]);
        })
      );
      const before = model.getLayer("layer3.1.bn2").getWeights()[2].dataSync().slice();
      for (let pass = 0; pass < 2; pass++) {
        tf.tidy(() => {
          model.apply(tf.randomNormal([16, 32, 32, 3], 0.3, 1.5, "float32", pass), {
            training: true,
          });
        });
      }
      const after = model.getLayer("layer3.1.bn2").getWeights()[2].dataSync();
      assert.ok(maxAbsDiff(before, after) > 1e-3, "training-mode passes moved the running means");

      await exportTorchSafetensors(model, `${dir}/state.safetensors`, { width: String(WIDTH) });
      const images = tf.tidy(() =>
        tf.randomNormal([4, 3, 32, 32], 0, 1, "float32", 5).dataSync() as Float32Array
      );
      const nchw: NamedArray = { dtype: "F32", shape: [4, 3, 32, 32], data: images };
      const logits = logitsFor(model, nchw);
      await Deno.writeFile(
        `${dir}/probe.safetensors`,
        encodeSafetensors(
          new Map<string, NamedArray>([
            ["images", nchw],
            ["logits", { dtype: "F32", shape: [4, 10], data: logits }],
          ]),
        ),
      );
      const { maxAbsDiff: diff, maxAbsLogit } = JSON.parse(
        await python(["check", `${dir}/state.safetensors`, `${dir}/probe.safetensors`]),
      );
      console.log(
        `ours -> PyTorch: max |logit difference| ${diff.toExponential(2)} ` +
          `(max |logit| ${maxAbsLogit.toFixed(3)})`,
      );
      assert.ok(diff <= TOLERANCE, `${diff}`);
    } finally {
      model.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
