import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs";
import {
  type AdapterProbe,
  type BackendName,
  describeAdapter,
  initBackend,
  probeWebgpuAdapter,
} from "../lib/backends/init.ts";
import { activeAcceleration, layerPrototype } from "../lib/backends/acceleration.ts";
import { nativeKernelsEnabled } from "../lib/backends/native/kernels.ts";
import { nativeLoads } from "./support/native.ts";
import { defaultWasmThreads } from "../lib/backends/wasm/threads.ts";

/** This checkout's node_modules, the only folder the wasm backend needs to read. */
const NODE_MODULES = (() => {
  const entry = fileURLToPath(import.meta.resolve("@tensorflow/tfjs-backend-wasm"));
  return entry.slice(0, entry.indexOf("node_modules") + "node_modules".length);
})();

/** What `auto` must pick here: webgpu for a hardware adapter, as the library probes it. */
async function hardwareAdapter(): Promise<AdapterProbe | null> {
  const probe = await probeWebgpuAdapter().catch(() => null);
  return probe === null || probe.isFallback ? null : probe;
}

async function squares(): Promise<number[]> {
  const x = tf.tensor1d([1, 2, 3]);
  const y = tf.square(x);
  const values = Array.from(await y.data());
  tf.dispose([x, y]);
  return values;
}

Deno.test("initBackend() rejects an unknown name, listing the valid ones", async () => {
  await assert.rejects(
    () => initBackend("cuda" as BackendName),
    {
      name: "RangeError",
      message: "Expected backend to be one of cpu, wasm, native, webgpu, auto but found cuda",
    },
  );
});

// Runs before any test starts the wasm backend: once started, it needs no permission.
Deno.test({
  name: "initBackend('wasm') without read permission names the file and the flag",
  permissions: { read: false },
  async fn() {
    await assert.rejects(() => initBackend("wasm"), {
      message:
        /needs read access to .*tfjs-backend-wasm(-threaded)?-simd\.wasm but it was denied; run Deno with --allow-read/,
    });
  },
});

// Runs before any test opens the native library: once open, it needs no permission.
Deno.test({
  name: "initBackend('native') without FFI permission says which flag it needs",
  permissions: { read: true, ffi: false },
  async fn() {
    await assert.rejects(() => initBackend("native"), {
      message: /The native backend could not open .*libresnet_native\.so: .*needs --allow-ffi/,
    });
  },
});

Deno.test("initBackend() rejects a wasm thread count outside 1..8", async () => {
  for (const wasmThreads of [0, 9, 1.5]) {
    await assert.rejects(() => initBackend("wasm", { wasmThreads }), {
      name: "RangeError",
      message: `Expected wasm threads to be an integer from 1 to 8 but found ${wasmThreads}`,
    });
  }
});

Deno.test({
  name: "initBackend('wasm') starts with read access to node_modules alone (no env, sys, net)",
  permissions: {
    read: [NODE_MODULES],
    env: false,
    sys: false,
    net: false,
    write: false,
    run: false,
  },
  async fn() {
    const logged: string[] = [];
    const webWorker = globalThis.Worker;
    const backend = await initBackend("wasm", { log: (m) => logged.push(m) });
    assert.equal(backend.name, "wasm");
    assert.equal(tf.getBackend(), "wasm");
    // One thread per core by default; the threaded start puts the global Worker back.
    const threads = defaultWasmThreads();
    assert.equal(backend.threads, threads);
    assert.match(backend.detail, new RegExp(`^SIMD, ${threads} threads?,`));
    assert.equal(globalThis.Worker, webWorker);
    assert.match(logged.join("\n"), /wasm: loading binaries from .*node_modules/);
    assert.notEqual(tf.getKernel("Conv2DBackpropFilter", "wasm"), undefined);
    assert.deepEqual(await squares(), [1, 4, 9]);
  },
});

Deno.test("initBackend() can be called repeatedly to switch between backends", async () => {
  for (const name of ["cpu", "wasm", "native", "cpu", "native", "wasm", "wasm"] as const) {
    const backend = await initBackend(name);
    assert.equal(backend.name, name);
    assert.equal(tf.getBackend(), name === "native" ? "wasm" : name);
    assert.equal(nativeKernelsEnabled(), name === "native");
    assert.equal(activeAcceleration(), name === "cpu" ? null : name);
    assert.deepEqual(await squares(), [1, 4, 9]);
  }
});

Deno.test("initBackend('auto') picks webgpu for a hardware adapter, else native, and logs why", async () => {
  const expected = (await hardwareAdapter()) !== null
    ? "webgpu"
    : nativeLoads()
    ? "native"
    : "wasm";
  const logged: string[] = [];
  const backend = await initBackend("auto", { log: (m) => logged.push(m) });
  console.log(`    auto -> ${backend.name}: ${backend.detail}`);
  assert.equal(backend.name, expected);
  assert.equal(tf.getBackend(), expected === "native" ? "wasm" : expected);
  assert.match(logged.join("\n"), new RegExp(`auto: picked ${expected}`));
  if (expected !== "webgpu") {
    assert.match(backend.detail, new RegExp(`auto chose ${expected} because .+`));
  }
  assert.deepEqual(await squares(), [1, 4, 9]);
  await initBackend("cpu");
});

Deno.test("initBackend('webgpu') names the adapter, or says why WebGPU is unavailable", async () => {
  const adapter = await navigator.gpu?.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) {
    await assert.rejects(() => initBackend("webgpu"), { message: /navigator\.gpu|no adapter/ });
    return;
  }
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  for (let call = 0; call < 2; call++) {
    // The second call must reuse the backend the first one made (tfjs#8518).
    const backend = await initBackend("webgpu");
    console.log(`    webgpu: ${backend.detail}`);
    assert.equal(backend.name, "webgpu");
    assert.equal(tf.getBackend(), "webgpu");
    if (info.description) assert.ok(backend.detail.includes(info.description), backend.detail);
    assert.equal(backend.detail.includes("(fallback adapter)"), info.isFallbackAdapter === true);
    assert.deepEqual(await squares(), [1, 4, 9]);
  }
  await initBackend("cpu");
});

Deno.test("describeAdapter() trusts the adapter's own fallback flag, else spots software by name", () => {
  const cases: [Parameters<typeof describeAdapter>[0], string, boolean][] = [
    [{ description: "NVIDIA H200", isFallbackAdapter: false }, "NVIDIA H200", false],
    [{ description: "NVIDIA H200" }, "NVIDIA H200", false],
    [{ description: "llvmpipe (LLVM 15.0.6, 256 bits)" }, "llvmpipe (LLVM 15.0.6, 256 bits)", true],
    [{ description: "lavapipe", isFallbackAdapter: false }, "lavapipe", false],
    [{ vendor: "mesa", device: "SwiftShader Device" }, "mesa SwiftShader Device", true],
    [{ description: "Some GPU", legacyIsFallbackAdapter: true }, "Some GPU", true],
    [{}, "unnamed adapter", false],
  ];
  for (const [facts, description, isFallback] of cases) {
    assert.deepEqual(describeAdapter(facts), { description, isFallback }, JSON.stringify(facts));
  }
});

Deno.test("each backend installs its own acceleration; cpu and webgpu run stock TensorFlow.js", async () => {
  const bn = layerPrototype("BatchNormalization") as unknown as Record<string, unknown>;
  const conv = layerPrototype("Conv2D") as unknown as Record<string, unknown>;
  await initBackend("cpu");
  const stockBnCall = bn.call;
  const stockAdam = tf.AdamOptimizer.prototype.applyGradients;
  const expected: Record<string, string | null> = { cpu: null, wasm: "wasm" };
  if (nativeLoads()) expected.native = "native";
  if ((await probeWebgpuAdapter().catch(() => null)) !== null) expected.webgpu = null;
  for (const name of [...Object.keys(expected), "cpu"] as BackendName[]) {
    await initBackend(name);
    assert.equal(activeAcceleration(), expected[name], name);
    const stock = expected[name] === null;
    assert.equal(bn.call === stockBnCall, name !== "native", `${name}: BatchNormalization.call`);
    assert.equal(tf.AdamOptimizer.prototype.applyGradients === stockAdam, name !== "native");
    assert.equal(Object.hasOwn(conv, "call"), !stock, `${name}: Conv2D.call`);
  }
  assert.equal(activeAcceleration(), null);
});
