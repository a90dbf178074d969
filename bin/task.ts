/**
 * How `deno task train`, `bench`, `predict`, `serve` and `experiment:depth` start: `bin/<task>.ts`
 * under the task's permission set in `deno.json`, with read access added for
 * exactly the files and folders named on the command line.
 *
 * A permission set cannot grow for one run: an `--allow-read` given with
 * `-P` replaces the set's read list, and `deno task` puts its arguments after
 * the script, where they are the script's. So this process (which imports
 * nothing but `deno.json`) starts the entry point with
 * `--allow-read=<the set's paths>,<the paths named>`: an archive in
 * `../shared` or a photo in `~/Pictures` is readable because the user named
 * it, and nothing else outside the project is.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import config from "../deno.json" with { type: "json" };

/**
 * The tasks that start here; each has a permission set of its name and a `bin/` entry point
 * named for it (`experiment:depth` starts `bin/experiment_depth.ts`).
 */
export const TASKS = ["train", "bench", "predict", "serve", "experiment:depth"] as const;

/** One of {@linkcode TASKS}. */
export type TaskName = typeof TASKS[number];

const PROJECT = new URL("../", import.meta.url);
const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i;
const URL_SCHEME = /^[a-z][a-z\d+.-]*:\/\//i;

/**
 * The arguments that may name a file or folder: every argument and flag value
 * (`--data x`, `--data=x`) that is not a flag, a number or a URL. A word such
 * as `native` is granted too; what is granted is only ever what the user typed.
 *
 * @param args The task's command line.
 * @returns Those arguments, in order.
 *
 * @example
 * ```ts
 * import { namedPaths } from "./task.ts";
 *
 * const args = ["--width", "16", "--data=../shared/a.tar.gz", "--out", "runs/x"];
 * console.log(namedPaths(args)); // ["../shared/a.tar.gz", "runs/x"]
 * ```
 */
export function namedPaths(args: readonly string[]): string[] {
  const value = (arg: string) =>
    !arg.startsWith("-") ? arg : arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : "";
  return args.map(value).filter((v) => v !== "" && !NUMBER.test(v) && !URL_SCHEME.test(v));
}

/**
 * The hosts (with their port, if the URL names one) of the http(s) URLs among
 * `args`: what a user who types `--data URL` asks the task to connect to.
 *
 * @example
 * ```ts
 * import { namedHosts } from "./task.ts";
 * console.log(namedHosts(["--data", "http://127.0.0.1:8000/c.tar.gz", "--md5", "ab"])); // ["127.0.0.1:8000"]
 * ```
 */
export function namedHosts(args: readonly string[]): string[] {
  const values = args.map((arg) => arg.startsWith("-") ? arg.slice(arg.indexOf("=") + 1) : arg);
  const hosts: string[] = [];
  for (const value of values) {
    if (!/^https?:\/\//i.test(value)) continue;
    try {
      const host = new URL(value).host;
      if (host !== "" && !hosts.includes(host)) hosts.push(host);
    } catch {
      // Not a URL after all: the entry point will say so.
    }
  }
  return hosts;
}

/** The paths a task's permission set may read, absolute (`deno.json`'s are relative to it). */
function setReads(task: TaskName): string[] {
  return config.permissions[task].read.map((path) => fileURLToPath(new URL(path, PROJECT)));
}

/**
 * The `deno` arguments that run a task's entry point with `args`: its
 * permission set, with the set's read paths and the paths `args` name as the
 * read grant, the hosts of the URLs `args` name added to its network grant
 * (`--data https://mirror.example/cifar-10-binary.tar.gz`), and no
 * permission prompts (a denied access fails at once, the same on a terminal
 * as in a script).
 *
 * @param task Which entry point.
 * @param args Its command line.
 * @returns The arguments for `Deno.execPath()`.
 * @throws {Error} If a named path holds a comma, which `--allow-read` would split.
 *
 * @example
 * ```ts
 * import { taskArgs } from "./task.ts";
 *
 * const args = taskArgs("predict", ["--model", "runs/smoke", "/tmp/cat.jpg"]);
 * console.log(args.some((a) => a.startsWith("--allow-read=") && a.endsWith(",runs/smoke,/tmp/cat.jpg"))); // true
 * ```
 */
export function taskArgs(task: TaskName, args: readonly string[]): string[] {
  const named = namedPaths(args);
  const comma = named.find((path) => path.includes(","));
  if (comma !== undefined) {
    throw new Error(
      `deno task ${task}: expected paths without commas (Deno's --allow-read splits at them) ` +
        `but found ${JSON.stringify(comma)}; rename it, or link it under a name without one`,
    );
  }
  const hosts = namedHosts(args);
  const setNet = (config.permissions[task] as { net?: string[] }).net ?? [];
  return [
    "run",
    "--no-prompt",
    `--config=${fileURLToPath(new URL("deno.json", PROJECT))}`,
    `-P=${task}`,
    `--allow-read=${[...setReads(task), ...named].join(",")}`,
    ...(hosts.length > 0 ? [`--allow-net=${[...setNet, ...hosts].join(",")}`] : []),
    fileURLToPath(new URL(`./${task.replace(":", "_")}.ts`, import.meta.url)),
    ...args,
  ];
}

function isTask(name: string | undefined): name is TaskName {
  return (TASKS as readonly (string | undefined)[]).includes(name);
}

async function main([task, ...args]: string[]): Promise<number> {
  if (!isTask(task)) {
    console.error(`error: expected a task (${TASKS.join(", ")}) but found ${task ?? "none"}`);
    return 2;
  }
  const child = new Deno.Command(Deno.execPath(), { args: taskArgs(task, args) }).spawn();
  // Ctrl-C reaches the whole process group: the entry point handles it (train
  // says how to resume), and this process waits for it to finish.
  Deno.addSignalListener("SIGINT", () => {});
  if (Deno.build.os !== "windows") {
    Deno.addSignalListener("SIGTERM", () => child.kill("SIGTERM"));
  }
  return (await child.status).code;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    Deno.exit(1);
  }
}
