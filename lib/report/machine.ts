/**
 * The machine a figure was measured on: CPU model, cores, OS and the versions
 * of Deno, V8 and TensorFlow.js. The bench result and the notebook's summary
 * both say it, from this one description.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import os from "node:os";

/** The machine and software a measurement was made on. */
export interface MachineInfo {
  cpu: string;
  cores: number;
  os: string;
  deno: string;
  v8: string;
  tfjs: string;
}

/**
 * The CPU model: `/proc/cpuinfo`'s `model name` where it can be read (Linux),
 * else what `os.cpus()` reports when `--allow-sys=cpus` is granted, else "unknown".
 */
function cpuModel(): string {
  const readable = Deno.permissions.querySync({ name: "read", path: "/proc/cpuinfo" }).state;
  if (readable === "granted") {
    try {
      const match = Deno.readTextFileSync("/proc/cpuinfo").match(/^model name\s*:\s*(.+)$/m);
      if (match) return match[1].trim();
    } catch {
      // Not Linux: ask the OS below.
    }
  }
  const permission = Deno.permissions.querySync({ name: "sys", kind: "cpus" }).state;
  if (permission !== "granted") return "unknown CPU (needs --allow-sys=cpus)";
  return os.cpus()[0]?.model?.trim() || "unknown CPU";
}

/**
 * The machine a measurement ran on.
 *
 * @returns CPU model, logical cores, OS/arch and the Deno, V8 and TensorFlow.js versions.
 *
 * @example
 * ```ts
 * import { machineInfo } from "./machine.ts";
 * console.log(machineInfo().cores >= 1); // true
 * ```
 */
export function machineInfo(): MachineInfo {
  return {
    cpu: cpuModel(),
    cores: globalThis.navigator?.hardwareConcurrency ?? 1,
    os: `${Deno.build.os}-${Deno.build.arch}`,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    tfjs: tf.version.tfjs,
  };
}

/**
 * The CPU features SGEMM speed depends on: AVX2 and FMA (OpenBLAS's Haswell kernels), AVX-512
 * and its BF16 and AMX extensions (what oneDNN's JIT picks up).
 */
export const CPU_FLAGS = ["avx2", "fma", "avx512f", "avx512_bf16", "amx_tile"] as const;

/**
 * Which of {@linkcode CPU_FLAGS} a CPU has, from the text of its `/proc/cpuinfo` (Deno 2 lets
 * only `--allow-all` read `/proc`, so the caller says how it got the text).
 *
 * @param cpuinfo The contents of `/proc/cpuinfo`.
 * @returns The flags present on the first processor's `flags` line, in {@linkcode CPU_FLAGS}'s
 *   order; `null` if the text has no such line.
 *
 * @example
 * ```ts
 * import { parseCpuFlags } from "./machine.ts";
 * console.log(parseCpuFlags("processor\t: 0\nflags\t\t: fpu avx2 fma avx512f\n")); // ["avx2", "fma", "avx512f"]
 * ```
 */
export function parseCpuFlags(cpuinfo: string): string[] | null {
  const match = cpuinfo.match(/^flags\s*:\s*(.*)$/m);
  if (match === null) return null;
  const present = new Set(match[1].trim().split(/\s+/));
  return CPU_FLAGS.filter((flag) => present.has(flag));
}

/** The environment variables that choose OpenBLAS's kernels and blocking for this machine. */
export const OPENBLAS_VARIABLES = ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"] as const;

/**
 * What the environment sets {@linkcode OPENBLAS_VARIABLES} to: OpenBLAS reads them when it
 * loads, so they belong beside any SGEMM figure.
 *
 * @returns Each variable's value; `null` where it is unset, or "unknown (needs --allow-env=NAME)"
 *   where this process may not read it.
 *
 * @example
 * ```ts
 * import { openblasSettings } from "./machine.ts";
 * console.log(Object.keys(openblasSettings())); // ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"]
 * ```
 */
export function openblasSettings(): Record<typeof OPENBLAS_VARIABLES[number], string | null> {
  const read = (variable: string) =>
    Deno.permissions.querySync({ name: "env", variable }).state === "granted"
      ? Deno.env.get(variable) ?? null
      : `unknown (needs --allow-env=${variable})`;
  return {
    OPENBLAS_CORETYPE: read("OPENBLAS_CORETYPE"),
    OPENBLAS_L2_SIZE: read("OPENBLAS_L2_SIZE"),
  };
}

/**
 * {@linkcode machineInfo} as one line: `AMD EPYC ..., 2 logical cores, linux-x86_64, Deno 2.9.6,
 * TensorFlow.js 4.22.0`.
 */
export function describeMachine(info: MachineInfo = machineInfo()): string {
  return `${info.cpu}, ${info.cores} logical cores, ${info.os}, Deno ${info.deno}, ` +
    `TensorFlow.js ${info.tfjs}`;
}
