/**
 * `deno task train`: the article's job headless. Parses flags, then `lib/cli/train_command.ts`
 * loads CIFAR-10, trains, prints the article's per-epoch lines, and leaves everything in a run
 * folder.
 *
 * @module
 */
import { runMain } from "../lib/cli/run_main.ts";
import { parseTrainArgs, TRAIN_USAGE } from "../lib/cli/train_args.ts";
import { explainInterrupt, trainCommand } from "../lib/cli/train_command.ts";

async function main(argv: string[]): Promise<number> {
  const args = parseTrainArgs(argv);
  if (args === null) {
    console.log(TRAIN_USAGE);
    return 0;
  }
  return await trainCommand(args);
}

if (import.meta.main) {
  explainInterrupt();
  await runMain(main);
}
