/**
 * lib/cli/: the flag-table parser (flags.ts), how entry points fail (run_main.ts), and each
 * command's flags (train_args.ts, predict_args.ts, serve_args.ts; bench's are in bench_test.ts).
 */
import assert from "node:assert/strict";
import {
  fieldValues,
  flagForField,
  type FlagTable,
  formatFlags,
  parseFlags,
} from "../lib/cli/flags.ts";
import { flagError, UsageError } from "../lib/cli/run_main.ts";
import { parseTrainArgs, TRAIN_FLAGS, TRAIN_USAGE, type TrainArgs } from "../lib/cli/train_args.ts";
import { parsePredictArgs, PREDICT_USAGE } from "../lib/cli/predict_args.ts";
import { DEFAULT_PORT, parseServeArgs, SERVE_USAGE } from "../lib/cli/serve_args.ts";
import { DEFAULT_CONFIG, PRESETS } from "../lib/train/config.ts";

/** `parseTrainArgs` for a command line without --help. */
function trainArgs(argv: string[], now?: Date): TrainArgs {
  const args = parseTrainArgs(argv, now);
  assert.ok(args !== null, `${argv}: parsed as --help`);
  return args;
}

/** Asserts that `parse(argv)` throws a one-line UsageError matching `message`. */
function assertUsageError(parse: (argv: string[]) => unknown, argv: string[], message: RegExp) {
  assert.throws(() => parse(argv), (e: unknown) => {
    assert.ok(e instanceof UsageError, `${argv}: ${e}`);
    assert.match((e as Error).message, message, argv.join(" "));
    assert.ok(!(e as Error).message.includes("\n"), "one line");
    return true;
  });
}

// ------------------------------------------------------------------ flags.ts

const EXAMPLE_FLAGS = {
  name: { kind: "string", value: "NAME", field: "name", help: "a name" },
  count: { kind: "int", value: "N", min: 1, field: "count", help: "how many", default: "1" },
  port: { kind: "int", value: "N", min: 0, max: 65535, help: "a port", default: "8000" },
  offset: { kind: "int", value: "N", help: "any integer" },
  rate: { kind: "number", value: "X", help: "a rate" },
  fraction: { kind: "number", value: "X", max: 1, help: "at most one" },
  colour: { kind: "choice", value: "C", choices: ["red", "green"], help: "red | green" },
  loud: { kind: "boolean", field: "loud", help: "shout", default: "off" },
} satisfies FlagTable;

Deno.test("parseFlags() reads each kind of flag, and only the flags given", () => {
  const parsed = parseFlags(EXAMPLE_FLAGS, [
    "--name",
    "x",
    "--count=3",
    "--port",
    "0",
    "--offset",
    "-7",
    "--rate",
    "1e-3",
    "--colour",
    "green",
    "--loud",
  ]);
  assert.deepEqual(parsed, {
    values: { name: "x", count: 3, port: 0, offset: -7, rate: 0.001, colour: "green", loud: true },
    positionals: [],
  });
  assert.deepEqual(parseFlags(EXAMPLE_FLAGS, []), { values: {}, positionals: [] });
  assert.deepEqual(parseFlags(EXAMPLE_FLAGS, ["--count", "2", "--count", "5"])?.values, {
    count: 5,
  });
});

Deno.test("parseFlags() returns null for --help or -h, before checking values", () => {
  assert.equal(parseFlags(EXAMPLE_FLAGS, ["--help"]), null);
  assert.equal(parseFlags(EXAMPLE_FLAGS, ["-h", "--count", "0"]), null);
  assert.equal(parseFlags({ need: { ...EXAMPLE_FLAGS.name, required: "x" } }, ["-h"]), null);
  assertUsageError((a) => parseFlags(EXAMPLE_FLAGS, a), ["--help", "--nope"], /--nope/);
});

Deno.test("parseFlags() names the flag, what it expected and what it found", () => {
  const cases: [string[], string][] = [
    [["--count", "0"], '--count: expected an integer >= 1 but found "0"'],
    [["--count", "1.5"], '--count: expected an integer >= 1 but found "1.5"'],
    [["--count", ""], '--count: expected an integer >= 1 but found ""'],
    [["--count", " "], '--count: expected an integer >= 1 but found " "'],
    [["--count", "-1"], '--count: expected an integer >= 1 but found "-1"'],
    [["--port", "70000"], '--port: expected an integer in 0..65535 but found "70000"'],
    [["--port", "x"], '--port: expected an integer in 0..65535 but found "x"'],
    [["--offset", "two"], '--offset: expected an integer but found "two"'],
    [["--rate", "fast"], '--rate: expected a number but found "fast"'],
    [["--rate", "Infinity"], '--rate: expected a number but found "Infinity"'],
    [["--fraction", "2"], '--fraction: expected a number <= 1 but found "2"'],
    [["--colour", "blue"], '--colour: expected one of red, green but found "blue"'],
    [["--count"], "--count: argument missing"],
    [["--loud=yes"], "--loud: does not take an argument"],
    [["--cuont", "3"], "Unknown option '--cuont'"],
    [["stray"], "Unexpected argument 'stray'"],
  ];
  for (const [argv, message] of cases) {
    assertUsageError(
      (a) => parseFlags(EXAMPLE_FLAGS, a),
      argv,
      new RegExp(`^${RegExp.escape(message)}$`),
    );
  }
});

Deno.test("parseFlags() checks required flags and passes positionals through when asked", () => {
  const table = { model: { ...EXAMPLE_FLAGS.name, required: "a run folder" } } satisfies FlagTable;
  assertUsageError(
    (a) => parseFlags(table, a, { positionals: true }),
    ["a.png"],
    /^--model: expected a run folder but found none$/,
  );
  assert.deepEqual(
    parseFlags(table, ["--model", "m", "a.png", "--", "--b.png"], { positionals: true }),
    {
      values: { model: "m" },
      positionals: ["a.png", "--b.png"],
    },
  );
});

Deno.test("fieldValues() and flagForField() map flags to options fields and back", () => {
  const parsed = parseFlags(EXAMPLE_FLAGS, ["--name", "x", "--port", "80", "--loud"]);
  assert.deepEqual(fieldValues(EXAMPLE_FLAGS, parsed!.values), { name: "x", loud: true });
  assert.equal(flagForField(EXAMPLE_FLAGS, "count"), "count");
  assert.equal(flagForField(TRAIN_FLAGS, "learningRate"), "lr");
  assert.equal(flagForField(EXAMPLE_FLAGS, "nothing"), undefined);
});

Deno.test("formatFlags() lists each flag, its help and its default in columns, then --help", () => {
  const usage = formatFlags({
    count: EXAMPLE_FLAGS.count,
    loud: EXAMPLE_FLAGS.loud,
    name: { ...EXAMPLE_FLAGS.name, default: "a made-up one" },
    port: { ...EXAMPLE_FLAGS.port, help: "a port\nsecond line" },
    model: { ...EXAMPLE_FLAGS.name, required: "a run folder" },
  });
  assert.equal(
    usage,
    [
      "  --count N     how many  (default 1)",
      "  --loud        shout     (default off)",
      "  --name NAME   a name    (default: a made-up one)",
      "  --port N      a port    (default 8000)",
      "                second line",
      "  --model NAME  a name    (required)",
      "  --help        this text",
      "",
    ].join("\n"),
  );
});

Deno.test("formatFlags() moves a default that would pass 100 columns to its own line", () => {
  const usage = formatFlags({
    script: { kind: "string", value: "PATH", help: "the script", default: "x".repeat(90) },
  });
  assert.equal(
    usage,
    `  --script PATH  the script\n                 (default ${
      "x".repeat(90)
    })\n  --help         this text\n`,
  );
});

Deno.test("flagError() keeps the flag and the first sentence of a node:util message", () => {
  assert.equal(
    flagError(new TypeError("Option '--width <value>' argument missing")).message,
    "--width: argument missing",
  );
  assert.equal(
    flagError(new TypeError("Unknown option '--x'. To specify a positional argument, use '--'"))
      .message,
    "Unknown option '--x'",
  );
});

// ------------------------------------------------------------------ train_args.ts

Deno.test("parseTrainArgs() defaults to the article's settings", () => {
  const args = trainArgs([], new Date(2026, 0, 2, 3, 4, 5));
  assert.deepEqual(args.config, DEFAULT_CONFIG);
  assert.equal(args.config.epochs, 10);
  assert.equal(args.config.batchSize, 64);
  assert.equal(args.config.learningRate, 0.001);
  assert.equal(args.config.width, 64);
  assert.equal(args.out, "runs/20260102-030405");
  assert.equal(args.data, null);
  assert.equal(args.resume, false);
  assert.equal(args.restart, false);
  assert.equal(trainArgs(["--restart", "--out", "runs/a"]).restart, true);
});

Deno.test("parseTrainArgs() reads every flag", () => {
  const args = trainArgs([
    "--epochs",
    "3",
    "--batch-size",
    "32",
    "--lr",
    "0.01",
    "--arch",
    "resnet34",
    "--width",
    "16",
    "--train-limit",
    "5000",
    "--test-limit",
    "1000",
    "--seed",
    "7",
    "--backend",
    "wasm",
    "--lr-schedule",
    "onecycle",
    "--label-smoothing",
    "0.1",
    "--test-time-flip",
    "--crop-padding",
    "2",
    "--data",
    "x.tar.gz",
    "--out",
    "runs/a",
    "--resume",
  ]);
  const expected = {
    epochs: 3,
    batchSize: 32,
    learningRate: 0.01,
    arch: "resnet34",
    width: 16,
    trainLimit: 5000,
    testLimit: 1000,
    seed: 7,
    backend: "wasm",
    lrSchedule: "onecycle",
    labelSmoothing: 0.1,
    testTimeFlip: true,
    cropPadding: 2,
  };
  assert.deepEqual(args.config, expected);
  assert.deepEqual(args.overrides, expected);
  assert.equal(args.data, "x.tar.gz");
  assert.equal(args.out, "runs/a");
  assert.equal(args.resume, true);
});

Deno.test("parseTrainArgs() --preset fast sets the fast recipe, and flags override it", () => {
  const fast = trainArgs(["--preset", "fast"]).config;
  assert.deepEqual(fast, { ...DEFAULT_CONFIG, ...PRESETS.fast });
  assert.equal(fast.width, 16);
  assert.equal(fast.batchSize, 128);
  assert.equal(fast.epochs, 9);
  assert.equal(fast.lrSchedule, "onecycle");
  assert.equal(fast.labelSmoothing, 0.1);
  assert.equal(fast.testTimeFlip, true);
  assert.equal(fast.cropPadding, 2);
  const overridden = trainArgs(["--epochs", "1", "--preset", "fast", "--width", "8"]);
  assert.equal(overridden.config.epochs, 1);
  assert.equal(overridden.config.width, 8);
  assert.equal(overridden.config.batchSize, 128);
  assert.deepEqual(overridden.overrides, { ...PRESETS.fast, epochs: 1, width: 8 });
  assert.deepEqual(trainArgs(["--preset", "article"]).config, DEFAULT_CONFIG);
});

Deno.test("parseTrainArgs() rejects bad flags and values naming the flag", () => {
  const cases: [string[], RegExp][] = [
    [["--epoch", "3"], /--epoch/],
    [["--epochs"], /--epochs/],
    [["--epochs", "three"], /--epochs: expected an integer but found "three"/],
    [["--epochs", "0"], /--epochs: Expected epochs to be an integer >= 1 but found 0/],
    [["--batch-size", "2.5"], /--batch-size: expected an integer but found "2.5"/],
    [["--lr=-1"], /--lr: Expected learningRate to be a number > 0 but found -1/],
    [["--lr", "-1"], /--lr: Expected learningRate to be a number > 0 but found -1/],
    [["--lr", "fast"], /--lr: expected a number but found "fast"/],
    [["--width", "-4"], /--width: Expected width to be an integer in 1\.\.1024 but found -4/],
    [
      ["--width", "1000000"],
      /^--width: Expected width to be an integer in 1\.\.1024 but found 1000000 \(1024 is 16x the article's width: 2\.9 billion weights, 34 GB with Adam's state\)$/,
    ],
    [["--crop-padding", "17"], /--crop-padding: Expected cropPadding to be an integer in 0\.\.16/],
    [["--train-limit", "0"], /--train-limit: Expected trainLimit/],
    [["--seed", "-1"], /--seed: Expected seed to be an integer in 0\.\.4294967295 but found -1/],
    [
      ["--seed", "1e20"],
      /^--seed: Expected seed to be an integer in 0\.\.4294967295 but found 100000000000000000000 \(2\^32 - 1, as NumPy and PyTorch seeds\)$/,
    ],
    [
      ["--backend", "cuda"],
      /--backend: Expected backend to be one of cpu, wasm, native, webgpu, auto but found cuda/,
    ],
    [["--resume"], /--resume: expected --out/],
    [["--restart"], /^--restart: expected --out naming the run folder to start over$/],
    [
      ["--restart", "--resume", "--out", "runs/a"],
      /^--restart: expected either --resume or --restart but found both$/,
    ],
    [["--preset", "quick"], /--preset: expected one of article, fast but found "quick"/],
    [
      ["--lr-schedule", "cosine"],
      /--lr-schedule: Expected lrSchedule to be one of constant, onecycle but found cosine/,
    ],
    [
      ["--label-smoothing", "1"],
      /--label-smoothing: Expected labelSmoothing to be a number in \[0, 1\) but found 1/,
    ],
    [["--label-smoothing", "some"], /--label-smoothing: expected a number but found "some"/],
    [["--md5", "abc", "--data", "http://x/a.tgz"], /--md5: expected 32 hexadecimal digits/],
    [["--md5", "0123456789abcdef0123456789abcdef"], /--md5: expected together with --data/],
    [["stray"], /stray/],
  ];
  for (const [argv, message] of cases) assertUsageError(parseTrainArgs, argv, message);
});

Deno.test("parseTrainArgs() --arch picks the network, and a bad one lists the valid ones", () => {
  assert.equal(trainArgs([]).config.arch, "resnet18");
  const cifar = trainArgs(["--arch", "resnet56"]);
  assert.equal(cifar.config.arch, "resnet56");
  assert.equal(cifar.config.width, 16, "He et al.'s width unless --width is given");
  assert.deepEqual(cifar.overrides, { arch: "resnet56" });
  assert.equal(trainArgs(["--arch", "plain20", "--width", "32"]).config.width, 32);
  assert.equal(trainArgs(["--preset", "fast", "--arch", "resnet34"]).config.width, 16);
  assertUsageError(
    parseTrainArgs,
    ["--arch", "resnet50x"],
    /^--arch: Expected arch to be one of resnet18, resnet34, plain18, plain34, resnet20, .* but found "resnet50x"$/,
  );
});

Deno.test("parseTrainArgs() returns null for --help", () => {
  assert.equal(parseTrainArgs(["--help"]), null);
  assert.equal(parseTrainArgs(["-h"]), null);
});

Deno.test("every TrainConfig field has a flag, so a ConfigError can always name one", () => {
  for (const field of Object.keys(DEFAULT_CONFIG) as (keyof typeof DEFAULT_CONFIG)[]) {
    assert.ok(flagForField(TRAIN_FLAGS, field) !== undefined, field);
  }
});

Deno.test("TRAIN_USAGE lists every flag with the article's defaults", () => {
  for (const name of [...Object.keys(TRAIN_FLAGS), "help"]) {
    assert.match(TRAIN_USAGE, new RegExp(`^  --${name}\\b`, "m"), name);
  }
  assert.match(TRAIN_USAGE, /--epochs N +passes over the training set +\(default 10\)/);
  assert.match(
    TRAIN_USAGE,
    /--lr X +Adam learning rate \(one-cycle: its peak\) +\(default 0\.001\)/,
  );
  assert.match(
    TRAIN_USAGE,
    /--backend NAME +cpu \| wasm \| native \| webgpu \| auto +\(default auto\)/,
  );
  assert.ok(TRAIN_USAGE.split("\n").every((line) => line.length <= 100));
});

Deno.test("deno task train exits 2 with a one-line message on a bad flag, before any work", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-P=train", "bin/train.ts", "--width", "wide", "--out", "runs/never"],
    cwd: new URL("..", import.meta.url),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 2, stderr);
  assert.match(stderr, /error: --width: expected an integer but found "wide"/);
  await assert.rejects(Deno.stat(new URL("../runs/never", import.meta.url)));
});

// ------------------------------------------------------------------ predict_args.ts, serve_args.ts

Deno.test("parsePredictArgs() reads the flags and the image files", () => {
  assert.deepEqual(parsePredictArgs(["--model", "runs/a", "a.png", "b.jpg"]), {
    model: "runs/a",
    files: ["a.png", "b.jpg"],
    top: 3,
    json: false,
    backend: "wasm",
  });
  assert.deepEqual(
    parsePredictArgs(["--top", "2", "a.png", "--json", "--backend", "cpu", "--model", "m"]),
    { model: "m", files: ["a.png"], top: 2, json: true, backend: "cpu" },
  );
  assert.equal(parsePredictArgs(["--help"]), null);
  assert.match(PREDICT_USAGE, /^ {2}--top N +classes to show per image +\(default 3\)$/m);
  assert.match(PREDICT_USAGE, /\n\nExit status: 0 if every image was classified/);
});

Deno.test("parsePredictArgs() names the flag that is wrong", () => {
  const cases: [string[], RegExp][] = [
    [["a.png"], /^--model: expected a run folder \(from deno task train\) but found none$/],
    [["--model", "m"], /^expected at least one image file after the flags but found none$/],
    [["--model", "m", "--top", "0", "a.png"], /^--top: expected an integer >= 1 but found "0"$/],
    [["--model", "m", "--top", "-1", "a.png"], /^--top: expected an integer >= 1 but found "-1"$/],
    [
      ["--model", "m", "--backend", "gpu", "a.png"],
      /^--backend: expected one of cpu, wasm, native, webgpu, auto but found "gpu"$/,
    ],
    [["--model", "m", "--colour", "a.png"], /^Unknown option '--colour'$/],
  ];
  for (const [argv, message] of cases) assertUsageError(parsePredictArgs, argv, message);
});

Deno.test("parseServeArgs() reads --model and --port, and names the flag that is wrong", () => {
  assert.deepEqual(parseServeArgs(["--model", "runs/a"]), { model: "runs/a", port: DEFAULT_PORT });
  assert.deepEqual(parseServeArgs(["--model", "m", "--port", "0"]), { model: "m", port: 0 });
  assert.equal(parseServeArgs(["--help", "--port", "70000"]), null);
  assert.match(
    SERVE_USAGE,
    /^ {2}--port N +port on 127\.0\.0\.1; 0 picks a free one +\(default 8000\)$/m,
  );
  const cases: [string[], RegExp][] = [
    [[], /^--model: expected a run folder \(from deno task train\) but found none$/],
    [
      ["--model", "m", "--port", "70000"],
      /^--port: expected an integer in 0\.\.65535 but found "70000"$/,
    ],
    [
      ["--model", "m", "--port", "-1"],
      /^--port: expected an integer in 0\.\.65535 but found "-1"$/,
    ],
    [["--model", "m", "--port", ""], /^--port: expected an integer in 0\.\.65535 but found ""$/],
    [["--model", "m", "stray"], /^Unexpected argument 'stray'$/],
  ];
  for (const [argv, message] of cases) assertUsageError(parseServeArgs, argv, message);
});

Deno.test("parseTrainArgs() takes --md5 for a local archive as for a URL", () => {
  const md5 = "c32a1d4ab5d03f1284b67883e8d87530";
  for (const data of ["../shared/data/cifar-10-binary.tar.gz", "https://mirror.example/c.tar.gz"]) {
    const args = parseTrainArgs(["--md5", md5, "--data", data]);
    assert.equal(args?.md5, md5);
    assert.equal(args?.data, data);
  }
});
