/**
 * `deno task serve`'s flags: the run folder and the port.
 *
 * @module
 */
import { type FlagTable, formatFlags, parseFlags } from "./flags.ts";
import { DEFAULT_TOP_K } from "../predict/classify.ts";

/** The port `deno task serve` listens on unless `--port` says otherwise. */
export const DEFAULT_PORT = 8000;

/** The server's flags. */
export const SERVE_FLAGS = {
  model: {
    kind: "string",
    value: "DIR",
    required: "a run folder (from deno task train)",
    help: "run folder from deno task train (or its model/ folder)",
  },
  port: {
    kind: "int",
    value: "N",
    min: 0,
    max: 65535,
    default: String(DEFAULT_PORT),
    help: "port on 127.0.0.1; 0 picks a free one",
  },
} satisfies FlagTable;

/** `deno task serve --help`. */
export const SERVE_USAGE = `Serve a page that classifies photos in the browser with a trained model.

Usage: deno task serve --model <run folder> [--port N]

The page takes a PNG or JPEG by drag-and-drop or file picker, center-crops it to a square,
averages it down to 32x32 (as deno task predict does) and shows the top ${DEFAULT_TOP_K} classes.
Only requests for 127.0.0.1:PORT or localhost:PORT (the Host header) are answered, and only
regular files inside the run's model/ folder are sent: a symbolic link there stops the server
at startup, and is refused if it appears later.

${formatFlags(SERVE_FLAGS)}`;

/** What the server was asked to do. */
export interface ServeArgs {
  /** The run folder (or its `model/` folder). */
  model: string;
  /** Port on 127.0.0.1; 0 = any free one. */
  port: number;
}

/**
 * Parses and checks `deno task serve`'s flags.
 *
 * @param args The command line after the script name.
 * @returns What to serve, or `null` for `--help`.
 * @throws {UsageError} naming the flag that is wrong or missing.
 *
 * @example
 * ```ts
 * import { parseServeArgs } from "./serve_args.ts";
 * console.log(parseServeArgs(["--model", "runs/a"])?.port); // 8000
 * ```
 */
export function parseServeArgs(args: string[]): ServeArgs | null {
  const parsed = parseFlags(SERVE_FLAGS, args);
  if (parsed === null) return null;
  return { model: parsed.values.model, port: parsed.values.port ?? DEFAULT_PORT };
}
