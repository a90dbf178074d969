/**
 * `deno task bench`: times the article's ResNet-18 here (and, with `--peer`,
 * the PyTorch peer) and prints one JSON line on stdout; progress goes to stderr.
 *
 * @module
 */
import { BENCH_USAGE, parseBenchArgs } from "../lib/cli/bench_args.ts";
import { runMain } from "../lib/cli/run_main.ts";
import { runBench } from "../lib/report/bench.ts";

async function main(argv: string[]): Promise<number> {
  const options = parseBenchArgs(argv);
  if (options === null) {
    console.log(BENCH_USAGE);
    return 0;
  }
  const result = await runBench(options, (message) => console.error(message));
  console.log(JSON.stringify(result));
  return 0;
}

if (import.meta.main) {
  await runMain(main);
}
