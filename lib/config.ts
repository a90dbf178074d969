/**
 * The one training configuration, with the article's settings as defaults.
 *
 * @module
 */
import type { BackendName } from "./backend.ts";

/** Everything a training run depends on. Functions take it as an argument; nothing reads a global. */
export interface TrainConfig {
  /** Passes over the training set. @default 10 (the article) */
  epochs: number;
  /** Images per optimiser step. @default 64 (the article's DataLoader) */
  batchSize: number;
  /** Adam's step size. @default 0.001 (the article) */
  learningRate: number;
  /** Channels of ResNet-18's stem; stages use 1x, 2x, 4x, 8x. @default 64 (the article) */
  width: number;
  /** Train on a class-balanced subset of this many images; null = all 50,000. @default null */
  trainLimit: number | null;
  /** Evaluate on a class-balanced subset of this many images; null = all 10,000. @default null */
  testLimit: number | null;
  /** Seeds the weights, the subset, the shuffling and the augmentation. @default 0 */
  seed: number;
  /** TensorFlow.js backend. @default "auto" */
  backend: BackendName;
}

/** The article's settings: ResNet-18, Adam(lr=0.001), batch 64, 10 epochs. */
export const DEFAULT_CONFIG: Readonly<TrainConfig> = Object.freeze({
  epochs: 10,
  batchSize: 64,
  learningRate: 0.001,
  width: 64,
  trainLimit: null,
  testLimit: null,
  seed: 0,
  backend: "auto",
});

const BACKENDS = ["cpu", "wasm", "webgpu", "auto"] as const;

/**
 * Fills in defaults and checks every field, naming the first one that is wrong.
 *
 * @param partial Fields to override.
 * @returns A complete, validated config.
 * @throws {RangeError} e.g. `Expected epochs to be an integer >= 1 but found 0`.
 *
 * @example
 * ```ts
 * import { makeConfig } from "./config.ts";
 * console.log(makeConfig({ width: 16 }).batchSize); // 64
 * ```
 */
export function makeConfig(partial: Partial<TrainConfig> = {}): TrainConfig {
  const config: TrainConfig = { ...DEFAULT_CONFIG, ...partial };
  const positiveInt = (name: keyof TrainConfig, value: unknown, nullable = false) => {
    if (nullable && value === null) return;
    if (!Number.isInteger(value) || (value as number) < 1) {
      throw new RangeError(`Expected ${name} to be an integer >= 1 but found ${value}`);
    }
  };
  positiveInt("epochs", config.epochs);
  positiveInt("batchSize", config.batchSize);
  positiveInt("width", config.width);
  positiveInt("trainLimit", config.trainLimit, true);
  positiveInt("testLimit", config.testLimit, true);
  if (!Number.isInteger(config.seed) || config.seed < 0) {
    throw new RangeError(`Expected seed to be an integer >= 0 but found ${config.seed}`);
  }
  if (!(Number.isFinite(config.learningRate) && config.learningRate > 0)) {
    throw new RangeError(
      `Expected learningRate to be a number > 0 but found ${config.learningRate}`,
    );
  }
  if (!(BACKENDS as readonly string[]).includes(config.backend)) {
    throw new RangeError(
      `Expected backend to be one of ${BACKENDS.join(", ")} but found ${config.backend}`,
    );
  }
  return config;
}
