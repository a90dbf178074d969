/**
 * How every `deno task` entry point ends: a bad flag is one line naming it and exit status 2,
 * any other error one line and status 1, never a stack trace.
 *
 * @module
 */

/** A flag or value an entry point did not understand; {@linkcode runMain} exits 2 on it. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * Turns a `node:util` `parseArgs` error into a one-line {@linkcode UsageError}: its messages are
 * long and mention internals, so keep the part that names the flag (`--width: argument missing`).
 *
 * @param error What `parseArgs` threw.
 * @returns The first sentence of its message, starting with the flag where it names one.
 *
 * @example
 * ```ts
 * import { flagError } from "./run_main.ts";
 * const error = new TypeError("Option '--width <value>' argument missing");
 * console.log(flagError(error).message); // "--width: argument missing"
 * ```
 */
export function flagError(error: unknown): UsageError {
  const message = (error as Error).message.split("\n")[0].split(". ")[0];
  return new UsageError(message.replace(/^Option '(--[\w-]+)[^']*'/, "$1:"));
}

/**
 * Runs an entry point's `main` and exits with its code: a {@linkcode UsageError} exits 2 with
 * one line pointing at `--help`, any other error exits 1 with its message (no stack trace).
 *
 * @param main The command: takes `Deno.args`, returns the exit status.
 */
export async function runMain(main: (args: string[]) => Promise<number>): Promise<never> {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`error: ${error.message} (see --help)`);
      Deno.exit(2);
    }
    console.error(`error: ${(error as Error).message}`);
    Deno.exit(1);
  }
}
