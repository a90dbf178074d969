/**
 * lib/report/bench.ts (what is measured) and lib/cli/bench_args.ts (its flags), and
 * `deno task bench` end to end; the real PyTorch peer only where ../shared and torch are.
 */
import assert from "node:assert/strict";
import { BENCH_FLAGS, BENCH_USAGE, parseBenchArgs } from "../lib/cli/bench_args.ts";
import { UsageError } from "../lib/cli/run_main.ts";
import {
  type BenchRun,
  DEFAULT_BENCH_OPTIONS,
  formatRun,
  measureSgemm,
  median,
  medianRun,
  PEER_PYTHON,
  randomSplit,
  runPeer,
  type SgemmGflops,
} from "../lib/report/bench.ts";
import { countFlops } from "../lib/report/flops.ts";
import { resnet18 } from "../lib/model.ts";

const ROOT = new URL("..", import.meta.url);
const PEER_ARCHIVE = new URL("../../shared/data/cifar-10-binary.tar.gz", import.meta.url).pathname;
const PEER_SCRIPT = new URL("../../shared/peer/article_torch.py", import.meta.url).pathname;

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);
const pythonMissing = !(await exists(PEER_PYTHON));

/** Why the real peer cannot run here, or null if it can: it needs ../shared and torch. */
async function peerMissing(): Promise<string | null> {
  for (const path of [PEER_ARCHIVE, PEER_SCRIPT, PEER_PYTHON]) {
    if (!(await exists(path))) return `no ${path}`;
  }
  const torch = await new Deno.Command(PEER_PYTHON, {
    args: ["-c", "import torch"],
    stdout: "null",
    stderr: "null",
  }).output();
  return torch.success ? null : `${PEER_PYTHON} cannot import torch`;
}
const peerSkipReason = await peerMissing();

Deno.test("parseBenchArgs() defaults to the article's model on auto, 5 timed steps", () => {
  const options = parseBenchArgs([]);
  assert.deepEqual(options, DEFAULT_BENCH_OPTIONS);
  assert.equal(options?.backend, "auto");
  assert.equal(options?.width, 64);
  assert.equal(options?.batchSize, 64);
  assert.equal(options?.steps, 5);
  assert.equal(options?.data, null);
  assert.equal(options?.runs, 1);
  assert.equal(options?.sgemmSize, 2048);
  assert.equal(parseBenchArgs(["--help"]), null);
  assert.match(BENCH_USAGE, /--peer/);
  for (const name of [...Object.keys(BENCH_FLAGS), "help"]) {
    assert.match(BENCH_USAGE, new RegExp(`^  --${name}\\b`, "m"), name);
  }
  assert.match(BENCH_USAGE, /^ {2}--threads N +wasm threads, 1\.\.8 +\(default: one per core\)$/m);
});

Deno.test("parseBenchArgs() reads every flag", () => {
  const options = parseBenchArgs([
    "--backend",
    "cpu",
    "--width",
    "16",
    "--batch-size",
    "32",
    "--steps",
    "3",
    "--warmup",
    "0",
    "--threads",
    "1",
    "--data",
    "a/cifar-10-binary.tar.gz",
    "--peer",
    "--peer-script",
    "p.py",
    "--peer-threads",
    "4",
    "--profile",
    "--seed",
    "9",
    "--runs",
    "3",
    "--sgemm-size",
    "0",
  ]);
  assert.deepEqual(options, {
    backend: "cpu",
    width: 16,
    batchSize: 32,
    steps: 3,
    warmupSteps: 0,
    wasmThreads: 1,
    data: "a/cifar-10-binary.tar.gz",
    peer: true,
    peerScript: "p.py",
    peerThreads: 4,
    profile: true,
    seed: 9,
    runs: 3,
    sgemmSize: 0,
  });
});

Deno.test("parseBenchArgs() rejects bad flags naming the flag", () => {
  const cases: [string[], RegExp][] = [
    [["--steps", "0"], /--steps: expected an integer >= 1 but found "0"/],
    [["--width", "wide"], /--width: expected an integer >= 1 but found "wide"/],
    [["--warmup", "-1"], /--warmup: expected an integer >= 0 but found "-1"/],
    [["--seed", "-1"], /--seed: expected an integer >= 0 but found "-1"/],
    [["--runs", "0"], /--runs: expected an integer >= 1 but found "0"/],
    [["--sgemm-size", "-1"], /--sgemm-size: expected an integer >= 0 but found "-1"/],
    [["--threads", "9"], /--threads: expected an integer in 1\.\.8 but found "9"/],
    [["--threads", "0"], /--threads: expected an integer in 1\.\.8 but found "0"/],
    [
      ["--backend", "cuda"],
      /--backend: expected one of cpu, wasm, native, webgpu, auto but found "cuda"/,
    ],
    [
      ["--peer"],
      /--peer: expected --data to name the CIFAR-10 \.tar\.gz archive .* but found no --data/,
    ],
    [["--peer", "--data", "data/"], /--peer: .* but found "data\/"/],
    [["--stpes", "3"], /--stpes/],
  ];
  for (const [argv, message] of cases) {
    assert.throws(() => parseBenchArgs(argv), (e: unknown) => {
      assert.ok(e instanceof UsageError, `${argv}: ${e}`);
      assert.match((e as Error).message, message);
      return true;
    });
  }
});

Deno.test("randomSplit() makes seeded images and labels in range", () => {
  const a = randomSplit(5, 3);
  const b = randomSplit(5, 3);
  assert.equal(a.count, 5);
  assert.equal(a.images.length, 5 * 32 * 32 * 3);
  assert.deepEqual(a.images, b.images);
  assert.ok(a.labels.every((label) => label < 10));
});

Deno.test("measureSgemm() times both libraries square and takes the faster as the limit", () => {
  const calls: number[][] = [];
  const timer: SgemmGflops = (m, n, k, library, repeats) => {
    calls.push([m, n, k, library, repeats]);
    return library === 0 ? 95.04 : 140.26;
  };
  assert.deepEqual(measureSgemm(512, timer, 2), {
    size: 512,
    repeats: 2,
    openblasGflops: 95.04,
    onednnGflops: 140.3,
    limitGflops: 140.3,
  });
  assert.deepEqual(calls, [[512, 512, 512, 0, 2], [512, 512, 512, 1, 2]]);
});

Deno.test("measureSgemm() keeps what it measured and says why a library is missing", () => {
  const noOnednn: SgemmGflops = (_m, _n, _k, library) => {
    if (library === 1) throw new Error("native rn_sgemm_gflops: built without oneDNN");
    return 80;
  };
  const one = measureSgemm(256, noOnednn);
  assert.equal(one.openblasGflops, 80);
  assert.equal(one.onednnGflops, null);
  assert.equal(one.limitGflops, 80);
  assert.equal(one.note, "oneDNN: native rn_sgemm_gflops: built without oneDNN");
  const nonsense = measureSgemm(256, () => NaN);
  assert.equal(nonsense.limitGflops, null);
  assert.match(
    nonsense.note ?? "",
    /^OpenBLAS: expected a positive GFLOP\/s but found NaN; oneDNN: /,
  );
  const absent = measureSgemm(256, "unavailable (native library without rn_sgemm_gflops)");
  assert.equal(absent.limitGflops, null);
  assert.equal(absent.note, "unavailable (native library without rn_sgemm_gflops)");
  assert.throws(() => measureSgemm(0, () => 1), {
    message: "Expected the SGEMM size to be an integer >= 1 but found 0",
  });
});

/** A run with the given figures (the rest fixed). */
function fakeRun(train: number, peerTrain: number, limit: number | null): BenchRun {
  return {
    trainImagesPerSecond: train,
    trainMsPerStep: 64_000 / train,
    inferImagesPerSecond: 3 * train,
    dataMsPerBatch: 4,
    trainGflops: train * 3.329,
    inferGflops: 3 * train * 1.111,
    sgemm: {
      size: 2048,
      repeats: 3,
      openblasGflops: limit,
      onednnGflops: null,
      limitGflops: limit,
      ...(limit === null ? { note: "oneDNN: missing" } : {}),
    },
    trainFractionOfSgemm: limit === null ? null : train * 3.329 / limit,
    peerTrainImagesPerSecond: peerTrain,
    ratio: train / peerTrain,
    peerInferImagesPerSecond: peerTrain,
    inferRatio: 3 * train / peerTrain,
  };
}

Deno.test("median() takes the middle value, or the mean of the two middle ones", () => {
  assert.equal(median([5]), 5);
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.throws(() => median([]), { message: "Expected at least one value but found none" });
});

Deno.test("medianRun() gives each figure's median, and the median of the runs' ratios", () => {
  // Ratios 2, 0.75 and 0.5: their median is 0.75, where the medians' ratio would be 20 / 20 = 1.
  const runs = [fakeRun(20, 10, 100), fakeRun(30, 40, 120), fakeRun(10, 20, null)];
  const summary = medianRun(runs);
  assert.equal(summary.trainImagesPerSecond, 20);
  assert.equal(summary.peerTrainImagesPerSecond, 20);
  assert.equal(summary.ratio, 0.75);
  assert.equal(summary.inferRatio, 2.25);
  // The limit and the fraction over the runs that measured one.
  assert.equal(summary.sgemm.limitGflops, 110);
  assert.equal(
    summary.trainFractionOfSgemm,
    Number(((20 * 3.329 / 100 + 30 * 3.329 / 120) / 2).toFixed(3)),
  );
  assert.equal(summary.sgemm.note, "oneDNN: missing");
  // One run: the median is the run.
  assert.deepEqual(medianRun([fakeRun(20, 25, 100)]), {
    ...fakeRun(20, 25, 100),
    trainMsPerStep: 3200,
    trainGflops: 66.58,
    inferGflops: 66.66,
    trainFractionOfSgemm: 0.666,
    ratio: 0.8,
    inferRatio: 2.4,
  });
});

Deno.test("formatRun() says speeds, GFLOP/s, the SGEMM limit and the fraction, the peer", () => {
  const run = {
    ...fakeRun(36, 30, 400),
    trainGflops: 119.8,
    inferGflops: 120,
    trainFractionOfSgemm: 0.3,
  };
  assert.equal(
    formatRun({ ...run, ratio: 1.2, inferRatio: 3.6 }),
    "train 36 img/s = 119.8 GFLOP/s (0.3 of SGEMM 400: OpenBLAS 400, oneDNN -), " +
      "infer 108 img/s = 120 GFLOP/s; peer 30 / 30 img/s, ratios 1.2 / 3.6",
  );
  const { peerTrainImagesPerSecond: _, ...alone } = fakeRun(36, 30, null);
  assert.match(
    formatRun(alone),
    /^train 36 img\/s = .* GFLOP\/s \(SGEMM oneDNN: missing\), infer 108 img\/s = [\d.]+ GFLOP\/s$/,
  );
});

Deno.test("deno task bench prints one JSON line with the measurements and the machine", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      ...["task", "-q", "bench", "--width", "4", "--steps", "1", "--batch-size", "8"],
      ...["--runs", "2", "--sgemm-size", "256"],
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  assert.equal(lines.length, 1, `one line on stdout, got ${lines.length}`);
  const result = JSON.parse(lines[0]);
  for (const key of ["backend", "width", "batchSize", "steps", "data", "backendDetail"]) {
    assert.ok(key in result, key);
  }
  // What auto chose depends on the machine (a GPU, a C toolchain): it must be a backend auto
  // may pick, and the one it said it picked.
  assert.ok(["webgpu", "native", "wasm"].includes(result.backend), result.backend);
  assert.match(stderr, new RegExp(`auto: picked ${result.backend}\\b`));
  assert.equal(result.width, 4);
  assert.equal(result.batchSize, 8);
  assert.equal(result.steps, 1);
  assert.equal(result.data, "synthetic");
  assert.ok(result.memory.numTensors > 0 && result.memory.rssMB > 0, JSON.stringify(result.memory));
  for (const key of ["trainImagesPerSecond", "inferImagesPerSecond", "dataMsPerBatch", "threads"]) {
    assert.ok(Number.isFinite(result[key]) && result[key] > 0, `${key} = ${result[key]}`);
  }
  // The bench task's permissions let it name the CPU (whatever this machine reports).
  assert.ok(
    result.machine.cpu !== "" && !/needs --allow/.test(result.machine.cpu),
    result.machine.cpu,
  );
  assert.ok(result.machine.cores >= 1);
  assert.equal(result.machine.deno, Deno.version.deno);
  assert.equal(result.machine.tfjs, "4.22.0");
  assert.equal(result.peerTrainImagesPerSecond, undefined);
  // Two runs, their medians at the top.
  assert.equal(result.runs.length, 2);
  const trainSpeeds = result.runs.map((r: BenchRun) => r.trainImagesPerSecond);
  assert.equal(result.trainImagesPerSecond, Number(median(trainSpeeds).toFixed(3)));
  assert.match(stderr, /bench: run 2\/2: train [\d.]+ img\/s = [\d.]+ GFLOP\/s/);
  assert.match(stderr, /bench: median of 2 runs: train /);
  // FLOPs from the model's shapes, and speeds in GFLOP/s from them.
  const model = resnet18({ width: 4 });
  const flops = countFlops(model);
  model.dispose();
  assert.equal(result.flops.trainGflopPerImage, Number((flops.trainFlops / 1e9).toPrecision(4)));
  assert.equal(
    result.flops.forwardGflopPerImage,
    Number((flops.forwardFlops / 1e9).toPrecision(4)),
  );
  assert.ok(result.trainGflops > 0 && result.inferGflops > 0, JSON.stringify(result));
  // The SGEMM limit, or why there is none (a library without the timer, or no native library).
  assert.equal(result.sgemm.size, 256);
  if (result.sgemm.limitGflops === null) {
    assert.match(result.sgemm.note, /unavailable|OpenBLAS: |oneDNN: /);
    assert.equal(result.trainFractionOfSgemm, null);
  } else {
    assert.ok(result.sgemm.limitGflops > 0, JSON.stringify(result.sgemm));
    assert.ok(result.trainFractionOfSgemm > 0, String(result.trainFractionOfSgemm));
  }
  // What decides the SGEMM speed is readable under the bench's permissions.
  // (Deno lets only --allow-all read /proc: the flags come through the peer's interpreter.)
  if (Deno.build.os === "linux" && !pythonMissing) {
    assert.ok(Array.isArray(result.machine.cpuFlags), JSON.stringify(result.machine));
  }
  assert.deepEqual(Object.keys(result.machine.openblas), ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"]);
  for (const value of Object.values(result.machine.openblas)) {
    assert.ok(value === null || !/needs --allow-env/.test(value as string), String(value));
  }
});

Deno.test("deno task bench exits 2 with a one-line message on a bad flag", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "bench", "--steps", "none"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 2, stderr);
  assert.match(stderr, /error: --steps: expected an integer >= 1 but found "none"/);
  assert.equal(new TextDecoder().decode(out.stdout), "");
});

Deno.test({
  name: "runPeer() passes the settings to the peer and reads its train img/s line" +
    (pythonMissing ? ` (skipped: no ${PEER_PYTHON})` : ""),
  ignore: pythonMissing,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const peer = `${dir}/peer.py`;
      // A stand-in with the real peer's command line and output line.
      await Deno.writeTextFile(
        peer,
        "import sys\nprint('params 1')\nprint('train img/s', 12.5 if sys.argv[1:] == " +
          "['a.tar.gz', '--width', '4', '--bench-steps', '3', '--threads', '2', '--batch', '8'] " +
          "else 0)\n",
      );
      const options = { width: 4, batchSize: 8, steps: 3, peerThreads: 2, archive: "a.tar.gz" };
      assert.equal(await runPeer({ ...options, peerScript: peer }), 12.5);
      await Deno.writeTextFile(
        peer,
        "import sys\nsys.stderr.write('no torch here')\nsys.exit(3)\n",
      );
      await assert.rejects(() => runPeer({ ...options, peerScript: peer }), {
        message: new RegExp(
          `Expected the peer \\(${PEER_PYTHON} .*peer\\.py a\\.tar\\.gz --width 4 .*\\) ` +
            `to print "train img/s X" but it exited with 3 .*stderr: no torch here`,
        ),
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "runPeer(..., 'infer') times the real peer's model in inference on the real archive" +
    (peerSkipReason === null ? "" : ` (skipped: ${peerSkipReason})`),
  ignore: peerSkipReason !== null,
  async fn() {
    const options = {
      width: 4,
      batchSize: 8,
      steps: 2,
      peerThreads: 1,
      archive: PEER_ARCHIVE,
      peerScript: PEER_SCRIPT,
    };
    const imagesPerSecond = await runPeer(options, "infer");
    assert.ok(Number.isFinite(imagesPerSecond) && imagesPerSecond > 0, String(imagesPerSecond));
    // A script without the peer's training loop marker is refused with the reason.
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${dir}/other.py`, "print('hello')\n");
      await assert.rejects(() => runPeer({ ...options, peerScript: `${dir}/other.py` }, "infer"), {
        message: /to print "infer img\/s X" but it exited with 1 .*expected the peer .* to contain/,
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
