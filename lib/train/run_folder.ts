/**
 * A run folder as `train()` leaves it: `config.json` when a run starts, then
 * after every epoch the checkpoint and `history.json`, and at the end the
 * model. Every file is written atomically, so a run killed at any moment
 * leaves only complete files behind.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { writeTextFileAtomic } from "../io/atomic.ts";
import { saveModel } from "../io/tfjs_model.ts";
import {
  CHECKPOINT_FILE,
  type CheckpointState,
  type EpochRecord,
  restoreCheckpoint,
  saveCheckpoint,
} from "./checkpoint.ts";
import type { TrainConfig } from "./config.ts";

/** The run folder's files, by name. */
export const RUN_FILES = Object.freeze({
  config: "config.json",
  history: "history.json",
  checkpoint: CHECKPOINT_FILE,
  model: "model",
});

// Fields a resumed run must share with the run it continues; epochs may grow, and backend and
// learning rate may change (a lower rate is the usual cure after a diverged run).
const RESUME_FIXED: (keyof TrainConfig)[] = [
  "batchSize",
  "width",
  "trainLimit",
  "testLimit",
  "seed",
];

/** Creates the folder (and its parents) and writes the run's `config.json`. */
export async function startRunFolder(runDir: string, config: TrainConfig): Promise<void> {
  await Deno.mkdir(runDir, { recursive: true });
  await writeTextFileAtomic(
    `${runDir}/${RUN_FILES.config}`,
    JSON.stringify(config, null, 2) + "\n",
  );
}

/**
 * Loads the folder's checkpoint into `model` and `optimizer`, after checking
 * that `config` may continue the run it was saved by.
 *
 * @returns The saved state: epoch, RNG state, history and the saved config.
 * @throws {Error} If the checkpoint cannot be read, or a field that must stay
 *   the same changed (naming each, with both values).
 */
export async function resumeFromRunFolder(
  runDir: string,
  config: TrainConfig,
  model: tf.LayersModel,
  optimizer: tf.Optimizer,
): Promise<CheckpointState> {
  const state = await restoreCheckpoint(`${runDir}/${RUN_FILES.checkpoint}`, model, optimizer);
  const changed = RESUME_FIXED.filter((k) => state.config[k] !== config[k]);
  if (changed.length > 0) {
    throw new Error(
      `Cannot resume ${runDir}: ${
        changed.map((k) => `${k} was ${state.config[k]}, now ${config[k]}`).join(", ")
      }`,
    );
  }
  return state;
}

/** After an epoch: the checkpoint, then `history.json` (both atomic). */
export async function saveEpoch(
  runDir: string,
  model: tf.LayersModel,
  optimizer: tf.Optimizer,
  state: CheckpointState,
): Promise<void> {
  await saveCheckpoint(`${runDir}/${RUN_FILES.checkpoint}`, model, optimizer, state);
  await writeTextFileAtomic(
    `${runDir}/${RUN_FILES.history}`,
    JSON.stringify(state.history, null, 2) + "\n",
  );
}

/** At the end: the trained model in TensorFlow.js format, `model/`. */
export function saveFinalModel(runDir: string, model: tf.LayersModel): Promise<void> {
  return saveModel(model, `${runDir}/${RUN_FILES.model}`);
}

export type { EpochRecord };
