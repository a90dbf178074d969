/**
 * `deno task experiment:depth` on the command line: its flags (lib/cli/experiment_args.ts),
 * and the command itself (lib/cli/experiment_command.ts) under the task's permission set, on a
 * CIFAR-10 fixture folder of the real size.
 */
import assert from "node:assert/strict";
import {
  EXPERIMENT_FLAGS,
  EXPERIMENT_USAGE,
  type ExperimentArgs,
  parseExperimentArgs,
} from "../lib/cli/experiment_args.ts";
import { depthEpochLine } from "../lib/cli/experiment_command.ts";
import { flagForField } from "../lib/cli/flags.ts";
import { UsageError } from "../lib/cli/run_main.ts";
import { DEFAULT_DEPTH_CONFIG, type DepthResults } from "../lib/experiment/depth.ts";
import { writeCifar10Folder } from "./support/cifar10_fixture.ts";

const ROOT = new URL("..", import.meta.url);

function experimentArgs(argv: string[]): ExperimentArgs {
  const args = parseExperimentArgs(argv);
  assert.ok(args !== null, `${argv}: parsed as --help`);
  return args;
}

function assertUsageError(argv: string[], message: string): void {
  assert.throws(() => parseExperimentArgs(argv), (e: unknown) => {
    assert.ok(e instanceof UsageError, `${argv}: ${e}`);
    assert.equal((e as Error).message, message);
    return true;
  });
}

Deno.test("parseExperimentArgs() defaults to DEFAULT_DEPTH_CONFIG in runs/depth", () => {
  const args = experimentArgs([]);
  assert.deepEqual(args.config, DEFAULT_DEPTH_CONFIG);
  assert.deepEqual(args.overrides, {});
  assert.equal(args.out, "runs/depth");
  assert.equal(args.data, null);
  assert.equal(args.resume, false);
  assert.equal(args.restart, false);
});

Deno.test("parseExperimentArgs() reads every flag", () => {
  const args = experimentArgs([
    ...["--depths", "20, 32", "--epochs", "3", "--train-limit", "500", "--test-limit", "100"],
    ...["--train-eval-limit", "50", "--width", "8", "--seed", "4", "--backend", "wasm"],
    ...["--data", "x.tar.gz", "--out", "runs/d", "--resume"],
  ]);
  const expected = {
    depths: [20, 32],
    epochs: 3,
    trainLimit: 500,
    testLimit: 100,
    trainEvalLimit: 50,
    width: 8,
    seed: 4,
    backend: "wasm",
  };
  assert.deepEqual(args.config, expected);
  assert.deepEqual(args.overrides, expected);
  assert.equal(args.data, "x.tar.gz");
  assert.equal(args.out, "runs/d");
  assert.equal(args.resume, true);
});

Deno.test("parseExperimentArgs() names the flag of a bad value, with expected and found", () => {
  assertUsageError(
    ["--depths", "20,abc"],
    '--depths: expected comma-separated integers such as 20,56 but found "20,abc"',
  );
  assertUsageError(
    ["--depths", "18"],
    "--depths: Expected depths to be distinct depths 6n+2 in 8..1202 (20, 32, 44, 56, 110, ...) " +
      "but found [18]",
  );
  assertUsageError(
    ["--epochs", "0"],
    "--epochs: Expected epochs to be an integer >= 1 but found 0",
  );
  assertUsageError(
    ["--train-eval-limit", "0"],
    "--train-eval-limit: Expected trainEvalLimit to be an integer >= 1 but found 0",
  );
  assertUsageError(
    ["--backend", "tpu"],
    "--backend: Expected backend to be one of cpu, wasm, native, webgpu, auto but found tpu",
  );
  assertUsageError(
    ["--resume", "--restart"],
    "--restart: expected either --resume or --restart but found both",
  );
  assert.equal(parseExperimentArgs(["--help"]), null);
});

Deno.test("every DepthConfig field has a flag, and the usage lists each in 100 columns", () => {
  for (const field of Object.keys(DEFAULT_DEPTH_CONFIG) as (keyof typeof DEFAULT_DEPTH_CONFIG)[]) {
    assert.ok(flagForField(EXPERIMENT_FLAGS, field) !== undefined, field);
  }
  for (const name of [...Object.keys(EXPERIMENT_FLAGS), "help"]) {
    assert.match(EXPERIMENT_USAGE, new RegExp(`^  --${name}\\b`, "m"), name);
  }
  assert.match(EXPERIMENT_USAGE, /--depths LIST +depths 6n\+2, .* +\(default 20,56\)/);
  assert.ok(EXPERIMENT_USAGE.split("\n").every((line) => line.length <= 100));
});

Deno.test("depthEpochLine() shows the net, the epoch, the loss and both errors", () => {
  const record = {
    epoch: 3,
    trainLoss: 1.5,
    trainError: null,
    trainErrorAugmented: 0.5,
    testLoss: 1.4,
    testError: 0.4567,
    seconds: 12.34,
    imagesPerSecond: 250,
  };
  assert.equal(
    depthEpochLine("plain56", record, 6),
    "plain56 epoch [3/6]: train loss 1.5000, train error ?, test error 45.67% (12.3s, 250.0 img/s)",
  );
});

/** `bin/experiment_depth.ts` as `deno task experiment:depth` starts it (its permission set). */
function experimentCommand(args: string[]): Deno.Command {
  const config = JSON.parse(Deno.readTextFileSync(new URL("deno.json", ROOT)));
  const named = args.filter((_, i) => ["--data", "--out"].includes(args[i - 1]));
  const reads = [...config.permissions["experiment:depth"].read, ...named];
  return new Deno.Command(Deno.execPath(), {
    args: [
      ...["run", "--no-prompt", "-P=experiment:depth", `--allow-read=${reads}`],
      ...["bin/experiment_depth.ts", ...args],
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  });
}

Deno.test("deno task experiment:depth trains, prints its lines, and --resume of a finished one skips every net", async () => {
  const data = await Deno.makeTempDir({ prefix: "cifar10_" });
  const out = `runs/test-depth-${crypto.randomUUID().slice(0, 8)}`;
  const decoder = new TextDecoder();
  const common = [
    ...["--depths", "8", "--width", "2", "--epochs", "1", "--train-limit", "100"],
    ...["--test-limit", "20", "--train-eval-limit", "20", "--backend", "wasm"],
    ...["--data", data, "--out", out],
  ];
  try {
    await writeCifar10Folder(data);
    const first = await experimentCommand(common).output();
    assert.equal(first.code, 0, decoder.decode(first.stderr));
    const lines = decoder.decode(first.stdout);
    assert.match(lines, /^Depth experiment: plain8, resnet8 at width 2, 1 epochs each on 100 /m);
    assert.match(lines, /^\[1\/2\] plain8: [\d,]+ parameters$/m);
    assert.match(lines, /^resnet8 epoch \[1\/1\]: train loss [\d.]+, train error [\d.]+%, /m);
    assert.match(lines, /^Done in \d+s: results\.json, depth\.svg, depth\.png /m);
    const results: DepthResults = JSON.parse(
      await Deno.readTextFile(new URL(`${out}/results.json`, ROOT)),
    );
    assert.equal(results.complete, true);

    const again = await experimentCommand(common).output();
    assert.equal(again.code, 2);
    assert.match(
      decoder.decode(again.stderr),
      /^error: --out: .* already holds a depth experiment/m,
    );

    const resumed = await experimentCommand([...common, "--resume"]).output();
    assert.equal(resumed.code, 0, decoder.decode(resumed.stderr));
    const resumedLines = decoder.decode(resumed.stdout);
    assert.match(resumedLines, /^plain8: complete in .*, skipped$/m);
    assert.match(resumedLines, /^resnet8: complete in .*, skipped$/m);
    assert.doesNotMatch(resumedLines, /epoch \[/);

    const changed = await experimentCommand([...common, "--resume", "--epochs", "2"]).output();
    assert.equal(changed.code, 2);
    assert.match(
      decoder.decode(changed.stderr),
      /^error: --out: Cannot resume .*: epochs was 1, now 2 \(start it over with --restart/m,
    );
  } finally {
    await Deno.remove(new URL(out, ROOT), { recursive: true }).catch(() => {});
    await Deno.remove(data, { recursive: true });
  }
});
