/**
 * resnet-cifar: the article's ResNet-18 trained on CIFAR-10 with TensorFlow.js in Deno.
 *
 * The library the notebook, `deno task train`, `deno task bench`, `deno task predict` and
 * `deno task serve` are built from, one module per concern:
 *
 * - data: {@linkcode loadCifar10}, {@linkcode epochBatches}, {@linkcode limitSplit}
 * - model: {@linkcode resnet18}, {@linkcode residualBlock}, {@linkcode stageShapes}
 * - training: {@linkcode train}, {@linkcode trainEpoch}, {@linkcode evaluate}, {@linkcode makeConfig}
 * - backends: {@linkcode initBackend}
 * - weights: checkpoints, the TensorFlow.js model format, PyTorch safetensors
 * - figures: {@linkcode curvesSvg}, {@linkcode confusionSvg} and friends
 * - using a trained model: {@linkcode classifyImageFile}
 *
 * @example
 * ```ts ignore
 * import { initBackend, loadCifar10, makeConfig, train } from "./mod.ts";
 *
 * await initBackend("auto");
 * const data = await loadCifar10({ source: "../shared/data/cifar-10-binary.tar.gz" });
 * const config = makeConfig({ width: 16, trainLimit: 5000, testLimit: 1000, epochs: 1 });
 * const { model, evaluation } = await train({ config, data, runDir: "runs/smoke" });
 * console.log(`test accuracy ${(100 * evaluation.accuracy).toFixed(1)}%`);
 * model.dispose();
 * ```
 *
 * @module
 */
export * from "./io/atomic.ts";
export * from "./backends/init.ts";
export * from "./train/checkpoint.ts";
export * from "./train/config.ts";
export * from "./data.ts";
export * from "./io/download.ts";
export * from "./report/figures.ts";
export * from "./model.ts";
export * from "./io/tfjs_model.ts";
export * from "./io/png.ts";
export * from "./predict/classify.ts";
export * from "./train/rng.ts";
export * from "./io/safetensors.ts";
export * from "./io/tar.ts";
export * from "./io/torch_weights.ts";
export * from "./train.ts";
