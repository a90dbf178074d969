/**
 * What a checkpoint holds besides tensors (epoch, RNG state, history, config), and the check
 * of every field when it is read back: a checkpoint is trusted only once each field has the
 * type and the range the trainer writes.
 *
 * @module
 */
import { ConfigError, makeConfig, type TrainConfig } from "./config.ts";
import type { RngState } from "./rng.ts";

/** One epoch's figures, as `history.json` records them. */
export interface EpochRecord {
  epoch: number;
  trainLoss: number;
  trainAccuracy: number;
  testLoss: number;
  testAccuracy: number;
  seconds: number;
  imagesPerSecond: number;
}

/** What a checkpoint holds besides tensors. */
export interface CheckpointState {
  /** Epochs completed (1-based count). */
  epoch: number;
  rngState: RngState;
  /** One record per completed epoch: `history.length === epoch`. */
  history: EpochRecord[];
  config: TrainConfig;
}

/** The figures of an {@linkcode EpochRecord} besides its epoch number. */
const RECORD_FIGURES = [
  "trainLoss",
  "trainAccuracy",
  "testLoss",
  "testAccuracy",
  "seconds",
  "imagesPerSecond",
] as const;

/**
 * Parses and checks a checkpoint's state JSON: `epoch` an integer >= 1, `rngState` four 32-bit
 * words, `history` one complete record per epoch (numbered 1, 2, ...), `config` a valid
 * {@linkcode TrainConfig}.
 *
 * @param json The state as the checkpoint's metadata stores it.
 * @param source The checkpoint file, for messages.
 * @returns The state, every field checked.
 * @throws {Error} naming the file, the field, what was expected and what was found.
 *
 * @example
 * ```ts
 * import { parseCheckpointState } from "./checkpoint_state.ts";
 * try {
 *   parseCheckpointState('{"epoch": 1, "rngState": [1, 2, 3, 4], "history": "oops"}', "c");
 * } catch (error) {
 *   console.log((error as Error).message);
 *   // Expected "history" in the state of c to be an array of 1 epoch record(s) but found "oops"
 * }
 * ```
 */
export function parseCheckpointState(json: string, source: string): CheckpointState {
  let state: unknown;
  try {
    state = JSON.parse(json);
  } catch (error) {
    throw new Error(`Expected the state in ${source} to be JSON: ${(error as Error).message}`);
  }
  if (!isObject(state)) {
    throw new Error(`Expected the state in ${source} to be an object but found ${show(state)}`);
  }
  const where = (field: string) => `"${field}" in the state of ${source}`;
  const { epoch, rngState, history, config } = state;
  if (!(Number.isSafeInteger(epoch) && (epoch as number) >= 1)) {
    throw new Error(`Expected ${where("epoch")} to be an integer >= 1 but found ${show(epoch)}`);
  }
  if (!isRngState(rngState)) {
    throw new Error(
      `Expected ${where("rngState")} to be 4 integers in 0..2^32-1 but found ${show(rngState)}`,
    );
  }
  return {
    epoch: epoch as number,
    rngState,
    history: checkHistory(history, epoch as number, where("history")),
    config: checkConfig(config, where("config")),
  };
}

function checkHistory(history: unknown, epochs: number, where: string): EpochRecord[] {
  if (!Array.isArray(history) || history.length !== epochs) {
    throw new Error(
      `Expected ${where} to be an array of ${epochs} epoch record(s) but found ${
        Array.isArray(history) ? `${history.length} record(s)` : show(history)
      }`,
    );
  }
  history.forEach((record, i) => {
    const problem = !isObject(record)
      ? `found ${show(record)}`
      : record.epoch !== i + 1
      ? `its epoch is ${show(record.epoch)}`
      : RECORD_FIGURES.filter((f) => !Number.isFinite(record[f])).map((f) =>
        `its ${f} is ${show(record[f])}`
      )[0];
    if (problem !== undefined) {
      throw new Error(
        `Expected record ${i} of ${where} to be epoch ${
          i + 1
        }'s figures (finite numbers) but ${problem}`,
      );
    }
  });
  return history as EpochRecord[];
}

function checkConfig(config: unknown, where: string): TrainConfig {
  if (!isObject(config)) {
    throw new Error(`Expected ${where} to be a training config but found ${show(config)}`);
  }
  try {
    return makeConfig(config as Partial<TrainConfig>);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new Error(`Expected ${where} to be a valid training config: ${error.message}`);
  }
}

function isRngState(value: unknown): value is RngState {
  return Array.isArray(value) && value.length === 4 &&
    value.every((v) => Number.isInteger(v) && v >= 0 && v < 2 ** 32);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A found value for a message: JSON, shortened. */
function show(value: unknown): string {
  const text = value === undefined ? "none" : JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
