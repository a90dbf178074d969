/**
 * `deno task notebook`: executes `notebooks/resnet-cifar.ipynb` in real Jupyter with the Deno
 * kernel, checks the result with `check_notebook.ts`, and only then replaces the notebook, so
 * its committed outputs always come from a complete, honest run of the committed code.
 *
 * Usage: `deno run -A tools/notebook.ts [--smoke] [--headless] [--output PATH]`
 *
 * - `--smoke`: sets `RESNET_CIFAR_SMOKE=1` (tiny run); writes to a temporary file unless
 *   `--output` is given, never over the notebook; lets the depth figure be missing while
 *   `docs/depth/results.json` is not committed (a full run requires it).
 * - the data: `$CIFAR10_DATA` if set, else this project's shared copy of the archive
 *   (`../shared/data/cifar-10-binary.tar.gz`) when there is one, passed to the notebook as
 *   `$CIFAR10_DATA`, else what the notebook does on any machine (the cache in `data/`, or the
 *   download); see {@linkcode notebookEnv}.
 * - `--headless`: runs the code cells without Jupyter (see {@linkcode runCellsHeadless}), as
 *   `deno task test` does.
 * - `--output PATH`: where to write the executed notebook. @default the notebook itself
 *
 * It also exports the headless runners that the tests use: {@linkcode runCellsHeadless} (the
 * cells once, in order, type-checked) and {@linkcode runCellSequence} (any sequence of cells,
 * re-runs included, as a kernel runs them).
 *
 * @module
 */
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { checkNotebook } from "./check_notebook.ts";
import { DEPTH_RESULTS_PATH, loadDepthResults } from "../lib/notebook/depth.ts";

/** The notebook this tool runs, relative to the repository root. */
export const NOTEBOOK = "notebooks/resnet-cifar.ipynb";

const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Seconds one cell may run under Jupyter before nbconvert gives up (training is one cell). */
const CELL_TIMEOUT_SECONDS = 3600;

/** The parts of an nbformat 4 notebook used here. */
export interface Notebook {
  cells: NotebookCell[];
  [key: string]: unknown;
}

/** A notebook cell; `source` is one string or a list of lines, as nbformat allows. */
export interface NotebookCell {
  cell_type: string;
  source: string | string[];
  metadata?: Record<string, unknown>;
  outputs?: unknown[];
  execution_count?: number | null;
}

/** The text of a cell. */
export function cellSource(cell: NotebookCell): string {
  return Array.isArray(cell.source) ? cell.source.join("") : cell.source;
}

/**
 * Makes relative module specifiers in `import` statements and `import()` calls absolute, as
 * the kernel resolves them from the notebook's folder (its working directory).
 */
export function absolutizeImports(source: string, baseUrl: URL): string {
  return source.replace(
    /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(["'])(\.\.?\/[^"']+)\2/g,
    (_, keyword: string, quote: string, specifier: string) =>
      `${keyword}${quote}${new URL(specifier, baseUrl).href}${quote}`,
  );
}

/**
 * One ES module that runs the notebook's code cells in order, for running a notebook without
 * Jupyter. Displays go to a `RecordingSink` (from `lib/notebook/display.ts`) that attributes
 * them to their cell, `console.log` lines are kept per cell too, and both are written as
 * {@linkcode RecordedOutputs} JSON to the file named by `$NOTEBOOK_OUTPUTS` at the end. A cell's
 * last expression is not displayed, as Jupyter would; the notebook shows everything it needs
 * explicitly.
 *
 * @param notebook The parsed notebook.
 * @param notebookUrl Where it lives: relative imports are resolved from its folder.
 * @returns The module's source.
 */
export function cellsToModule(notebook: Notebook, notebookUrl: URL): string {
  const parts = recorderPrelude();
  notebook.cells.forEach((cell, index) => {
    if (cell.cell_type !== "code") return;
    parts.push(
      `// ---- cell ${index}`,
      `__sink.cell = ${index};`,
      absolutizeImports(cellSource(cell), notebookUrl),
    );
  });
  parts.push(`// ---- end`, ...recorderEpilogue());
  return parts.join("\n") + "\n";
}

/**
 * The start of a module that records what the cells show: displays go to a `RecordingSink`
 * attributed to `__sink.cell`, and `console.log` lines are kept per cell as the kernel would
 * show them as the cell's stdout.
 */
function recorderPrelude(): string[] {
  const lib = new URL("../lib/notebook/display.ts", import.meta.url).href;
  return [
    `import { RecordingSink as __RecordingSink, setDisplaySink as __setDisplaySink } from "${lib}";`,
    `const __sink = new __RecordingSink({ print: true });`,
    `__setDisplaySink(__sink);`,
    `const __stdout: Record<number, string> = {};`,
    `const __steps: { cell: number; numTensors: number }[] = [];`,
    `const __log = console.log;`,
    `console.log = (...args: unknown[]) => {`,
    `  const line = args.map((a) => typeof a === "string" ? a : Deno.inspect(a)).join(" ");`,
    `  __stdout[__sink.cell] = (__stdout[__sink.cell] ?? "") + line + "\\n";`,
    `  __log(...args);`,
    `};`,
  ];
}

/** The end of a recording module: writes {@linkcode RecordedOutputs} to `$NOTEBOOK_OUTPUTS`. */
function recorderEpilogue(): string[] {
  return [
    `const __outputsPath = Deno.env.get("NOTEBOOK_OUTPUTS");`,
    `const __all = { displays: __sink.outputs, stdout: __stdout, steps: __steps };`,
    `if (__outputsPath) await Deno.writeTextFile(__outputsPath, JSON.stringify(__all));`,
  ];
}

/**
 * The names a cell declares at its top level, which a kernel keeps for later cells: imports,
 * `const`/`let`/`var` (destructuring included), functions and classes. Type-only imports and
 * type declarations are left out: they do not exist when the code runs. Top-level statements
 * start at column 0, as `deno fmt` writes them.
 *
 * @param source The cell's code.
 * @returns The names, each once, in order of appearance.
 *
 * @example
 * ```ts
 * import { topLevelNames } from "./notebook.ts";
 * const cell = 'import { a, type B, c as d } from "./x.ts";\nconst { e, f: [g] } = h;\n';
 * console.log(topLevelNames(cell)); // ["a", "d", "e", "g"]
 * ```
 */
export function topLevelNames(source: string): string[] {
  const names: string[] = [];
  for (const match of source.matchAll(/^import\s+(type\s+)?([\s\S]*?)\s+from\s+["']/gm)) {
    if (match[1] === undefined) names.push(...importedNames(match[2]));
  }
  for (const match of source.matchAll(/^(?:export\s+)?(?:const|let|var)\s+/gm)) {
    names.push(...bindingNames(patternAt(source, match.index + match[0].length)));
  }
  const declarations =
    /^(?:export\s+)?(?:async\s+)?(?:function\s*\*?|class)\s+([A-Za-z_$][\w$]*)/gm;
  for (const match of source.matchAll(declarations)) names.push(match[1]);
  return [...new Set(names)];
}

/** The local names of an import clause: `X`, `* as X`, `{ a, b as c, type T }`. */
function importedNames(clause: string): string[] {
  const names: string[] = [];
  const braces = /\{([\s\S]*)\}/.exec(clause);
  const outside = clause.replace(/\{[\s\S]*\}/, "");
  const namespace = /\*\s+as\s+([\w$]+)/.exec(outside);
  const defaultImport = /^\s*([\w$]+)\s*(?:,|$)/.exec(outside);
  if (defaultImport) names.push(defaultImport[1]);
  if (namespace) names.push(namespace[1]);
  for (const part of braces ? splitTopLevel(braces[1]) : []) {
    if (part === "" || /^type\s/.test(part)) continue;
    names.push(part.split(/\s+as\s+/).at(-1)!);
  }
  return names;
}

/** The binding pattern starting at `at`: an identifier, or a balanced `{...}` / `[...]`. */
function patternAt(source: string, at: number): string {
  if (source[at] !== "{" && source[at] !== "[") {
    const name = /^[A-Za-z_$][\w$]*/.exec(source.slice(at));
    if (name === null) throw new Error(`Expected a binding at offset ${at} but found none`);
    return name[0];
  }
  let depth = 0;
  for (let i = at; i < source.length; i++) {
    if ("{[(".includes(source[i])) depth++;
    if ("}])".includes(source[i]) && --depth === 0) return source.slice(at, i + 1);
  }
  throw new Error(`Expected the pattern at offset ${at} to close but it does not`);
}

/** The names a binding pattern binds: `a`, `{ a, b: c, d = 1, ...e }`, `[a, , [b]]`. */
function bindingNames(pattern: string): string[] {
  if (!/^[{[]/.test(pattern)) return [pattern];
  const object = pattern.startsWith("{");
  return splitTopLevel(pattern.slice(1, -1)).flatMap((element) => {
    let target = element.replace(/^\.\.\./, "");
    if (object) {
      const colon = splitTopLevel(target, ":");
      target = colon.length > 1 ? colon.slice(1).join(":") : colon[0];
    }
    target = splitTopLevel(target, "=")[0];
    return target === "" ? [] : bindingNames(target.trim());
  });
}

/** Splits at `separator` outside brackets, trimming each part. */
function splitTopLevel(text: string, separator = ","): string[] {
  const parts: string[] = [];
  let depth = 0, start = 0;
  for (let i = 0; i < text.length; i++) {
    if ("{[(".includes(text[i])) depth++;
    else if ("}])".includes(text[i])) depth--;
    else if (depth === 0 && text[i] === separator && text[i + 1] !== ">" && text[i + 1] !== "=") {
      parts.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(text.slice(start).trim());
  return parts;
}

/**
 * A cell as a module of its own, as the kernel runs a cell: its code with relative imports made
 * absolute, then its top-level names published on `globalThis` so that later cells (other
 * modules) see them, and a cell run again replaces them, as re-declaring in a kernel does.
 */
export function cellToModule(source: string, notebookUrl: URL): string {
  const names = topLevelNames(source);
  return [
    absolutizeImports(source, notebookUrl),
    `// ---- what later cells see`,
    `for (const [__name, __value] of Object.entries({ ${names.join(", ")} })) {`,
    `  Object.defineProperty(globalThis, __name, { value: __value, writable: true, configurable: true });`,
    `}`,
  ].join("\n") + "\n";
}

/** Recorded outputs by cell index, as `cellsToModule()`'s module writes them. */
export interface RecordedOutputs {
  displays: Record<string, { data: Record<string, string>; metadata?: Record<string, unknown> }[]>;
  stdout: Record<string, string>;
  /** One entry per cell run, in order (empty for `cellsToModule()`'s single pass). */
  steps?: CellStep[];
}

/** One cell run of {@linkcode runCellSequence}. */
export interface CellStep {
  /** The cell's index in the notebook. */
  cell: number;
  /** `tf.memory().numTensors` right after the cell ran. */
  numTensors: number;
}

/**
 * The notebook as Jupyter would save it after a run: every code cell numbered in order and
 * given the displays recorded for it.
 */
export function withOutputs(notebook: Notebook, outputs: RecordedOutputs): Notebook {
  let count = 0;
  return {
    ...notebook,
    cells: notebook.cells.map((cell, index) =>
      cell.cell_type !== "code" ? cell : {
        ...cell,
        execution_count: ++count,
        outputs: [
          ...(outputs.displays[index] ?? []).map(({ data, metadata }) => ({
            output_type: "display_data",
            data,
            // A PNG's display size, as Jupyter saves it from the display's metadata.
            metadata: metadata ?? {},
          })),
          ...(outputs.stdout[index]
            ? [{ output_type: "stream", name: "stdout", text: outputs.stdout[index] }]
            : []),
        ],
      }
    ),
  };
}

/**
 * Ends every cell's source with a newline. `deno fmt` (2.9) writes a cell without one
 * unchanged, yet `deno fmt --check` on a fresh cache reports it as unformatted; with the
 * newline both agree. Jupyter frontends save cells without it.
 */
export function withFinalNewlines(notebook: Notebook): Notebook {
  return {
    ...notebook,
    cells: notebook.cells.map((cell) => {
      const source = cellSource(cell);
      return source === "" || source.endsWith("\n") ? cell : {
        ...cell,
        source: (source + "\n").split(/(?<=\n)/),
      };
    }),
  };
}

/** What {@linkcode runCellsHeadless} reports. */
export interface HeadlessRun {
  /** The exit status of `deno run`. */
  code: number;
  /** Its stdout and stderr, interleaved as they came. */
  output: string;
  /** The notebook with the recorded displays as outputs (null if the run failed). */
  executed: Notebook | null;
  /** The generated module, kept on failure so the failing line can be looked up. */
  modulePath: string;
  /** The cell runs, in order, with the tensor count after each ({@linkcode runCellSequence}). */
  steps: CellStep[];
}

/**
 * Runs the notebook's code cells as one type-checked module in a `deno run` subprocess, with
 * the kernel's working directory (the notebook's folder) and all permissions, like the kernel.
 *
 * @param notebookPath The `.ipynb` file.
 * @param env Extra environment variables (e.g. `RESNET_CIFAR_SMOKE=1`).
 * @returns The exit status, the output, and the executed notebook.
 */
export async function runCellsHeadless(
  notebookPath: string,
  env: Record<string, string> = {},
): Promise<HeadlessRun> {
  const absolute = resolve(notebookPath);
  const notebook = JSON.parse(await Deno.readTextFile(absolute)) as Notebook;
  const dir = await Deno.makeTempDir({ prefix: "notebook-cells-" });
  const modulePath = join(dir, "cells.ts");
  const outputsPath = join(dir, "outputs.json");
  await Deno.writeTextFile(modulePath, cellsToModule(notebook, pathToFileURL(absolute)));
  const child = spawnCells(modulePath, outputsPath, dirname(absolute), env, "--check");
  return await finishRun(child, notebook, dir, modulePath, outputsPath);
}

/** Starts Deno on a runner's generated module, from the notebook's folder as the kernel runs it. */
function spawnCells(
  modulePath: string,
  outputsPath: string,
  cwd: string,
  env: Record<string, string>,
  check: "--check" | "--no-check",
): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", check, "--config", join(REPO_ROOT, "deno.json"), modulePath],
    cwd,
    env: { ...env, NOTEBOOK_OUTPUTS: outputsPath, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Waits for a runner's child, reads the recorded outputs and removes its folder on success. */
async function finishRun(
  child: Deno.ChildProcess,
  notebook: Notebook,
  dir: string,
  modulePath: string,
  outputsPath: string,
): Promise<HeadlessRun> {
  const [status, output] = await Promise.all([child.status, collect(child)]);
  let executed: Notebook | null = null;
  let steps: CellStep[] = [];
  if (status.code === 0) {
    const recorded = JSON.parse(await Deno.readTextFile(outputsPath)) as RecordedOutputs;
    executed = withOutputs(notebook, recorded);
    steps = recorded.steps ?? [];
    await Deno.remove(dir, { recursive: true });
  }
  return { code: status.code, output, executed, modulePath, steps };
}

/**
 * Runs code cells in any order, re-runs included, the way a kernel does: each run of a cell is
 * a module of its own ({@linkcode cellToModule}) whose top-level names later cells see and a
 * re-run replaces; a re-run replaces the cell's outputs. After each run the driver records
 * `tf.memory().numTensors`, so a test can check that re-running cells leaks nothing. The cells
 * are not type-checked here ({@linkcode runCellsHeadless} does that).
 *
 * @param notebookPath The `.ipynb` file.
 * @param sequence Indices of code cells, in the order to run them (repeats allowed).
 * @param env Extra environment variables (e.g. `RESNET_CIFAR_SMOKE=1`).
 * @returns The exit status, the output, the notebook with each cell's last outputs, the steps.
 * @throws {RangeError} If an index is not a code cell's.
 */
export async function runCellSequence(
  notebookPath: string,
  sequence: readonly number[],
  env: Record<string, string> = {},
): Promise<HeadlessRun> {
  const absolute = resolve(notebookPath);
  const notebook = JSON.parse(await Deno.readTextFile(absolute)) as Notebook;
  for (const index of sequence) {
    if (notebook.cells[index]?.cell_type !== "code") {
      throw new RangeError(`Expected cell ${index} to be a code cell but it is not`);
    }
  }
  const dir = await Deno.makeTempDir({ prefix: "notebook-steps-" });
  const modulePath = join(dir, "driver.ts");
  const outputsPath = join(dir, "outputs.json");
  const notebookUrl = pathToFileURL(absolute);
  const driver = [
    ...recorderPrelude(),
    `import { memory as __memory } from "@tensorflow/tfjs";`,
    `async function __run(cell: number, step: number, load: () => Promise<unknown>) {`,
    `  __sink.cell = cell;`,
    `  delete __sink.outputs[cell];`,
    `  delete __stdout[cell];`,
    `  try {`,
    `    await load();`,
    `  } catch (error) {`,
    `    console.error(\`cell \${cell} failed (run \${step} of the sequence)\`);`,
    `    throw error;`,
    `  }`,
    `  __steps.push({ cell, numTensors: __memory().numTensors });`,
    `}`,
  ];
  for (const [step, index] of sequence.entries()) {
    const file = `step-${step + 1}-cell-${index}.ts`;
    await Deno.writeTextFile(
      join(dir, file),
      cellToModule(cellSource(notebook.cells[index]), notebookUrl),
    );
    driver.push(`await __run(${index}, ${step + 1}, () => import("./${file}"));`);
  }
  driver.push(...recorderEpilogue());
  await Deno.writeTextFile(modulePath, driver.join("\n") + "\n");
  const child = spawnCells(modulePath, outputsPath, dirname(absolute), env, "--no-check");
  return await finishRun(child, notebook, dir, modulePath, outputsPath);
}

/** This project's shared copy of the CIFAR-10 archive, beside the repository (if there is one). */
const SHARED_ARCHIVE = join(REPO_ROOT, "..", "shared", "data", "cifar-10-binary.tar.gz");

/**
 * The environment the notebook runs in: `RESNET_CIFAR_SMOKE=1` for `smoke`, and
 * `CIFAR10_DATA` pointing at `sharedArchive` when the variable is not set already and the
 * archive exists (so a machine with the project's shared data does not download it again;
 * elsewhere the notebook finds the data as on any machine).
 *
 * @param smoke The tiny run.
 * @param sharedArchive The shared copy. @default `../shared/data/cifar-10-binary.tar.gz`
 * @returns Variables to add to the inherited environment.
 */
export function notebookEnv(
  smoke: boolean,
  sharedArchive = SHARED_ARCHIVE,
): Record<string, string> {
  const env: Record<string, string> = smoke ? { RESNET_CIFAR_SMOKE: "1" } : {};
  let shared = false;
  try {
    shared = Deno.statSync(sharedArchive).isFile;
  } catch {
    // No shared copy: the notebook finds the data itself.
  }
  if ((Deno.env.get("CIFAR10_DATA") ?? "") === "" && shared) env.CIFAR10_DATA = sharedArchive;
  return env;
}

/** Reads a child's stdout and stderr together, in arrival order. */
async function collect(child: Deno.ChildProcess): Promise<string> {
  const chunks: string[] = [];
  const decoder = () => new TextDecoderStream();
  await Promise.all([child.stdout, child.stderr].map(async (stream) => {
    for await (const chunk of stream.pipeThrough(decoder())) chunks.push(chunk);
  }));
  return chunks.join("");
}

/** Runs a command, passing its output through; throws with `hint` if it fails. */
async function run(command: string, args: string[], env: Record<string, string>, hint: string) {
  let status: Deno.CommandStatus;
  try {
    status = await new Deno.Command(command, { args, env, stdout: "inherit", stderr: "inherit" })
      .spawn().status;
  } catch (error) {
    throw new Error(`Could not start ${command}: ${(error as Error).message}. ${hint}`);
  }
  if (!status.success) {
    throw new Error(`${command} ${args.join(" ")} exited with ${status.code}. ${hint}`);
  }
}

/** Whether Jupyter already knows a kernel named `deno` (in any of its data folders). */
async function hasDenoKernel(): Promise<boolean> {
  const output = await new Deno.Command("jupyter", {
    args: ["--paths", "--json"],
    stderr: "inherit",
  })
    .output();
  if (!output.success) return false;
  const paths = JSON.parse(new TextDecoder().decode(output.stdout)) as { data?: string[] };
  return (paths.data ?? []).some((dir) => {
    try {
      return Deno.statSync(join(dir, "kernels", "deno", "kernel.json")).isFile;
    } catch {
      return false;
    }
  });
}

/** Executes the notebook with `jupyter nbconvert` into `outputPath`. */
async function runInJupyter(notebookPath: string, outputPath: string, env: Record<string, string>) {
  if (!(await hasDenoKernel())) {
    await run("deno", ["jupyter", "--install"], {}, "Is Deno on PATH?");
  }
  await run(
    "jupyter",
    [
      "nbconvert",
      "--to",
      "notebook",
      "--execute",
      `--ExecutePreprocessor.timeout=${CELL_TIMEOUT_SECONDS}`,
      "--ExecutePreprocessor.record_timing=False",
      "--output-dir",
      dirname(outputPath),
      "--output",
      basename(outputPath),
      notebookPath,
    ],
    env,
    "Needs Jupyter with nbconvert (Debian: jupyter-nbconvert python3-nbclient).",
  );
}

async function main(args: string[]): Promise<number> {
  const smoke = args.includes("--smoke");
  const headless = args.includes("--headless");
  const at = args.indexOf("--output");
  const notebookPath = join(REPO_ROOT, NOTEBOOK);
  const target = at >= 0 ? resolve(args[at + 1]) : smoke ? null : notebookPath;
  const env = notebookEnv(smoke);
  const tempDir = await Deno.makeTempDir({ prefix: "notebook-run-" });
  const outputPath = join(tempDir, "resnet-cifar.ipynb");
  const start = performance.now();
  if (headless) {
    const result = await runCellsHeadless(notebookPath, env);
    console.log(result.output);
    if (result.executed === null) {
      console.error(`The cells failed (exit ${result.code}); the module is ${result.modulePath}`);
      return 1;
    }
    await Deno.writeTextFile(outputPath, JSON.stringify(result.executed, null, 1) + "\n");
  } else {
    await runInJupyter(notebookPath, outputPath, env);
  }
  const seconds = (performance.now() - start) / 1000;
  // A smoke run checks the machinery, also before the depth experiment's results are committed;
  // the run that writes the notebook needs them.
  const optionalFigures = smoke && (await loadDepthResults()) === null ? ["depth"] : [];
  if (optionalFigures.length > 0) {
    console.log(`No ${DEPTH_RESULTS_PATH} yet: this smoke run lets the depth cell show no figure`);
  }
  const problems = checkNotebook(
    JSON.parse(await Deno.readTextFile(outputPath)),
    undefined,
    undefined,
    { optionalFigures },
  );
  if (problems.length > 0) {
    console.error(`The executed notebook (${outputPath}) fails its check:\n${problems.join("\n")}`);
    return 1;
  }
  // nbconvert keeps each cell's text as it was; formatting again keeps `deno fmt --check` clean.
  const executed = JSON.parse(await Deno.readTextFile(outputPath)) as Notebook;
  await Deno.writeTextFile(outputPath, JSON.stringify(withFinalNewlines(executed), null, 1) + "\n");
  await run("deno", ["fmt", "--config", join(REPO_ROOT, "deno.json"), outputPath], {}, "");
  const destination = target ?? outputPath;
  if (destination !== outputPath) {
    // Copy then rename: the committed notebook is never left half-written.
    await Deno.copyFile(outputPath, `${destination}.partial`);
    await Deno.rename(`${destination}.partial`, destination);
    await Deno.remove(tempDir, { recursive: true });
  }
  console.log(
    `Executed ${NOTEBOOK} in ${seconds.toFixed(0)} s; checked; written to ${destination}`,
  );
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
