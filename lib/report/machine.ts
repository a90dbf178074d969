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
 * {@linkcode machineInfo} as one line: `AMD EPYC ..., 2 logical cores, linux-x86_64, Deno 2.9.6,
 * TensorFlow.js 4.22.0`.
 */
export function describeMachine(info: MachineInfo = machineInfo()): string {
  return `${info.cpu}, ${info.cores} logical cores, ${info.os}, Deno ${info.deno}, ` +
    `TensorFlow.js ${info.tfjs}`;
}
