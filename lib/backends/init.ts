/**
 * Chooses and starts the TensorFlow.js backend: the pure-JavaScript `cpu`
 * reference, `wasm` (XNNPACK with SIMD, on one thread per core, plus this
 * project's convolution-gradient kernels) or `webgpu`.
 *
 * Under Deno the wasm backend needs only read access to its package folder in
 * `node_modules` (`--allow-read`, or `--allow-read=<that folder>`); it needs no
 * `env`, `sys`, `net` or `run` permission.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { packageEntryFolder } from "../io/package_files.ts";
import { BACKEND_NAMES, type BackendName } from "../train/config.ts";
import { activateAcceleration } from "./acceleration.ts";
import { NATIVE_ACCELERATION } from "./native/acceleration.ts";
import { WASM_ACCELERATION } from "./wasm/acceleration.ts";
import { loadNativeLibrary } from "./native/kernels.ts";
import { registerWasmTrainingKernels } from "./wasm/kernels.ts";
import {
  checkWasmThreads,
  defaultWasmThreads,
  WASM_PACKAGE_SCRIPT,
  withPthreadWorkers,
} from "./wasm/threads.ts";

export { BACKEND_NAMES, type BackendName };

/** Options for {@linkcode initBackend}. */
export interface InitBackendOptions {
  /**
   * Receives one line per decision: where the wasm binaries were loaded from,
   * and which backend `auto` picked and why.
   * @default no logging
   */
  log?: (message: string) => void;
  /**
   * Threads for the wasm backend (1 to 8). More than 1 starts the package's
   * threaded SIMD build; 1 starts the single-threaded SIMD build. Only the
   * first start of wasm in a process decides; later calls report what runs.
   * @default one per logical core (`navigator.hardwareConcurrency`), at most 8
   */
  wasmThreads?: number;
}

/** The backend that is now active. */
export interface BackendInfo {
  /** What runs: `native` is the wasm backend (`tf.getBackend()` says "wasm") with native convolutions. */
  name: "cpu" | "wasm" | "native" | "webgpu";
  /** One human-readable line: SIMD and threads for wasm, the adapter for webgpu, auto's reason. */
  detail: string;
  /** Threads the backend computes on: the wasm pool's size; 1 for cpu; 0 for webgpu (the GPU). */
  threads: number;
}

/**
 * Makes `name` the active TensorFlow.js backend, starting it if this process has
 * not yet, and returns what it is running on.
 *
 * - `cpu`: the pure-JavaScript backend, the numeric reference: stock
 *   TensorFlow.js, no acceleration.
 * - `wasm`: loads the threaded SIMD build from `node_modules` with
 *   `options.wasmThreads` threads (see `wasm_threads.ts` for what it takes under
 *   Deno), or the single-threaded SIMD build for 1 thread, and installs
 *   {@linkcode registerWasmTrainingKernels}.
 * - `native`: wasm, plus convolutions (forward and both gradients), batch
 *   norm (`batchnorm.ts`), ReLU, Adam's update (`native_adam.ts`) and
 *   reductions in native code with the system's OpenBLAS, called through
 *   Deno's FFI on the tensors in wasm memory (`native_kernels.ts`); needs
 *   `deno task build:native` once and `--allow-ffi`.
 * - `webgpu`: imports `@tensorflow/tfjs-backend-webgpu` only now; throws if
 *   `navigator.gpu` is missing or no adapter is found.
 * - `auto`: webgpu if a hardware (non-fallback) adapter exists, otherwise
 *   native if its library loads, otherwise wasm.
 *
 * Calling it again, with the same or another name, switches backends without
 * re-creating one that already started (a second WebGPU backend cannot reuse
 * the adapter: tfjs#8518).
 *
 * @param name Which backend to use.
 * @param options Where to log decisions; how many wasm threads.
 * @returns The backend now active, a one-line description and its thread count.
 * @throws {RangeError} If `name` is not a {@linkcode BackendName}, or
 *   `options.wasmThreads` is not an integer from 1 to 8.
 * @throws {Error} If the backend cannot start; the message says why and what to change.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "./init.ts";
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
  // Production mode silences TensorFlow.js's advice to install tfjs-node (which Deno cannot
  // use); it only skips debug-mode checks, which are off by default anyway.
  tf.enableProdMode();
  const wasmThreads = options.wasmThreads ?? defaultWasmThreads();
  checkWasmThreads(wasmThreads);
  // TensorFlow.js as its packages ship it until the chosen backend installs
  // its acceleration.
  activateAcceleration(null);
  switch (name) {
    case "cpu":
      await activate("cpu");
      return { name: "cpu", detail: "pure JavaScript, the numeric reference", threads: 1 };
    case "wasm":
      return await initWasm(log, wasmThreads);
    case "native":
      return await initNative(log, wasmThreads);
    case "webgpu":
      return await initWebgpu(await probeWebgpuAdapter());
    case "auto":
      return await initAuto(log, wasmThreads);
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
const WASM_THREADED_BINARY = "tfjs-backend-wasm-threaded-simd.wasm";

async function initWasm(log: (message: string) => void, threads: number): Promise<BackendInfo> {
  const firstStart = tf.findBackend("wasm") === null;
  // Checked before importing the package and before tfjs tries the binary: a
  // failed start leaves tfjs-backend-wasm unable to retry in this process.
  const folder = firstStart ? packageEntryFolder(WASM_PACKAGE) : "";
  if (firstStart) requireReadable(folder, threads > 1 ? WASM_THREADED_BINARY : WASM_SIMD_BINARY);
  const wasm = await import("@tensorflow/tfjs-backend-wasm");
  registerWasmTrainingKernels();
  if (firstStart) {
    // tfjs never picks the threaded build where it sees Node-like globals,
    // as under Deno; this flag is what makes it (or keeps it from) trying.
    tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", threads > 1);
    wasm.setThreadsCount(threads);
    wasm.setWasmPaths(folder);
    log(`wasm: loading binaries from ${folder} for ${threads} thread${threads === 1 ? "" : "s"}`);
  }
  if (firstStart && threads > 1) {
    await withPthreadWorkers(
      { packageScript: folder + WASM_PACKAGE_SCRIPT, threads },
      () => activate("wasm"),
    );
  } else {
    await activate("wasm");
  }
  activateAcceleration(WASM_ACCELERATION);
  const simd = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT");
  const running = wasm.getThreadsCount();
  return {
    name: "wasm",
    detail: `${simd ? "SIMD" : "no SIMD"}, ${running} thread${running === 1 ? "" : "s"}, ` +
      `XNNPACK with composite Conv2D gradients`,
    threads: running,
  };
}

async function initNative(
  log: (message: string) => void,
  threads: number,
): Promise<BackendInfo> {
  // Loaded first: a missing library fails before the wasm backend starts.
  const library = loadNativeLibrary();
  const wasm = await initWasm(log, threads);
  activateAcceleration(NATIVE_ACCELERATION);
  log(`native: ${library}`);
  return {
    name: "native",
    detail: `${wasm.detail.replace(/, XNNPACK.*$/, "")}; convolutions, batch norm, ReLU, Adam ` +
      `and reductions in native code (${library.replace(/ \(.*$/, "")})`,
    threads: wasm.threads,
  };
}

/** Fails with the flag to add, instead of tfjs's advice about web servers. */
function requireReadable(folder: string, binary: string): void {
  const descriptor = { name: "read", path: folder } as const;
  let state = Deno.permissions.querySync(descriptor).state;
  // "prompt": let Deno ask on a terminal (without one the request is denied).
  if (state === "prompt") state = Deno.permissions.requestSync(descriptor).state;
  if (state !== "granted") {
    throw new Error(
      `The wasm backend needs read access to ${folder}${binary} but it was ${state}; ` +
        `run Deno with --allow-read (or --allow-read=${folder})`,
    );
  }
  try {
    Deno.statSync(folder + binary);
  } catch (error) {
    throw new Error(
      `Expected the wasm binary at ${folder}${binary} but could not stat it ` +
        `(${(error as Error).message}); run \`deno install\``,
    );
  }
}

// ---------------------------------------------------------------- webgpu

/** What a WebGPU adapter said about itself. */
export interface AdapterProbe {
  description: string;
  isFallback: boolean;
}

/** Software rasterisers that may not set `isFallbackAdapter`. */
const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|swiftshader|softpipe|microsoft basic render/i;

/** The fields of `GPUAdapterInfo` (and the older `GPUAdapter.isFallbackAdapter`) the probe reads. */
export interface AdapterFacts {
  description?: string;
  vendor?: string;
  architecture?: string;
  device?: string;
  /** Where the spec has it now, on `GPUAdapterInfo`. */
  isFallbackAdapter?: boolean;
  /** Where runtimes had it before, on `GPUAdapter`. */
  legacyIsFallbackAdapter?: boolean;
}

/**
 * Names an adapter and decides whether it is a fallback (software) one: the
 * adapter's own word where it gives one (either place in the spec), else a
 * software rasteriser's name. `auto` uses WebGPU only when this says false.
 *
 * @example
 * ```ts
 * import { describeAdapter } from "./init.ts";
 * console.log(describeAdapter({ description: "llvmpipe (LLVM 15.0.6, 256 bits)" }).isFallback); // true
 * ```
 */
export function describeAdapter(facts: AdapterFacts): AdapterProbe {
  const description = facts.description ||
    [facts.vendor, facts.architecture, facts.device].filter((s) => s).join(" ") ||
    "unnamed adapter";
  const isFallback = facts.isFallbackAdapter ?? facts.legacyIsFallbackAdapter ??
    SOFTWARE_ADAPTER.test(description);
  return { description, isFallback };
}

let probed: Promise<AdapterProbe> | undefined;

/**
 * Asks for a WebGPU adapter once per process (later calls get the same
 * answer: an adapter cannot be requested twice usefully, tfjs#8518) and
 * describes it with {@linkcode describeAdapter}.
 *
 * @throws {Error} If this runtime has no `navigator.gpu`, or no adapter.
 */
export function probeWebgpuAdapter(): Promise<AdapterProbe> {
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
  return describeAdapter({
    description: info.description,
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    isFallbackAdapter: info.isFallbackAdapter,
    legacyIsFallbackAdapter: legacy.isFallbackAdapter,
  });
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
    threads: 0,
  };
}

async function initAuto(log: (message: string) => void, wasmThreads: number): Promise<BackendInfo> {
  let reason: string;
  try {
    const probe = await probeWebgpuAdapter();
    if (!probe.isFallback) {
      log(`auto: picked webgpu: hardware adapter ${probe.description}`);
      return await initWebgpu(probe);
    }
    reason = `the only WebGPU adapter, ${probe.description}, is a fallback (software) adapter`;
  } catch (error) {
    reason = `WebGPU cannot be used: ${(error as Error).message}`;
  }
  try {
    const native = await initNative(log, wasmThreads);
    log(`auto: picked native because ${reason}`);
    return { ...native, detail: `${native.detail}; auto chose native because ${reason}` };
  } catch (error) {
    reason += `, and the native library cannot be used: ${(error as Error).message}`;
  }
  log(`auto: picked wasm because ${reason}`);
  const wasm = await initWasm(log, wasmThreads);
  return { ...wasm, detail: `${wasm.detail}; auto chose wasm because ${reason}` };
}
