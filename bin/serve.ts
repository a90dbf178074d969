/**
 * `deno task serve`: a page that classifies a photo in the browser with a trained run's model.
 * Parses flags, then `lib/cli/serve_command.ts` serves the page, the TensorFlow.js bundle and
 * the run's model files (nothing else) on 127.0.0.1.
 *
 * @module
 */
import { runMain } from "../lib/cli/run_main.ts";
import { parseServeArgs, SERVE_USAGE } from "../lib/cli/serve_args.ts";
import { serveCommand } from "../lib/cli/serve_command.ts";

async function main(argv: string[]): Promise<number> {
  const args = parseServeArgs(argv);
  if (args === null) {
    console.log(SERVE_USAGE);
    return 0;
  }
  return await serveCommand(args);
}

if (import.meta.main) {
  await runMain(main);
}
