/**
 * Chooses and starts the TensorFlow.js backend: the pure-JavaScript `cpu`
 * reference, `wasm` (XNNPACK, single-threaded SIMD, plus this project's
 * convolution-gradient kernels) or `webgpu`.
 *
 * Under Deno the wasm backend needs only read access to its `.wasm` binaries in
 * `node_modules` (`--allow-read`, or `--allow-read=<that folder>`); it needs no
 * `env`, `sys`, `net` or `run` permission.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { fileURLToPath } from "node:url";
import { registerWasmTrainingKernels } from "./wasm_kernels.ts";

/** A backend to ask for; `auto` prefers a hardware WebGPU adapter, else wasm. */
export type BackendName = "cpu" | "wasm" | "webgpu" | "auto";

/** Every {@linkcode BackendName}, in the order the CLI lists them. */
export const BACKEND_NAMES: readonly BackendName[] = ["cpu", "wasm", "webgpu", "auto"];

/** Options for {@linkcode initBackend}. */
export interface InitBackendOptions {
  /**
   * Receives one line per decision: where the wasm binaries were loaded from,
   * and which backend `auto` picked and why.
   * @default no logging
   */
  log?: (message: string) => void;
}

/** The backend that is now active. */
export interface BackendInfo {
  /** The backend `tf.getBackend()` now reports. */
  name: "cpu" | "wasm" | "webgpu";
  /** One human-readable line: SIMD and threads for wasm, the adapter for webgpu, auto's reason. */
  detail: string;
}

/**
 * Makes `name` the active TensorFlow.js backend, starting it if this process has
 * not yet, and returns what it is running on.
 *
 * - `cpu`: the pure-JavaScript backend, the numeric reference.
 * - `wasm`: loads the single-threaded SIMD build from `node_modules` (the
 *   threaded build cannot start its workers under Deno) and installs
 *   {@linkcode registerWasmTrainingKernels}.
 * - `webgpu`: imports `@tensorflow/tfjs-backend-webgpu` only now; throws if
 *   `navigator.gpu` is missing or no adapter is found.
 * - `auto`: webgpu if a hardware (non-fallback) adapter exists, otherwise wasm.
 *
 * Calling it again, with the same or another name, switches backends without
 * re-creating one that already started (a second WebGPU backend cannot reuse
 * the adapter: tfjs#8518).
 *
 * @param name Which backend to use.
 * @param options Where to log decisions.
 * @returns The backend now active and a one-line description.
 * @throws {RangeError} If `name` is not a {@linkcode BackendName}.
 * @throws {Error} If the backend cannot start; the message says why and what to change.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "./backend.ts";
 *
 * const backend = await initBackend("cpu");
 * if (backend.name !== "cpu" || tf.getBackend() !== "cpu") throw new Error("not cpu");
 * ```
 */
export async function initBackend(
  name: BackendName,
  options: InitBackendOptions = {},
): Promise<BackendInfo> {
  const log = options.log ?? (() => {});
  switch (name) {
    case "cpu":
      await activate("cpu");
      return { name: "cpu", detail: "pure JavaScript, the numeric reference" };
    case "wasm":
      return await initWasm(log);
    case "webgpu":
      return await initWebgpu(await probeWebgpu());
    case "auto":
      return await initAuto(log);
    default:
      throw new RangeError(
        `Expected backend to be one of ${BACKEND_NAMES.join(", ")} but found ${String(name)}`,
      );
  }
}

/** `tf.setBackend` reports failure as `false` (and a console warning); make it an error. */
async function activate(name: string): Promise<void> {
  if (!(await tf.setBackend(name))) {
    throw new Error(`tf.setBackend("${name}") failed; see the warning TensorFlow.js printed above`);
  }
  await tf.ready();
}

// ---------------------------------------------------------------- wasm

const WASM_PACKAGE = "@tensorflow/tfjs-backend-wasm";
const WASM_SIMD_BINARY = "tfjs-backend-wasm-simd.wasm";

async function initWasm(log: (message: string) => void): Promise<BackendInfo> {
  const firstStart = tf.findBackend("wasm") === null;
  // Checked before importing the package and before tfjs tries the binary: a
  // failed start leaves tfjs-backend-wasm unable to retry in this process.
  const folder = firstStart ? wasmBinaryFolder() : "";
  if (firstStart) requireReadable(folder);
  const wasm = await import("@tensorflow/tfjs-backend-wasm");
  registerWasmTrainingKernels();
  if (firstStart) {
    // The threaded build starts Web Workers from a blob URL, which Deno
    // refuses (ERR_WORKER_PATH); tfjs already skips it when it detects
    // Node-like globals, and this keeps it skipped wherever that guess differs.
    tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false);
    wasm.setWasmPaths(folder);
    log(`wasm: loading binaries from ${folder}`);
  }
  await activate("wasm");
  const simd = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT");
  const threads = wasm.getThreadsCount();
  return {
    name: "wasm",
    detail: `${simd ? "SIMD" : "no SIMD"}, ${threads} thread${threads === 1 ? "" : "s"}, ` +
      `XNNPACK with composite Conv2D gradients`,
  };
}

/**
 * The folder holding the `.wasm` binaries, found through the module resolver
 * rather than the working directory, so it is the same under `deno run`,
 * `deno test` and a Jupyter kernel started in `notebooks/`.
 */
function wasmBinaryFolder(): string {
  const entry = import.meta.resolve(WASM_PACKAGE); // .../dist/tf-backend-wasm.node.js
  if (!entry.startsWith("file:")) {
    throw new Error(
      `Expected ${WASM_PACKAGE} to resolve to a file: URL in node_modules but found ${entry}; ` +
        `deno.json needs "nodeModulesDir": "auto"`,
    );
  }
  return fileURLToPath(new URL(".", entry));
}

/** Fails with the flag to add, instead of tfjs's advice about web servers. */
function requireReadable(folder: string): void {
  const descriptor = { name: "read", path: folder } as const;
  let state = Deno.permissions.querySync(descriptor).state;
  // "prompt": let Deno ask on a terminal (without one the request is denied).
  if (state === "prompt") state = Deno.permissions.requestSync(descriptor).state;
  if (state !== "granted") {
    throw new Error(
      `The wasm backend needs read access to ${folder}${WASM_SIMD_BINARY} but it was ${state}; ` +
        `run Deno with --allow-read (or --allow-read=${folder})`,
    );
  }
  try {
    Deno.statSync(folder + WASM_SIMD_BINARY);
  } catch (error) {
    throw new Error(
      `Expected the wasm binary at ${folder}${WASM_SIMD_BINARY} but could not stat it ` +
        `(${(error as Error).message}); run \`deno install\``,
    );
  }
}

// ---------------------------------------------------------------- webgpu

/** What a WebGPU adapter said about itself. */
interface AdapterProbe {
  description: string;
  isFallback: boolean;
}

/** Software rasterisers that may not set `isFallbackAdapter`. */
const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|swiftshader|softpipe|microsoft basic render/i;

let probed: Promise<AdapterProbe> | undefined;

/** Asks for an adapter once per process; later calls get the same answer. */
function probeWebgpu(): Promise<AdapterProbe> {
  probed ??= requestAdapter();
  return probed;
}

async function requestAdapter(): Promise<AdapterProbe> {
  const gpu = (globalThis.navigator as { gpu?: GPU } | undefined)?.gpu;
  if (gpu === undefined) {
    throw new Error(
      "WebGPU is unavailable: expected navigator.gpu but this runtime has none " +
        "(Deno before 2.x needs --unstable-webgpu)",
    );
  }
  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  if (adapter === null) {
    throw new Error(
      "WebGPU is available but navigator.gpu.requestAdapter() found no adapter " +
        "(no GPU, or no driver this runtime can use)",
    );
  }
  // `isFallbackAdapter` moved from GPUAdapter to GPUAdapterInfo in the spec;
  // runtimes differ in which one they implement.
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const legacy = adapter as GPUAdapter & { isFallbackAdapter?: boolean };
  const description = info.description ||
    [info.vendor, info.architecture, info.device].filter((s) => s).join(" ") ||
    "unnamed adapter";
  const isFallback = info.isFallbackAdapter ?? legacy.isFallbackAdapter ??
    SOFTWARE_ADAPTER.test(description);
  return { description, isFallback };
}

async function initWebgpu(probe: AdapterProbe): Promise<BackendInfo> {
  // Imported only on request: importing registers a priority-3 backend that
  // would otherwise win tfjs's automatic choice, and it costs start-up time.
  await import("@tensorflow/tfjs-backend-webgpu");
  if (tf.findBackendFactory("webgpu") === null) {
    throw new Error(
      "Expected @tensorflow/tfjs-backend-webgpu to register the webgpu backend, but it did not " +
        "(it registers only when globalThis.navigator.gpu exists)",
    );
  }
  await activate("webgpu");
  return {
    name: "webgpu",
    detail: `adapter ${probe.description}${probe.isFallback ? " (fallback adapter)" : ""}`,
  };
}

async function initAuto(log: (message: string) => void): Promise<BackendInfo> {
  let reason: string;
  try {
    const probe = await probeWebgpu();
    if (!probe.isFallback) {
      log(`auto: picked webgpu: hardware adapter ${probe.description}`);
      return await initWebgpu(probe);
    }
    reason = `the only WebGPU adapter, ${probe.description}, is a fallback (software) adapter`;
  } catch (error) {
    reason = `WebGPU cannot be used: ${(error as Error).message}`;
  }
  log(`auto: picked wasm because ${reason}`);
  const wasm = await initWasm(log);
  return { name: "wasm", detail: `${wasm.detail}; auto chose wasm because ${reason}` };
}
