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
export * from "./atomic.ts";
export * from "./backend.ts";
export * from "./checkpoint.ts";
export * from "./config.ts";
export * from "./data.ts";
export * from "./download.ts";
export * from "./figures.ts";
export * from "./model.ts";
export * from "./model_io.ts";
export * from "./png.ts";
export * from "./predict.ts";
export * from "./rng.ts";
export * from "./safetensors.ts";
export * from "./tar.ts";
export * from "./torch_weights.ts";
export * from "./train.ts";
