import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  checkWasmThreads,
  defaultWasmThreads,
  MAX_WASM_THREADS,
  readWorkerScript,
  WASM_PACKAGE_SCRIPT,
} from "../lib/backends/wasm/threads.ts";

const ROOT = new URL("..", import.meta.url);
const PACKAGE_SCRIPT = fileURLToPath(
  new URL(WASM_PACKAGE_SCRIPT, import.meta.resolve("@tensorflow/tfjs-backend-wasm")),
);

Deno.test("defaultWasmThreads() is one per logical core, 1..8", () => {
  const expected = Math.min(MAX_WASM_THREADS, navigator.hardwareConcurrency);
  assert.equal(defaultWasmThreads(), Math.max(1, expected));
});

Deno.test("checkWasmThreads() accepts 1..8 and names the bad value", () => {
  for (const threads of [1, 2, 8]) checkWasmThreads(threads);
  for (const threads of [0, 9, 2.5, NaN]) {
    assert.throws(() => checkWasmThreads(threads), {
      name: "RangeError",
      message: `Expected wasm threads to be an integer from 1 to 8 but found ${threads}`,
    });
  }
});

Deno.test("readWorkerScript() finds the pthread worker script in the package", () => {
  const script = readWorkerScript(PACKAGE_SCRIPT);
  assert.match(script, /^"use strict";var Module=\{\};/);
  assert.match(script, /WasmBackendModuleThreadedSimd\(Module\)/);
  // Newlines inside its string literals stay escaped, or the script would not parse.
  assert.ok(!script.includes("\n"));
  new Function(script); // parses
});

Deno.test("readWorkerScript() names the file and what it expected", async () => {
  const file = await Deno.makeTempFile({ suffix: ".js" });
  try {
    await Deno.writeTextFile(file, "var somethingElse = 1;\n");
    assert.throws(() => readWorkerScript(file), {
      message: new RegExp(
        `Expected ${file} to declare the pthread worker script as 'var wasmWorkerContents = "...";'`,
      ),
    });
  } finally {
    await Deno.remove(file);
  }
  assert.throws(() => readWorkerScript(`${file}.missing`), {
    message: /Expected the wasm package script at .*\.missing but could not read it/,
  });
});

/**
 * Starts wasm with `threads` threads in a fresh process (the first start decides for the
 * process), checks a conv2d and its gradients against cpu, and returns what it printed.
 */
async function startInChild(threads: number): Promise<{ threads: number; error: number }> {
  const code = `
    import * as tf from "@tensorflow/tfjs";
    import { initBackend } from "./lib/backends/init.ts";
    const x = tf.randomUniform([4, 9, 9, 8], -1, 1, "float32", 1);
    const w = tf.randomUniform([3, 3, 8, 16], -1, 1, "float32", 2);
    const f = (a, b) => tf.sum(tf.square(tf.conv2d(a, b, 2, "same")));
    const values = async () => (await Promise.all(tf.grads(f)([x, w]).map((g) => g.data())))
      .flatMap((v) => Array.from(v));
    await initBackend("cpu");
    const expected = await values();
    const backend = await initBackend("wasm", { wasmThreads: ${threads} });
    const actual = await values();
    const scale = Math.max(...expected.map(Math.abs));
    const error = Math.max(...actual.map((v, i) => Math.abs(v - expected[i]))) / scale;
    console.log(JSON.stringify({ threads: backend.threads, error }));
  `;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=js", code],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // The process must end on its own: pool workers may not keep Deno alive.
  const timer = setTimeout(() => child.kill(), 60_000);
  const out = await child.output();
  clearTimeout(timer);
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `exit ${out.code} ${out.signal ?? ""}: ${stderr}`);
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
}

Deno.test("the wasm backend starts with 1 and 2 threads, matches cpu, and lets Deno exit", async () => {
  for (const threads of [1, 2]) {
    const result = await startInChild(threads);
    assert.equal(result.threads, threads);
    assert.ok(result.error <= 1e-4, `${threads} threads: relative error ${result.error}`);
  }
});
