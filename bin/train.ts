/**
 * `deno task train`: the article's job headless. Parses flags, loads CIFAR-10, trains,
 * prints the article's per-epoch lines, and leaves everything in a run folder.
 *
 * @module
 */
import { initBackend } from "../lib/backends/init.ts";
import { parseTrainArgs, runMain, TRAIN_USAGE, UsageError } from "../lib/cli/flags.ts";
import { makeConfig, type TrainConfig } from "../lib/train/config.ts";
import { loadCifar10 } from "../lib/data.ts";
import { writeTextFileAtomic } from "../lib/io/atomic.ts";
import { confusionSvg, curvesSvg, perClassSvg } from "../lib/report/figures.ts";
import { formatDuration, ProgressLine } from "../lib/report/progress.ts";
import { NonFiniteLossError, train } from "../lib/train.ts";

async function main(argv: string[]): Promise<number> {
  const args = parseTrainArgs(argv);
  if (args.help) {
    console.log(TRAIN_USAGE);
    return 0;
  }
  let config: TrainConfig = args.config;
  if (args.resume) {
    let saved: TrainConfig;
    try {
      saved = JSON.parse(await Deno.readTextFile(`${args.out}/config.json`));
    } catch (error) {
      throw new UsageError(
        `--resume: expected a run folder with config.json at ${args.out}: ${
          (error as Error).message
        }`,
      );
    }
    config = makeConfig({ ...saved, ...args.overrides });
  }
  await checkWritable(args.out);
  const backend = await initBackend(config.backend, { log: console.log });
  console.log(`Backend: ${backend.name} (${backend.detail})`);

  const progress = new ProgressLine(Deno.stdout);
  const data = await loadCifar10({
    source: args.data ?? undefined,
    md5: args.md5 ?? undefined,
    log: console.log,
    onProgress: ({ receivedBytes, totalBytes }) =>
      progress.update(
        `Downloading CIFAR-10: ${(receivedBytes / 2 ** 20).toFixed(1)} MiB` +
          (totalBytes ? ` of ${(totalBytes / 2 ** 20).toFixed(1)} MiB` : ""),
        receivedBytes === totalBytes,
      ),
  });
  progress.done();
  console.log(
    `Data: ${config.trainLimit ?? data.train.count} training, ${
      config.testLimit ?? data.test.count
    } test images; run folder ${args.out}${args.resume ? " (resuming)" : ""}`,
  );
  console.log(`Config: ${JSON.stringify(config)}`);

  try {
    const result = await train({
      config,
      data,
      runDir: args.out,
      resume: args.resume,
      callbacks: {
        onBatchEnd: (p) =>
          progress.update(
            `Epoch ${p.epoch}/${p.epochs} ${
              progress.bar(p.batch / p.batches)
            } ${p.batch}/${p.batches}` +
              ` loss ${p.loss.toFixed(4)} ${p.imagesPerSecond.toFixed(1)} img/s ETA ${
                formatDuration(p.etaSeconds)
              }`,
            p.batch === p.batches,
          ),
        onEpochEnd: async (r) => {
          progress.done();
          const history = JSON.parse(await Deno.readTextFile(`${args.out}/history.json`));
          await writeTextFileAtomic(`${args.out}/curves.svg`, curvesSvg(history));
          // The article prints `Epoch [e/E], Loss: ...`; we add the test figures and the speed.
          console.log(
            `Epoch [${r.epoch}/${config.epochs}], Loss: ${r.trainLoss.toFixed(4)}, ` +
              `Train Accuracy: ${(100 * r.trainAccuracy).toFixed(2)}%, Test Loss: ${
                r.testLoss.toFixed(4)
              }, Test Accuracy: ${(100 * r.testAccuracy).toFixed(2)}%, ` +
              `Time: ${r.seconds.toFixed(1)}s, ${r.imagesPerSecond.toFixed(1)} img/s`,
          );
        },
      },
    });
    const { confusion, perClassAccuracy } = result.evaluation;
    await writeTextFileAtomic(
      `${args.out}/confusion.svg`,
      confusionSvg(confusion, data.classNames),
    );
    await writeTextFileAtomic(
      `${args.out}/per_class.svg`,
      perClassSvg(perClassAccuracy, data.classNames),
    );
    console.log(
      `Test Loss: ${result.evaluation.loss.toFixed(4)}, Test Accuracy: ${
        (100 * result.evaluation.accuracy).toFixed(2)
      }% on ${result.evaluation.count} images. Model, checkpoint and history in ${args.out}`,
    );
    result.model.dispose();
  } catch (error) {
    progress.done();
    if (error instanceof NonFiniteLossError) {
      console.error(
        `${error.message}. The last good checkpoint in ${args.out} is kept; ` +
          `try a lower --lr and --resume, or start again.`,
      );
      return 3;
    }
    throw error;
  }
  return 0;
}

/** Fails before any work when the task's permissions do not cover the run folder. */
async function checkWritable(out: string): Promise<void> {
  const status = await Deno.permissions.query({ name: "write", path: out });
  if (status.state !== "granted") {
    throw new UsageError(
      `--out: no write permission for ${out}; deno task train may write only under ./runs and ./data ` +
        `(or run: deno run -P=train --allow-write=${out} bin/train.ts ...)`,
    );
  }
}

if (import.meta.main) {
  Deno.addSignalListener("SIGINT", () => {
    console.error(
      "\nInterrupted. Completed epochs are checkpointed; continue with --resume --out <run folder>.",
    );
    Deno.exit(130);
  });
  await runMain(main);
}
