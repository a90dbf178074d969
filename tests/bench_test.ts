/**
 * lib/report/bench.ts (what is measured) and lib/cli/bench_args.ts (its flags), and
 * `deno task bench` end to end; the real PyTorch peer only where ../shared and torch are.
 */
import assert from "node:assert/strict";
import { BENCH_FLAGS, BENCH_USAGE, parseBenchArgs } from "../lib/cli/bench_args.ts";
import { UsageError } from "../lib/cli/run_main.ts";
import { DEFAULT_BENCH_OPTIONS, PEER_PYTHON, randomSplit, runPeer } from "../lib/report/bench.ts";

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
  });
});

Deno.test("parseBenchArgs() rejects bad flags naming the flag", () => {
  const cases: [string[], RegExp][] = [
    [["--steps", "0"], /--steps: expected an integer >= 1 but found "0"/],
    [["--width", "wide"], /--width: expected an integer >= 1 but found "wide"/],
    [["--warmup", "-1"], /--warmup: expected an integer >= 0 but found "-1"/],
    [["--seed", "-1"], /--seed: expected an integer >= 0 but found "-1"/],
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

Deno.test("deno task bench prints one JSON line with the measurements and the machine", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "bench", "--width", "4", "--steps", "1", "--batch-size", "8"],
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
