/**
 * `deno task experiment:depth`: plain nets and ResNets of several depths trained on CIFAR-10
 * with one recipe (He et al. 2015, Fig. 6). Parses flags, then `lib/cli/experiment_command.ts`
 * runs the experiment and leaves its results, figure and run folders in `--out`.
 *
 * @module
 */
import { EXPERIMENT_USAGE, parseExperimentArgs } from "../lib/cli/experiment_args.ts";
import { experimentCommand } from "../lib/cli/experiment_command.ts";
import { runMain } from "../lib/cli/run_main.ts";
import { explainInterrupt } from "../lib/cli/train_command.ts";

async function main(argv: string[]): Promise<number> {
  const args = parseExperimentArgs(argv);
  if (args === null) {
    console.log(EXPERIMENT_USAGE);
    return 0;
  }
  return await experimentCommand(args);
}

if (import.meta.main) {
  explainInterrupt("experiment folder");
  await runMain(main);
}
