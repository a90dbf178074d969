/**
 * `deno task build:native`: compiles `native/kernels.c` and `native/onednn.c`
 * into `native/build/libresnet_native.so`, the library of the `native`
 * backend, linked to the system's OpenBLAS and oneDNN (Debian:
 * `apt-get install gcc libopenblas0 libdnnl-dev`). oneDNN's flags come from
 * `pkg-config --cflags --libs dnnl` where pkg-config knows it, else the
 * standard paths (`dnnl.h` on the include path, `-ldnnl`).
 *
 * Rebuilds only when the source or this file (the flags) is newer than the
 * library (or with `--force`), so the train, bench and test tasks run it first at no cost.
 * The library is written under a temporary name and renamed into place:
 * an interrupted build never leaves a half-written one behind.
 *
 * With `--optional`, a failed build prints why and exits 0 (the `auto`
 * backend then uses wasm); without it, it exits 1.
 *
 * Environment: `CC` picks the compiler (default `cc`; gcc and clang both work).
 *
 * @module
 */
import { fileURLToPath } from "node:url";

/** The C sources, and the header they share (a change to any rebuilds). */
const SOURCES = ["kernels.c", "onednn.c"].map((name) =>
  fileURLToPath(new URL(`../native/${name}`, import.meta.url))
);
const HEADER = fileURLToPath(new URL("../native/resnet_native.h", import.meta.url));
const OUTPUT = fileURLToPath(new URL("../native/build/libresnet_native.so", import.meta.url));

/**
 * -march=native: the library is built where it runs, so it may use every
 * instruction this CPU has (AVX2 and FMA for the im2col copies and sums;
 * OpenBLAS picks its own kernels at run time either way).
 */
const FLAGS = [
  "-O3",
  "-march=native",
  "-fopenmp",
  "-fPIC",
  "-shared",
  "-Wall",
  "-Wextra",
  "-std=c11",
];
/**
 * The runtime library itself, so the -dev package (headers, .so link) is not
 * needed. `-z nodelete`: Deno closes FFI libraries when a program ends on its
 * own; unloading this one (and with it libgomp) under OpenMP's still-running
 * worker threads crashed the process on the way out.
 */
const LIBS = ["-l:libopenblas.so.0", "-lm", "-Wl,-z,nodelete"];

/** Where oneDNN's headers and library are, when `pkg-config` cannot say. */
const DNNL_FALLBACK = ["-ldnnl"];

/**
 * oneDNN's compiler and linker flags from `pkg-config --cflags --libs dnnl`,
 * or the standard paths when pkg-config is missing or does not know dnnl
 * (Debian's libdnnl-dev 2.6 ships no dnnl.pc).
 */
async function dnnlFlags(): Promise<string[]> {
  try {
    const result = await new Deno.Command("pkg-config", {
      args: ["--cflags", "--libs", "dnnl"],
      stdout: "piped",
      stderr: "null",
    }).output();
    const flags = new TextDecoder().decode(result.stdout).trim().split(/\s+/).filter((f) => f);
    if (result.success && flags.length > 0) return flags;
  } catch { /* no pkg-config: the standard paths */ }
  return DNNL_FALLBACK;
}

/** What to install when the build's errors say a library or header is missing, or "". */
export function missingPackageHint(stderr: string): string {
  const hints: string[] = [];
  if (/dnnl\.h|-ldnnl|libdnnl/.test(stderr)) {
    hints.push(
      "oneDNN is missing: on Debian/Ubuntu apt-get install libdnnl-dev; on macOS " +
        "brew install onednn libomp (untested)",
    );
  }
  if (/libopenblas/.test(stderr)) hints.push("OpenBLAS is missing: apt-get install libopenblas0");
  return hints.length === 0 ? "" : ` (${hints.join("; ")})`;
}

function mtime(path: string): number | null {
  try {
    return Deno.statSync(path).mtime?.getTime() ?? null;
  } catch {
    return null;
  }
}

async function build(force: boolean): Promise<string> {
  let inputsTime = 0;
  for (const source of [...SOURCES, HEADER]) {
    const time = mtime(source);
    if (time === null) throw new Error(`Expected the C source at ${source} but found none`);
    inputsTime = Math.max(inputsTime, time);
  }
  // This file holds the flags: a change here rebuilds too.
  inputsTime = Math.max(inputsTime, mtime(fileURLToPath(import.meta.url)) ?? 0);
  const outputTime = mtime(OUTPUT);
  if (!force && outputTime !== null && outputTime >= inputsTime) {
    return `native: ${OUTPUT} is up to date`;
  }
  const compiler = Deno.env.get("CC") ?? "cc";
  const temporary = `${OUTPUT}.${Deno.pid}.tmp`;
  Deno.mkdirSync(new URL("../native/build/", import.meta.url), { recursive: true });
  const args = [...FLAGS, "-o", temporary, ...SOURCES, ...LIBS, ...await dnnlFlags()];
  let result: Deno.CommandOutput;
  try {
    result = await new Deno.Command(compiler, { args, stdout: "piped", stderr: "piped" }).output();
  } catch (error) {
    throw new Error(
      `Could not run the C compiler '${compiler}': ${(error as Error).message} ` +
        `(install one, e.g. apt-get install gcc, or set CC)`,
    );
  }
  if (!result.success) {
    try {
      Deno.removeSync(temporary);
    } catch { /* nothing was written */ }
    const stderr = new TextDecoder().decode(result.stderr).trim();
    const hint = missingPackageHint(stderr);
    throw new Error(
      `'${compiler} ${args.join(" ")}' failed with exit code ${result.code}${hint}:\n${stderr}`,
    );
  }
  Deno.renameSync(temporary, OUTPUT);
  return `native: built ${OUTPUT} with ${compiler}`;
}

if (import.meta.main) {
  const optional = Deno.args.includes("--optional");
  const unknown = Deno.args.filter((a) => a !== "--optional" && a !== "--force");
  if (unknown.length > 0) {
    console.error(
      `build_native: expected only --optional or --force but found ${unknown.join(" ")}`,
    );
    Deno.exit(2);
  }
  try {
    console.error(await build(Deno.args.includes("--force")));
  } catch (error) {
    console.error(`native: ${(error as Error).message}`);
    if (optional) {
      console.error("native: continuing without the native backend (auto will use wasm)");
    } else {
      Deno.exit(1);
    }
  }
}
