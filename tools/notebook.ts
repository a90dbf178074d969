/**
 * `deno task notebook`: executes `notebooks/resnet-cifar.ipynb` in real Jupyter with the Deno
 * kernel, checks the result with `check_notebook.ts`, and only then replaces the notebook, so
 * its committed outputs always come from a complete, honest run of the committed code.
 *
 * Usage: `deno run -A tools/notebook.ts [--smoke] [--headless] [--output PATH]`
 *
 * - `--smoke`: sets `RESNET_CIFAR_SMOKE=1` (tiny run); writes to a temporary file unless
 *   `--output` is given, never over the notebook.
 * - `--headless`: runs the code cells without Jupyter (see {@linkcode runCellsHeadless}), as
 *   `deno task test` does.
 * - `--output PATH`: where to write the executed notebook. @default the notebook itself
 *
 * It also exports the headless runner that the tests use.
 *
 * @module
 */
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { checkNotebook } from "./check_notebook.ts";

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
  const lib = new URL("../lib/notebook/display.ts", import.meta.url).href;
  const parts = [
    `import { RecordingSink as __RecordingSink, setDisplaySink as __setDisplaySink } from "${lib}";`,
    `const __sink = new __RecordingSink({ print: true });`,
    `__setDisplaySink(__sink);`,
    // What the kernel would show as each cell's stdout.
    `const __stdout: Record<number, string> = {};`,
    `const __log = console.log;`,
    `console.log = (...args: unknown[]) => {`,
    `  const line = args.map((a) => typeof a === "string" ? a : Deno.inspect(a)).join(" ");`,
    `  __stdout[__sink.cell] = (__stdout[__sink.cell] ?? "") + line + "\\n";`,
    `  __log(...args);`,
    `};`,
  ];
  notebook.cells.forEach((cell, index) => {
    if (cell.cell_type !== "code") return;
    parts.push(
      `// ---- cell ${index}`,
      `__sink.cell = ${index};`,
      absolutizeImports(cellSource(cell), notebookUrl),
    );
  });
  parts.push(
    `// ---- end`,
    `const __outputsPath = Deno.env.get("NOTEBOOK_OUTPUTS");`,
    `const __all = { displays: __sink.outputs, stdout: __stdout };`,
    `if (__outputsPath) await Deno.writeTextFile(__outputsPath, JSON.stringify(__all));`,
  );
  return parts.join("\n") + "\n";
}

/** Recorded outputs by cell index, as `cellsToModule()`'s module writes them. */
export interface RecordedOutputs {
  displays: Record<string, { data: Record<string, string> }[]>;
  stdout: Record<string, string>;
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
          ...(outputs.displays[index] ?? []).map(({ data }) => ({
            output_type: "display_data",
            data,
            metadata: {},
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
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--check", "--config", join(REPO_ROOT, "deno.json"), modulePath],
    cwd: dirname(absolute),
    env: { ...env, NOTEBOOK_OUTPUTS: outputsPath, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const [status, output] = await Promise.all([child.status, collect(child)]);
  let executed: Notebook | null = null;
  if (status.code === 0) {
    executed = withOutputs(notebook, JSON.parse(await Deno.readTextFile(outputsPath)));
    await Deno.remove(dir, { recursive: true });
  }
  return { code: status.code, output, executed, modulePath };
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
  const env: Record<string, string> = smoke ? { RESNET_CIFAR_SMOKE: "1" } : {};
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
  const problems = checkNotebook(JSON.parse(await Deno.readTextFile(outputPath)));
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
