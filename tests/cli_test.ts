import assert from "node:assert/strict";
import { parseTrainArgs, UsageError } from "../lib/cli/flags.ts";
import { DEFAULT_CONFIG, PRESETS } from "../lib/train/config.ts";

Deno.test("parseTrainArgs() defaults to the article's settings", () => {
  const args = parseTrainArgs([], new Date(2026, 0, 2, 3, 4, 5));
  assert.deepEqual(args.config, DEFAULT_CONFIG);
  assert.equal(args.config.epochs, 10);
  assert.equal(args.config.batchSize, 64);
  assert.equal(args.config.learningRate, 0.001);
  assert.equal(args.config.width, 64);
  assert.equal(args.out, "runs/20260102-030405");
  assert.equal(args.data, null);
  assert.equal(args.resume, false);
});

Deno.test("parseTrainArgs() reads every flag", () => {
  const args = parseTrainArgs([
    "--epochs",
    "3",
    "--batch-size",
    "32",
    "--lr",
    "0.01",
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
  const fast = parseTrainArgs(["--preset", "fast"]).config;
  assert.deepEqual(fast, { ...DEFAULT_CONFIG, ...PRESETS.fast });
  assert.equal(fast.width, 16);
  assert.equal(fast.batchSize, 128);
  assert.equal(fast.epochs, 5);
  assert.equal(fast.lrSchedule, "onecycle");
  assert.equal(fast.labelSmoothing, 0.1);
  assert.equal(fast.testTimeFlip, true);
  assert.equal(fast.cropPadding, 2);
  const overridden = parseTrainArgs(["--epochs", "1", "--preset", "fast", "--width", "8"]);
  assert.equal(overridden.config.epochs, 1);
  assert.equal(overridden.config.width, 8);
  assert.equal(overridden.config.batchSize, 128);
  assert.deepEqual(overridden.overrides, { ...PRESETS.fast, epochs: 1, width: 8 });
  assert.deepEqual(parseTrainArgs(["--preset", "article"]).config, DEFAULT_CONFIG);
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
    [["--width", "-4"], /--width: Expected width to be an integer >= 1/],
    [["--train-limit", "0"], /--train-limit: Expected trainLimit/],
    [["--seed", "-1"], /--seed: Expected seed to be an integer >= 0 but found -1/],
    [
      ["--backend", "cuda"],
      /--backend: Expected backend to be one of cpu, wasm, native, webgpu, auto but found cuda/,
    ],
    [["--resume"], /--resume: expected --out/],
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
    [["stray"], /stray/],
  ];
  for (const [argv, message] of cases) {
    assert.throws(() => parseTrainArgs(argv), (e: unknown) => {
      assert.ok(e instanceof UsageError, `${argv}: ${e}`);
      assert.match((e as Error).message, message);
      assert.ok(!(e as Error).message.includes("\n"), "one line");
      return true;
    });
  }
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
