/**
 * `deno task build:native`: compiles `native/kernels.c` into
 * `native/build/libresnet_native.so`, the library of the `native` backend,
 * linked to the system's OpenBLAS (Debian: `apt-get install gcc libopenblas0`).
 *
 * Rebuilds only when the source or this file (the flags) is newer than the
 * library (or with `--force`), so the train, bench and test tasks run it first at no cost.
 * The library is written under a temporary name and renamed into place:
 * an interrupted build never leaves a half-written one behind.
 *
 * With `--optional`, a failed build prints why and exits 0 (the `auto`
 * backend then uses wasm); without it, it exits 1.
 *
 * Environment: `CC` picks the compiler (default `cc`).
 *
 * @module
 */
import { fileURLToPath } from "node:url";

const SOURCE = fileURLToPath(new URL("../native/kernels.c", import.meta.url));
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

function mtime(path: string): number | null {
  try {
    return Deno.statSync(path).mtime?.getTime() ?? null;
  } catch {
    return null;
  }
}

async function build(force: boolean): Promise<string> {
  const sourceTime = mtime(SOURCE);
  if (sourceTime === null) throw new Error(`Expected the C source at ${SOURCE} but found none`);
  // This file holds the flags: a change here rebuilds too.
  const inputsTime = Math.max(sourceTime, mtime(fileURLToPath(import.meta.url)) ?? 0);
  const outputTime = mtime(OUTPUT);
  if (!force && outputTime !== null && outputTime >= inputsTime) {
    return `native: ${OUTPUT} is up to date`;
  }
  const compiler = Deno.env.get("CC") ?? "cc";
  const temporary = `${OUTPUT}.${Deno.pid}.tmp`;
  Deno.mkdirSync(new URL("../native/build/", import.meta.url), { recursive: true });
  const args = [...FLAGS, "-o", temporary, SOURCE, ...LIBS];
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
    const hint = /libopenblas/.test(stderr)
      ? " (install OpenBLAS: apt-get install libopenblas0)"
      : "";
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
