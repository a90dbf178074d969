/**
 * `deno task predict`: classify photos with a trained run's model. Parses flags, then
 * `lib/cli/predict_command.ts` classifies each file; a file that cannot be classified is
 * reported and the others still are.
 *
 * @module
 */
import { parsePredictArgs, PREDICT_USAGE } from "../lib/cli/predict_args.ts";
import { predictCommand } from "../lib/cli/predict_command.ts";
import { runMain } from "../lib/cli/run_main.ts";

async function main(argv: string[]): Promise<number> {
  const args = parsePredictArgs(argv);
  if (args === null) {
    console.log(PREDICT_USAGE);
    return 0;
  }
  return await predictCommand(args);
}

if (import.meta.main) {
  await runMain(main);
}
