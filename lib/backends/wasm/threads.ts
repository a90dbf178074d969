/**
 * Starts the multi-threaded build of `@tensorflow/tfjs-backend-wasm@4.22.0`
 * (`tfjs-backend-wasm-threaded-simd.wasm`, XNNPACK on a pthread pool) under Deno.
 *
 * The stock package never picks that build outside a browser, and forcing it
 * fails in seven places, each fixed here from the outside, for the length of
 * the backend's start only:
 *
 * 1. tfjs hands Emscripten a `blob:` URL for the pthread worker script, and
 *    Emscripten (in its Node mode, which it takes because Deno has `process`)
 *    passes it to `node:worker_threads`, which accepts only file paths and
 *    `file:`/`data:` URLs: `ERR_WORKER_PATH`. We start each worker from the
 *    same script text, which the package carries as a string, with `eval: true`.
 * 2. Emscripten assigns `globalThis.Worker = worker_threads.Worker` for the
 *    whole process; an accessor takes that assignment during the start, and
 *    the original `Worker` is put back after it.
 * 3. In Node mode the worker script assigns `self.location`, a getter-only
 *    property of Deno's worker scope, and throws; the prelude makes it writable.
 * 4. The worker's `load` message carries Emscripten's main script as a `Blob`,
 *    which the worker would read with `fs.readFileSync`; we post its text
 *    instead and the worker evaluates that.
 * 5. That main script is the bundle's factory function turned back into source,
 *    so it names the bundle's module-scope imports (`require$$0` = fs, ...),
 *    which the prelude defines in the worker.
 * 6. The C side caps the pool at `os.cpus().length / 2`, assuming two
 *    hyperthreads per core (1 thread on a 2-vCPU machine), and `os.cpus()`
 *    needs `--allow-sys`; during the start it reports twice the requested
 *    threads, without reading the system.
 * 7. Emscripten `ref()`s a worker while it runs a pthread, and XNNPACK's pool
 *    threads never return, so Deno would never exit; pool workers stay unref'd.
 *
 * The binaries and scripts all come from the npm package in `node_modules`;
 * nothing is downloaded or written.
 *
 * @module
 */
import os from "node:os";
import { Worker as NodeWorker } from "node:worker_threads";

/** Threads the threaded build can run: it starts this many pthread workers up front. */
export const MAX_WASM_THREADS = 8;

/** The package file that carries the pthread worker script as a string literal. */
export const WASM_PACKAGE_SCRIPT = "tf-backend-wasm.node.js";

const WORKER_SCRIPT_DECLARATION = /^var wasmWorkerContents = ("(?:[^"\\]|\\.)*");$/m;

/**
 * The default number of wasm threads: one per logical core
 * (`navigator.hardwareConcurrency`), at most {@linkcode MAX_WASM_THREADS}.
 *
 * @returns An integer from 1 to {@linkcode MAX_WASM_THREADS}.
 *
 * @example
 * ```ts
 * import { defaultWasmThreads, MAX_WASM_THREADS } from "./threads.ts";
 * const threads = defaultWasmThreads();
 * if (threads < 1 || threads > MAX_WASM_THREADS) throw new Error(`bad default ${threads}`);
 * ```
 */
export function defaultWasmThreads(): number {
  const cores = globalThis.navigator?.hardwareConcurrency ?? 1;
  return Math.max(1, Math.min(MAX_WASM_THREADS, Math.floor(cores)));
}

/**
 * Checks a requested thread count.
 *
 * @param threads The requested number of wasm threads.
 * @throws {RangeError} Unless it is an integer from 1 to {@linkcode MAX_WASM_THREADS}.
 */
export function checkWasmThreads(threads: number): void {
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_WASM_THREADS) {
    throw new RangeError(
      `Expected wasm threads to be an integer from 1 to ${MAX_WASM_THREADS} but found ${threads}`,
    );
  }
}

/**
 * Reads the pthread worker script out of the package's bundle, where tfjs keeps
 * it as `var wasmWorkerContents = "...";` (it ships no `.worker.js` file).
 *
 * @param packageScript Path of `tf-backend-wasm.node.js` in `node_modules`.
 * @returns The worker script, with newlines inside its string literals escaped
 *   as tfjs does before making its blob.
 * @throws {Error} If the file cannot be read or has no such declaration.
 */
export function readWorkerScript(packageScript: string): string {
  let bundle: string;
  try {
    bundle = Deno.readTextFileSync(packageScript);
  } catch (error) {
    throw new Error(
      `Expected the wasm package script at ${packageScript} but could not read it ` +
        `(${(error as Error).message})`,
    );
  }
  const match = WORKER_SCRIPT_DECLARATION.exec(bundle);
  if (match === null) {
    throw new Error(
      `Expected ${packageScript} to declare the pthread worker script as ` +
        `'var wasmWorkerContents = "...";' but found no such line ` +
        `(is @tensorflow/tfjs-backend-wasm still 4.22.0?)`,
    );
  }
  // The literal is JSON-compatible; tfjs escapes its newlines again before
  // making a script of it, because `text+"\n"` must stay inside one string.
  return (JSON.parse(match[1]) as string).replace(/\n/g, "\\n");
}

/**
 * Runs in each worker before tfjs's worker script (fixes 3 and 5 above) and
 * after it (fix 4: `importScripts` of the posted source text).
 */
const WORKER_PRELUDE = `
for (const name of ["location", "self", "postMessage", "performance", "importScripts"]) {
  Object.defineProperty(globalThis, name, {
    value: globalThis[name], writable: true, configurable: true, enumerable: true,
  });
}
Object.assign(globalThis, {
  require$$0: require("fs"),
  require$$1: require("path"),
  require$$3: require("perf_hooks"),
  require$$4: require("os"),
  commonjsGlobal: globalThis,
  __filename: "tfjs-backend-wasm-threaded-simd.worker.js",
  __dirname: ".",
});
`;
const WORKER_EPILOGUE = `
globalThis.importScripts = (source) => (0, eval)(source);
`;

/** What Emscripten calls on a pool worker besides the node:worker_threads API. */
type PoolWorker = NodeWorker & { ref(): void };

/**
 * A `Worker` constructor for Emscripten: a `blob:` URL (tfjs's worker script)
 * starts a pool worker (fixes 1, 4, 7); anything else goes to `fallback`.
 */
function pthreadWorkerConstructor(
  workerScript: string,
  fallback: typeof Worker,
): new (url: string) => PoolWorker {
  const source = WORKER_PRELUDE + workerScript + WORKER_EPILOGUE;
  return function PthreadWorker(this: unknown, url: string, ...rest: unknown[]): PoolWorker {
    if (typeof url !== "string" || !url.startsWith("blob:") || rest.length > 0) {
      return Reflect.construct(fallback, [url, ...rest]) as PoolWorker;
    }
    URL.revokeObjectURL(url); // the script text is used instead; free tfjs's blob
    const worker = new NodeWorker(source, { eval: true }) as PoolWorker;
    // Referenced while it loads (Emscripten unrefs it once loaded), so the
    // start keeps the process alive; never again after that.
    worker.ref = () => {};
    type Transfer = Parameters<NodeWorker["postMessage"]>[1];
    const post = worker.postMessage.bind(worker);
    let loading: Promise<void> | null = null;
    worker.postMessage = (message: unknown, transfer?: Transfer) => {
      const data = message as { cmd?: string; urlOrBlob?: unknown } | null;
      if (data?.cmd === "load" && data.urlOrBlob instanceof Blob) {
        // Emscripten waits for every pool worker's "loaded" reply before it
        // runs anything, so this asynchronous read cannot race a blocking call.
        loading = data.urlOrBlob.text().then((text) => {
          post({ ...data, urlOrBlob: text }, transfer);
          loading = null;
        });
      } else if (loading !== null) {
        loading = loading.then(() => post(message, transfer));
      } else {
        // Synchronously: the main thread may block right after this, waiting for the thread.
        post(message, transfer);
      }
    };
    return worker;
  } as unknown as new (url: string) => PoolWorker;
}

/**
 * Runs `start`, which must start the wasm backend with its threaded build
 * (`WASM_HAS_MULTITHREAD_SUPPORT` set and `setThreadsCount(threads)` called),
 * with the fixes listed in the module documentation in place, and removes them
 * afterwards, whether `start` succeeds or not.
 *
 * @param options `packageScript`: path of `tf-backend-wasm.node.js`;
 *   `threads`: the pool size the backend will ask for.
 * @param start Starts the backend (e.g. `() => tf.setBackend("wasm")`).
 * @returns What `start` returns.
 * @throws {Error} If the worker script cannot be found in the package, or what `start` throws.
 *
 * @example
 * ```ts ignore
 * import * as tf from "@tensorflow/tfjs";
 * import * as wasm from "@tensorflow/tfjs-backend-wasm";
 * import { withPthreadWorkers } from "./threads.ts";
 *
 * tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", true);
 * wasm.setThreadsCount(2);
 * await withPthreadWorkers({ packageScript: "node_modules/.../tf-backend-wasm.node.js", threads: 2 },
 *   () => tf.setBackend("wasm"));
 * ```
 */
export async function withPthreadWorkers<T>(
  options: { packageScript: string; threads: number },
  start: () => Promise<T>,
): Promise<T> {
  checkWasmThreads(options.threads);
  const workerScript = readWorkerScript(options.packageScript);
  const workerDescriptor = Object.getOwnPropertyDescriptor(globalThis, "Worker");
  const PthreadWorker = pthreadWorkerConstructor(workerScript, globalThis.Worker);
  Object.defineProperty(globalThis, "Worker", {
    configurable: true,
    get: () => PthreadWorker,
    set: () => {}, // Emscripten's `globalThis.Worker = worker_threads.Worker` (fix 2)
  });
  const nodeOs = os as { cpus: typeof os.cpus };
  const cpus = nodeOs.cpus;
  const reported = Array.from({ length: 2 * options.threads }, () => ({
    model: "reported to tfjs-backend-wasm",
    speed: 0,
    times: { user: 0, nice: 0, sys: 0, idle: 0, irq: 0 },
  }));
  nodeOs.cpus = () => reported; // fix 6
  try {
    return await start();
  } finally {
    nodeOs.cpus = cpus;
    if (workerDescriptor === undefined) {
      delete (globalThis as { Worker?: unknown }).Worker;
    } else {
      Object.defineProperty(globalThis, "Worker", workerDescriptor);
    }
  }
}
